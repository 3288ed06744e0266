#!/usr/bin/env python3
"""One script for the course's everyday jobs. Needs only Python 3.10+.

    python3 dev.py lab                 set everything up (once) and open JupyterLab on notebooks/
    python3 dev.py test                set up the test tools (once) and run the whole test suite
    python3 dev.py execute-notebooks   re-run notebooks top to bottom, store their outputs, record versions
    python3 dev.py check-notebooks     re-check stored outputs under other thread counts and CPU kernels
    python3 dev.py run-notebooks       run every notebook on this machine's device, write a summary table
    python3 dev.py test-floors         the package tests and the fastest notebooks at the oldest supported versions
    python3 dev.py publish [--check]   write the install source and Colab links of pyproject.toml into the notebooks
    python3 dev.py bench               run the benchmarks and print their tables

Setup: when you run this script from an activated virtual or conda environment, it installs lmlab there
(a CUDA build of torch you already have is kept). Otherwise it makes `.venv/` beside this file. torch is
installed only when missing (TORCH_SPEC, default `torch==2.13.0`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")


def in_user_env() -> bool:
    """True when this Python is already a virtual or conda environment the user chose."""
    return sys.prefix != sys.base_prefix or bool(os.environ.get("CONDA_PREFIX"))


def env_python() -> Path:
    if in_user_env():
        return Path(sys.executable)
    bindir = "Scripts" if os.name == "nt" else "bin"
    return VENV / bindir / ("python.exe" if os.name == "nt" else "python")


def run(*cmd, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def setup(extras: str) -> Path:
    """Make the environment (once) and install lmlab with the given extras; returns its python."""
    py = env_python()
    if not in_user_env() and not py.exists():
        print(f"creating a virtual environment in {VENV.name}/", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp_dir = VENV if not in_user_env() else Path(sys.prefix)
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()[:16]
    stamp = stamp_dir / f".lmlab-installed-{extras.replace(',', '-')}"
    if stamp.exists() and stamp.read_text() == key:
        return py
    has_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0
    if not has_torch:
        run(py, "-m", "pip", "install", "--quiet", TORCH_SPEC)
    run(py, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]", cwd=ROOT)
    try:
        stamp.write_text(key)
    except OSError:
        pass
    return py


def cmd_lab(args: list[str]) -> int:
    py = setup("lab")
    extra = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return subprocess.call([str(py), "-m", "jupyterlab", "--notebook-dir", str(ROOT / "notebooks"), *extra, *args])


# The test command: package tests, then every notebook's stored outputs re-checked by nbval.
PYTEST_ARGS = [
    "tests", "notebooks",
    "--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
    "-p", "no:cacheprovider", "-q", "-rs",
]


def test_env() -> dict[str, str]:
    """The environment of test runs: the shared corpus folder, no progress bars, no downloads."""
    env = dict(os.environ)
    shared = ROOT.parent / "shared" / "data"
    if "LMLAB_DATA_DIR" not in env and shared.is_dir():
        env["LMLAB_DATA_DIR"] = str(shared)
    env.setdefault("LMLAB_PROGRESS", "0")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("LMLAB_DEVICE", "cpu")  # the notebooks' stored outputs are those of their CPU path
    return env


def cmd_test(args: list[str]) -> int:
    py = setup("lab,test")
    return subprocess.call([str(py), "-m", "pytest", *PYTEST_ARGS, *args], cwd=ROOT, env=test_env())


def cmd_execute_notebooks(args: list[str]) -> int:
    py = setup("lab,test")
    return subprocess.call([str(py), str(ROOT / "scripts" / "execute_notebooks.py"), *args], cwd=ROOT)


def cmd_check_notebooks(args: list[str]) -> int:
    py = setup("lab,test")
    return subprocess.call([str(py), str(ROOT / "scripts" / "check_notebooks.py"), *args], cwd=ROOT)


def cmd_run_notebooks(args: list[str]) -> int:
    py = setup("lab,test")
    return subprocess.call([str(py), str(ROOT / "scripts" / "run_notebooks.py"), *args], cwd=ROOT)


def cmd_publish(args: list[str]) -> int:
    return subprocess.call([sys.executable, str(ROOT / "scripts" / "publish.py"), *args], cwd=ROOT)


# The supported range, tested: a separate environment with every dependency at its floor.
FLOORS = ROOT / ".floors" / "venv"
FLOOR_TOOLS = ["pytest", "hypothesis", "nbval", "nbformat", "nbclient", "ipykernel", "pyyaml"]
FLOOR_NOTEBOOKS = ["notebooks/00_setup.ipynb", "notebooks/01_language_models_and_mle.ipynb",
                   "notebooks/05_self_attention.ipynb", "notebooks/12_huggingface_interop.ipynb"]


def cmd_test_floors(args: list[str]) -> int:
    """Install lmlab with constraints-floor.txt into .floors/venv (once), then run the package tests and the
    fastest notebooks there. torch's floor comes from the package index: a large download (a CUDA build)."""
    bindir = "Scripts" if os.name == "nt" else "bin"
    py = FLOORS / bindir / ("python.exe" if os.name == "nt" else "python")
    constraints = ROOT / "constraints-floor.txt"
    key = hashlib.sha256(constraints.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = FLOORS / ".lmlab-floors"
    if not (stamp.exists() and stamp.read_text() == key):
        if not py.exists():
            print(f"creating the floor environment in {FLOORS.relative_to(ROOT)}/", flush=True)
            venv.EnvBuilder(with_pip=True).create(FLOORS)
        run(py, "-m", "pip", "install", "--quiet", "-c", constraints, "-e", ".[notebooks]", *FLOOR_TOOLS, cwd=ROOT)
        stamp.write_text(key)
    subprocess.call([str(py), "-c", "from lmlab.envreport import installed_versions as v; print(v())"], cwd=ROOT)
    # Notebooks run with --nbval-lax: every cell must run and every assertion hold; printed text may differ
    # from the stored outputs, which were made with the recorded versions (another torch samples differently).
    targets = args or ["tests", *FLOOR_NOTEBOOKS]
    return subprocess.call([str(py), "-m", "pytest", *targets, *PYTEST_ARGS[2:], "--nbval-lax"], cwd=ROOT,
                           env=test_env())


def cmd_bench(args: list[str]) -> int:
    py = setup("lab,test")
    return subprocess.call([str(py), str(ROOT / "benchmarks" / "run_all.py"), *args], cwd=ROOT)


COMMANDS = {"lab": cmd_lab, "test": cmd_test, "execute-notebooks": cmd_execute_notebooks,
            "check-notebooks": cmd_check_notebooks, "run-notebooks": cmd_run_notebooks,
            "test-floors": cmd_test_floors, "publish": cmd_publish, "bench": cmd_bench}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
