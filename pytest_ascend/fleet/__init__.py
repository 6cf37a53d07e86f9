"""A fleet of boxes compared from their collected results: `pytest-ascend fleet RESULTS...`.

Each box runs the suite on its own (through Slurm, Kubernetes or by hand) and leaves its
benchmark runs behind; nothing coordinates them live. `outliers.py` judges each box against
the fleet's median and against its own history; `compare.py` reads the runs and builds the
box x metric table; `render.py` prints it and draws the heat map.
"""
