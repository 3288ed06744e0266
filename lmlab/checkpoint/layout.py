"""The checkpoint folder format: names, errors, finding checkpoints, and tidying what a killed save left.

A run's checkpoint folder holds ``step-000123/`` folders (each complete: ``state.json`` and
``model.safetensors``), a file ``latest`` naming the newest, and, after a kill, hidden leftovers:
``.tmp-step-*`` (a save still being written), ``.del-step-*`` (an old checkpoint being deleted),
``.latest.tmp-*`` (a ``latest`` file being written), ``.old-step-*`` (the previous copy of a step being
saved again). ``remove_leftovers`` tidies them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from lmlab.models import model_spec

FORMAT_VERSION = 1  # bump when the folder layout or state.json keys change incompatibly
MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, LATEST_FILE = "model.safetensors", "optimizer.pt", "state.json", "latest"
STEP_DIR = re.compile(r"step-([0-9]+)")  # matched whole (fullmatch): no path, no newline
LEFTOVER = re.compile(r"^\.(?:tmp-step-\d+|del-step-\d+|latest\.tmp)-[0-9a-f]+$")  # see remove_leftovers
OLD_DIR = re.compile(r"^\.old-(step-\d+)-[0-9a-f]+$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be loaded: missing files, another format version, or a model that does
    not match it."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holds pickled objects other than tensors and plain containers."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (unwritable folder, full disk...). The previous checkpoint
    is untouched and the partial one has been removed."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    ``state`` is the whole of ``state.json`` (``state["step"]``, ``state["model_spec"]``, the training
    loop's ``history`` and ``train_config``...). ``model`` is the model the weights were loaded into:
    the one passed to ``load_checkpoint``, or one rebuilt from the model spec.
    """

    path: Path  # the step-XXXXXX folder
    step: int  # optimizer steps completed when it was saved
    state: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel (``.module``) and ``torch.compile`` (``._orig_mod``)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def model_spec_or_none(model: nn.Module) -> dict[str, Any] | None:
    """``lmlab.models.model_spec(model)`` (``{"kind": ..., "config": {...}}``), or ``None`` for a model
    lmlab.models does not know (e.g. one defined in a notebook)."""
    try:
        spec = model_spec(unwrap_model(model))
    except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError):
        return None
    return json.loads(json.dumps(spec))  # plain JSON data (tuples -> lists), as it will be read back


def step_of(path: Path) -> int | None:
    """The step of a ``step-XXXXXX`` folder name, else None. Example: step-000012 -> 12"""
    m = STEP_DIR.fullmatch(path.name)
    return int(m.group(1)) if m else None


def is_complete(path: Path) -> bool:
    """A folder with both ``state.json`` and ``model.safetensors``."""
    return path.is_dir() and (path / STATE_FILE).is_file() and (path / MODEL_FILE).is_file()


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete ``step-*`` checkpoints in ``directory``, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if step_of(p) is not None and is_complete(p)]
    return sorted(found, key=lambda p: step_of(p))


def read_pointer(directory: Path) -> str | None:
    """The ``step-XXXXXX`` name the ``latest`` file of ``directory`` holds, or None when there is no such
    file or it holds anything else: a path (absolute, or through ``..`` into another run), bytes that are
    not UTF-8, or more than a name's worth of them. Example: b"step-000012\\n" -> "step-000012";
    b"../other-run/step-000500" -> None"""
    try:
        with open(directory / LATEST_FILE, "rb") as f:
            raw = f.read(64)  # a step name is short: never read more than this
    except OSError:  # missing, a folder, unreadable
        return None
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return name if STEP_DIR.fullmatch(name) and len(raw) < 64 else None


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``directory``: the one the ``latest`` file names, or, if that
    file is missing, holds anything but a bare ``step-XXXXXX`` name (``read_pointer``), or names something
    incomplete, the highest ``step-*`` folder. ``None`` if there is none. Never a folder outside
    ``directory``."""
    directory = Path(directory)
    name = read_pointer(directory)
    if name is not None and is_complete(directory / name):
        return directory / name
    found = list_checkpoints(directory)
    return found[-1] if found else None


def resolve_checkpoint(path_or_dir: str | os.PathLike) -> Path:
    """The ``step-XXXXXX`` folder meant by ``path_or_dir``: itself, or the latest checkpoint in it.

    Raises:
        CheckpointError: there is no complete checkpoint there.
    """
    path = Path(path_or_dir)
    if is_complete(path):
        return path
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is not None:
            return found
        raise CheckpointError(
            f"no complete checkpoint in {path} (expected a folder step-XXXXXX with {STATE_FILE} and "
            f"{MODEL_FILE}, or a 'latest' file naming one)"
        )
    raise CheckpointError(f"{path} does not exist or is not a checkpoint folder")


def remove_leftovers(directory: str | os.PathLike) -> list[str]:
    """Tidy what a process killed while saving left in ``directory``; return the names it removed.

    - ``.tmp-step-*``: a checkpoint that was still being written (never complete): removed;
    - ``.del-step-*``: an old checkpoint being deleted: removed;
    - ``.latest.tmp-*``: a ``latest`` file being written: removed;
    - ``.old-step-*``: the previous copy of a step that was being saved again: put back as ``step-*``
      when the new copy never arrived, otherwise removed.

    ``save_checkpoint`` calls it before writing, and ``lmlab.train`` when it resumes. Only one process
    may save into a folder at a time (the training loop saves from rank 0 only).

    Example: after a kill during a save, [".tmp-step-000006-1f2e3d4c"] -> removed, ["step-000003", "latest"] kept
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in sorted(directory.iterdir()):
        old = OLD_DIR.match(p.name)
        if old and is_complete(p) and not (directory / old.group(1)).exists():
            os.replace(p, directory / old.group(1))  # the re-save never finished: the old copy is the checkpoint
        elif old or LEFTOVER.match(p.name):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def delete_checkpoint(path: Path) -> None:
    """Rename to a hidden ``.del-*`` name, then delete: a kill half-way leaves no half-deleted ``step-*``."""
    hidden = path.with_name(f".del-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, hidden)
    except OSError:
        return
    shutil.rmtree(hidden, ignore_errors=True)
