"""Shared test setup: pinned threads, the corpus folder, fresh exercises (offline data and quiet progress bars
are set by the conftest.py at the repository root, which pytest loads first)."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _pin_threads():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def data_dir() -> pathlib.Path:
    """The folder holding the real corpus files (skips when it is absent)."""
    d = pathlib.Path(os.environ.get("LMLAB_DATA_DIR", SHARED_DATA))
    if not (d / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip(f"corpus files not found under {d}; set LMLAB_DATA_DIR")
    return d


@pytest.fixture(autouse=True)
def _fresh_exercises(monkeypatch):
    """Every test starts with no exercise marked passed and not in graded mode, and leaves none behind."""
    import sys

    from lmlab.exercises.core import ExerciseSet

    def reset_all():
        for name, module in list(sys.modules.items()):
            if name.startswith("lmlab.exercises.nb") and isinstance(getattr(module, "EXERCISES", None), ExerciseSet):
                module.EXERCISES.reset()

    monkeypatch.delenv("LMLAB_GRADED", raising=False)
    reset_all()
    yield
    reset_all()

