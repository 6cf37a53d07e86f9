"""The model under test: finding and loading a checkpoint (or building the built-in tiny
one), the arithmetic its config implies, the seed workloads, and the greedy reference that
every generation path is compared with. Nothing here knows pytest."""
