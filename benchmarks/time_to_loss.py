"""Time to a target loss: `lmlab train`'s CPU default on Tiny Shakespeare, to validation loss 1.88.

The figure learners feel. nanoGPT's README reports about 3 minutes on a laptop CPU for its small CPU recipe
(4 layers, 4 heads, n_embd 128, block 64, batch 12, 2000 iterations) to reach validation loss 1.88; nanoGPT
itself cannot be fetched on an offline machine, so its row is the README's figure, not a measurement.

Runs the real command line (`python -m lmlab.cli train --preset cpu`) in a fresh process, then reads the run
folder's history: the validation curve with the training seconds at each evaluation (evaluation time
excluded, as nanoGPT's figure), the command's whole wall time, and the process's peak resident memory.

    python benchmarks/time_to_loss.py [--target 1.88] [--threads 2] [extra `lmlab train` options...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmlab.data import offline_env

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=1.88)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args, extra = parser.parse_known_args()
    env = offline_env(ROOT.parent / "shared" / "data", dict(os.environ))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "lmlab.cli", "train", "--corpus", "tinyshakespeare", "--model", "gpt",
               "--preset", "cpu", "--device", "cpu", "--out", str(out), "--no-progress", *extra]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr)
            raise SystemExit(f"`lmlab train` failed with exit code {proc.returncode}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        history = json.loads((out / "history.json").read_text())
        config = json.loads((out / "run.json").read_text())["config"]
    at_step = dict(zip(history["steps"], history["times"]))
    curve = [(s, v, at_step.get(s)) for s, v in zip(history["val_steps"], history["val_losses"])]
    hit = next(((s, v, t) for s, v, t in curve if v <= args.target), None)
    print(f"`lmlab train --preset cpu`: {config['n_layer']} layers, {config['n_head']} heads, n_embd "
          f"{config['n_embd']}, block {config['block_size']}, batch {config['batch_size']}, "
          f"{config['max_steps']} steps, lr {config['lr']}, threads {config.get('threads') or 'default'}\n")
    print("| step | validation loss | training minutes |")
    print("|---:|---:|---:|")
    for s, v, t in curve:
        print(f"| {s} | {v:.3f} | {t / 60:.2f} |" if t is not None else f"| {s} | {v:.3f} | |")
    print(f"\n| run | time to validation loss {args.target} | final validation loss | whole command | peak memory |")
    print("|---|---:|---:|---:|---:|")
    reached = f"{hit[2] / 60:.2f} min (step {hit[0]})" if hit and hit[2] is not None else "not reached"
    print(f"| lmlab train, CPU default | {reached} | {curve[-1][1]:.3f} | {wall / 60:.2f} min | {peak_mb:,.0f} MB |")
    print(f"| nanoGPT CPU recipe (its README, laptop CPU; not run here) | about 3 min | 1.88 | | |")


if __name__ == "__main__":
    main()
