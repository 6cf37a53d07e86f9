"""The soak: the model, a large matmul and HBM patterns on every selected card at once, for as
long as asked, every output checked bit for bit against the card's own first and against its
siblings', and each card's decode rate followed over time.

    from pytest_ascend.soak.runner import SoakPlan, run_soak

One worker process per card (`worker.py`) runs the workloads (`workloads.py`) and appends a
line per workload per iteration to its own file; the runner (`runner.py`) starts, follows and
stops them. What decides a verdict is pure and apart: `agreement.py` (bit-for-bit), `stability.py`
(drift against the first minutes, a card below its siblings).
"""
