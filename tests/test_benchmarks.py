"""benchmarks/gpu.py runs end to end: tiny sizes on the CPU (``--smoke``), against nanoGPT when a checkout of it is
at hand (``LMLAB_NANOGPT``, or ``.peers/nanoGPT`` in the repository; never part of it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def nanogpt_folder() -> Path | None:
    folder = Path(os.environ.get("LMLAB_NANOGPT", ROOT / ".peers" / "nanoGPT"))
    return folder if (folder / "model.py").is_file() and (folder / "train.py").is_file() else None


def run_gpu_benchmark(tmp_path: Path, *args: str) -> str:
    readme = tmp_path / "README.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--save", "--readme", str(readme), *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "## gpu\n\n| what | lmlab | nanoGPT | transformers |" in readme.read_text()  # the table, saved
    return proc.stdout


@pytest.mark.slow
def test_gpu_benchmark_runs_on_the_cpu_without_nanogpt(tmp_path):
    out = run_gpu_benchmark(tmp_path, "--rows", "step,generate")
    step = next(line for line in out.splitlines() if line.startswith("| step"))
    lmlab, nano, hf = (cell.strip() for cell in step.split("|")[2:5])
    assert float(lmlab) > 0 and nano == "" and float(hf) > 0
    assert "transformers gives the same tokens as lmlab: all" in out  # fp32 on the CPU: the same greedy tokens
    assert "nanoGPT: not given" in out


@pytest.mark.slow
def test_gpu_benchmark_runs_nanogpt_beside_lmlab(tmp_path, data_dir):
    folder = nanogpt_folder()
    if folder is None:
        pytest.skip("no nanoGPT checkout: set LMLAB_NANOGPT to one (or put it in .peers/nanoGPT)")
    out = run_gpu_benchmark(tmp_path, "--nanogpt", str(folder), "--rows", "step,loop")
    losses = next(line for line in out.splitlines() if line.startswith("- eager: losses"))
    values = dict(part.rsplit(" ", 1) for part in losses.split("steps ", 1)[1].split(", "))
    assert values["lmlab"] == values["nanoGPT"]  # the same weights give the same loss: the same model
    loop = [line for line in out.splitlines() if "ms per step in the loop" in line]
    assert len(loop) == 1 and all(float(cell) > 0 for cell in loop[0].split("|")[2:4])
