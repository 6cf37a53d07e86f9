"""Numerics across stacks: golden outputs recorded once on a trusted machine, the divergence
of a run from them, and perplexity on a shipped text.

A faster kernel in a new CANN can be subtly wrong while every within-run check (determinism,
batch == single, server == transformers) still passes, because all of them compare the stack
with itself. A golden is the fixed point outside the stack: the greedy tokens and the
log-probabilities a trusted run produced, with the checksum of the model that produced them.
Nothing here imports pytest.
"""
