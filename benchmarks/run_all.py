"""Run every benchmark script in this folder and print their tables.

    python dev.py bench            (or: python benchmarks/run_all.py)

Benchmarks are not tests: they print figures (medians of repeated runs, ratios against real peers measured
in the same run) and never fail on a slow machine. benchmarks/README.md keeps the latest tables.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py")
    failed = []
    for script in scripts:
        print(f"\n## {script.stem}\n", flush=True)
        if subprocess.call([sys.executable, str(script)], cwd=HERE.parent) != 0:
            failed.append(script.name)
    if failed:
        print(f"\nthese benchmarks did not finish: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
