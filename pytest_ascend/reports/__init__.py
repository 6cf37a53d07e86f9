"""What a run says about itself: the environment it ran in, the provenance block that every
report carries, progress lines, and the per-test results log that survives a crash. Nothing
here knows pytest."""
