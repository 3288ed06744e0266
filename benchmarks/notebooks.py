"""The notebook suite under nbval, as CI runs it: wall time and peak resident memory of each notebook.

Each notebook runs in its own `pytest --nbval` process (a fresh kernel re-executes every cell and compares
the outputs with the stored ones). Peak memory is the largest resident set of that process tree (pytest and
the kernel), read with getrusage in a small wrapper process per notebook.

    python benchmarks/notebooks.py [NN ...]        (default: every notebook)

Goal: the whole suite well under CI's budget, about 10 minutes on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def run_one(path: Path) -> tuple[bool, float, float]:
    """(passed, seconds, peak MB) of one notebook under nbval."""
    cmd = [sys.executable, "-m", "pytest", str(path.relative_to(ROOT)), "--nbval", "--nbval-current-env",
           "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "-p", "no:cacheprovider", "-q"]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    code, kib = out.stdout.split()
    return code == "0", seconds, int(kib) / 1024


def main(argv: list[str]) -> None:
    os.environ.setdefault("LMLAB_PROGRESS", "0")
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if argv:
        paths = [p for p in paths if any(p.name.startswith(a) for a in argv)]
    print("| notebook | nbval | wall time | peak memory |")
    print("|---|---|---:|---:|")
    total = 0.0
    for path in paths:
        ok, seconds, mb = run_one(path)
        total += seconds
        print(f"| {path.stem} | {'pass' if ok else 'FAIL'} | {seconds:.0f} s | {mb:,.0f} MB |", flush=True)
    print(f"| **total** | | **{total / 60:.1f} min** | |")


if __name__ == "__main__":
    main(sys.argv[1:])
