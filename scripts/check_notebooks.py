"""Re-check the notebooks' stored outputs with nbval under other thread counts and CPU kernels.

    python dev.py check-notebooks                    every notebook under every condition
    python dev.py check-notebooks 02 07              the notebooks whose names start with these
    python dev.py check-notebooks --conditions threads=1,cpu=default

A stored output must hold on any learner's machine, not only on the one that executed it. Two things
change the last bits of a CPU computation: the number of threads a matrix product is split over (partial
sums are added in another order) and the processor's vector instructions. The conditions:

    threads=1, threads=2, threads=4   LMLAB_THREADS=N: `lmlab.repro.setup` pins N torch threads
    cpu=default, cpu=avx2             ATEN_CPU_CAPABILITY: torch's CPU kernels for a plain x86-64 or an
                                      AVX2 processor, standing in for another machine's CPU

Prints one row per notebook, one column per condition: "ok" or the nbval cells that failed (cells are
numbered among code cells from 0, as nbval names them). Each nbval run's report is kept under
`test-artifacts/check-notebooks/` (git-ignored). Exit status 0 when every run passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "test-artifacts" / "check-notebooks"

CONDITIONS = {
    "threads=1": {"LMLAB_THREADS": "1"},
    "threads=2": {"LMLAB_THREADS": "2"},
    "threads=4": {"LMLAB_THREADS": "4"},
    "cpu=default": {"ATEN_CPU_CAPABILITY": "default"},
    "cpu=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
}
NBVAL_ARGS = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
              "-p", "no:cacheprovider", "-q"]


def select_notebooks(prefixes: list[str]) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        paths = [p for p in paths if any(p.name.startswith(a) for a in prefixes)]
    return paths


def failed_cells(report: Path) -> list[str] | None:
    """The nbval cells that failed or raised, from a JUnit XML report (None when it is missing)."""
    try:
        tree = ET.parse(report)
    except (OSError, ET.ParseError):
        return None
    bad = []
    for case in tree.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            bad.append(case.get("name", "?").replace("Cell ", ""))
    return bad


def check(notebook: Path, condition: str) -> tuple[str, float]:
    """Run nbval on one notebook under one condition; returns (result, seconds)."""
    env = dict(os.environ)
    env.pop("LMLAB_THREADS", None)
    env.pop("ATEN_CPU_CAPABILITY", None)
    env.pop("LMLAB_DEVICE", None)
    env.update(CONDITIONS[condition])
    env["LMLAB_DEVICE"] = "cpu"  # stored outputs are CPU outputs
    report = OUT / f"{notebook.stem}.{condition.replace('=', '-')}.xml"
    report.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(notebook), *NBVAL_ARGS,
                           f"--junitxml={report}"], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    (OUT / f"{notebook.stem}.{condition.replace('=', '-')}.log").write_text(proc.stdout + proc.stderr)
    cells = failed_cells(report)
    if cells is None:
        return f"error (rc {proc.returncode})", seconds
    return ("ok" if not cells else "cells " + ",".join(cells)), seconds


def table(results: dict[tuple[str, str], str], notebooks: list[Path], conditions: list[str]) -> str:
    width = max(12, *(len(r) for r in results.values())) if results else 12
    first = max(len("notebook"), *(len(nb.name) for nb in notebooks)) + 2
    lines = [f"{'notebook':<{first}}" + "".join(f"{c:<{width + 2}}" for c in conditions).rstrip()]
    for nb in notebooks:
        row = "".join(f"{results.get((nb.name, c), '...'):<{width + 2}}" for c in conditions)
        lines.append(f"{nb.name:<{first}}{row}".rstrip())
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="name prefixes, e.g. 02 07 (default: all)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help=f"comma-separated subset of {', '.join(CONDITIONS)}")
    parser.add_argument("--jobs", type=int, default=1, help="nbval runs at the same time (default 1)")
    args = parser.parse_args(argv)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        parser.error(f"unknown condition(s) {unknown}; choose from {list(CONDITIONS)}")
    if importlib.util.find_spec("nbval") is None:
        parser.error("nbval is not installed in this Python: run `python dev.py check-notebooks`, which sets it up")
    notebooks = select_notebooks(args.notebooks)
    if not notebooks:
        parser.error(f"no notebooks match {args.notebooks}")
    OUT.mkdir(parents=True, exist_ok=True)
    runs = [(nb, c) for nb in notebooks for c in conditions]
    results: dict[tuple[str, str], str] = {}

    def one(run: tuple[Path, str]) -> None:
        nb, c = run
        result, seconds = check(nb, c)
        results[(nb.name, c)] = result
        print(f"{nb.name:<40} {c:<12} {result:<24} {seconds:6.0f} s", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, runs))
    print()
    print(table(results, notebooks, conditions))
    return 0 if all(r == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
