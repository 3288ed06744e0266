"""pytest setup shared by tests/ and the notebooks run under nbval: offline data and quiet progress bars."""

import pathlib

from lmlab.data import offline_env

offline_env(pathlib.Path(__file__).resolve().parent.parent / "shared" / "data")
