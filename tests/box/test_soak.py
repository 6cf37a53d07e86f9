"""The soak (--ascend-soak): the model, a large matmul and HBM patterns on every selected card
at once for the time asked, every output bit for bit equal to the card's first and to its
siblings'; each card's rate followed against its first minute and its siblings.

    pytest -m npu tests/box/test_soak.py --ascend-soak=4h --ascend-devices=all

A result that did not repeat fails the soak on any model. A rate that drifted or fell below
its siblings fails it where performance is asserted (a real model), and is reported on a
smoke run."""

import pytest

from pytest_ascend.soak.render import soak_table

pytestmark = pytest.mark.npu


def test_soak(ascend_soak, ascend_progress, ascend_perf_verdict, record_property):
    result = ascend_soak()
    for line in soak_table(result):
        ascend_progress(line)
    ascend_progress(f"soak files: {', '.join(str(path) for path in result.files)}")
    summary = result.as_dict()
    for card in summary["cards"]:
        card.pop("rates")  # per iteration: in soak.json, too long for every report
    record_property("soak", summary)
    for card in result.cards:
        for operator in sorted(card.nondeterministic):
            ascend_progress(f"card {card.card}: no deterministic implementation: {operator}")
    assert not result.failures, (f"{len(result.failures)} soak failure(s): "
                                 + "; ".join(result.failures[:5]))
    assert result.cut_short is None, result.cut_short
    thin = [card.card for card in result.cards if card.iterations < 2]
    assert not thin, f"card(s) {thin} finished fewer than 2 iterations: nothing was compared"
    ascend_perf_verdict("; ".join(result.flags) or None)
