"""Re-make the reference loss bands that notebooks compare a learner's run with.

    python scripts/make_reference_bands.py                  every band, seeds 0 1 2
    python scripts/make_reference_bands.py nb04_lstm        only this one
    python scripts/make_reference_bands.py --seeds 0 1 2 3  more seeds, a wider band

Each notebook with a training cell has a module in scripts/reference_runs/ (``nb04.py``, ...) with a dict
``BANDS = {band_name: run}``, where ``run(seed)`` repeats the notebook's training cell with that seed and
returns ``(steps, losses)``. The band keeps, for every step, the lowest and highest loss across the seeds,
widened by a margin (4% unless the module sets MARGIN) (`lmlab.reference.make_band`), and is written next to `lmlab.reference`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from lmlab.data import offline_env

HERE = Path(__file__).resolve().parent


def recipes() -> dict:
    """Every band recipe, from every module in scripts/reference_runs/."""
    found = {}
    sys.path.insert(0, str(HERE / "reference_runs"))  # the recipes share helpers there (shakespeare.py)
    for path in sorted((HERE / "reference_runs").glob("nb*.py")):
        spec = importlib.util.spec_from_file_location(f"reference_runs.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, run in module.BANDS.items():
            found[name] = (run, getattr(module, "MARGIN", 0.04), getattr(module, "WHAT", "validation loss"))
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="band names (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    offline_env(HERE.parent.parent / "shared" / "data")

    import torch

    from lmlab.reference import make_band, save_band

    known = recipes()
    names = args.names or sorted(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown band(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    for name in names:
        run, margin, what = known[name]
        t0 = time.perf_counter()
        curves = []
        for seed in args.seeds:
            torch.set_num_threads(2)  # the notebooks' setup cell: setup(seed, threads=2)
            curves.append(run(seed))
        path = save_band(make_band(name, curves, margin=margin, what=what))
        print(f"{name:<24} {len(curves)} runs  {time.perf_counter() - t0:6.1f} s  -> {path.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
