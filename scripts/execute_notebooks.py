"""Re-run notebooks top to bottom in place, store their outputs, and record the versions they ran with.

    python dev.py execute-notebooks                 every notebook in notebooks/
    python dev.py execute-notebooks 01 04           the ones whose names start with these

Notebooks run in a fresh kernel of this Python with their folder as working directory, progress bars off,
and the data folder from LMLAB_DATA_DIR (default ../shared/data when present). The stored outputs are those of
the CPU path with each notebook's own thread count: LMLAB_DEVICE is set to cpu, and LMLAB_THREADS and
ATEN_CPU_CAPABILITY are cleared (see `python dev.py check-notebooks` and `run-notebooks` for the other
conditions). The versions are written to lmlab/reference/notebook_versions.json, which `lmlab env` compares
with what a learner has installed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path, timeout: int = 1200) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    from lmlab.data import offline_env

    offline_env(ROOT.parent / "shared" / "data")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    os.environ["LMLAB_DEVICE"] = "cpu"  # the stored outputs are the CPU path's
    os.environ.pop("LMLAB_THREADS", None)
    os.environ.pop("ATEN_CPU_CAPABILITY", None)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if argv:
        paths = [p for p in paths if any(p.name.startswith(a) for a in argv)]
    if not paths:
        print(f"no notebooks match {argv}", file=sys.stderr)
        return 2
    from lmlab.envreport import record_notebook_versions

    for p in paths:
        seconds = execute(p)
        print(f"{p.name:<40} {seconds:6.1f} s", flush=True)
    record_notebook_versions([p.name for p in paths])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
