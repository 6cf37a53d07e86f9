"""Profiles of the timed regions: captured per test under --ascend-profile, stored beside the
benchmark run, and compared between two runs by `pytest-ascend history --diff-profiles`."""
