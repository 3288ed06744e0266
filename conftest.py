"""pytest setup shared by tests/ and the notebooks run under nbval: offline data and quiet progress bars."""

import os
import pathlib

_shared = pathlib.Path(__file__).resolve().parent.parent / "shared" / "data"
if "LMLAB_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["LMLAB_DATA_DIR"] = str(_shared)
os.environ.setdefault("LMLAB_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
