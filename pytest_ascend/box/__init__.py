"""The whole box: every selected card checked and measured, cards and links compared with
their siblings, collectives through torch.distributed, a model split across cards.

Nothing here knows pytest; tests/box drives it through the plugin's fixtures, and the
torchrun entry points (`collectives`, `tensor_parallel`) run without pytest at all.
"""
