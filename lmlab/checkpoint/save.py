"""Saving a checkpoint atomically: write a hidden temporary folder, flush it to disk, rename it into place,
then point ``latest`` at it and delete the oldest checkpoints. ``state.json``, written last, records the
SHA-256 of the other files (``"files"``), which loading checks.

The rename is the commit point: before it the previous checkpoint is the latest, after it the new one
is complete. Saving a step again moves the old copy aside first (``.old-step-*``) and deletes it only
after the new one is in place.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

import lmlab
from lmlab import files
from lmlab.checkpoint.layout import (
    FORMAT_VERSION,
    LATEST_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    CheckpointWriteError,
    delete_checkpoint,
    list_checkpoints,
    model_spec_or_none,
    remove_leftovers,
    unwrap_model,
)
from lmlab.checkpoint.verify import file_hashes


def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int,
    state: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Save a checkpoint folder ``directory/step-{step:06d}`` atomically and point ``latest`` at it.

    Args:
        directory: the run's checkpoint folder (created if needed).
        model: the model (DDP and torch.compile wrappers are unwrapped).
        optimizer: saved too when given.
        step: optimizer steps completed.
        state: extra JSON-able data for ``state.json`` (the training loop stores its history, config and
            random-number-generator states here).
        keep: how many checkpoints to keep; older ones are deleted after the new one is complete.

    Returns:
        The path of the new checkpoint folder.

    Raises:
        CheckpointWriteError: the folder cannot be written (not a folder, no permission, disk full).
            The partial checkpoint is removed; earlier checkpoints are untouched.

    Example:
        >>> path = save_checkpoint("runs/demo", model, optimizer, step=100)   # doctest: +SKIP
        >>> path.name                                                     # doctest: +SKIP
        'step-000100'
    """
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be at least 1 (the checkpoint just written), got {keep!r}")
    model = unwrap_model(model)
    contents = _state_contents(model, step, state)  # a TypeError now, before anything is written
    final = _write(Path(directory), model, optimizer, step, contents)
    # prune: keep the new checkpoint and the newest keep - 1 others
    others = [p for p in list_checkpoints(directory) if p != final]
    for p in others[: max(0, len(others) - (keep - 1))]:
        delete_checkpoint(p)
    return final


def _state_contents(model: nn.Module, step: int, state: dict[str, Any] | None) -> dict[str, Any]:
    """What ``state.json`` holds: format version, lmlab version, step, model spec, the SHA-256 of the files
    (filled in by ``_write``), then ``state``. Raises TypeError when ``state`` is not JSON data."""
    contents = {
        "format_version": FORMAT_VERSION,
        "lmlab_version": lmlab.__version__,
        "step": step,
        "model_spec": model_spec_or_none(model),
        "files": {},
        **(state or {}),
    }
    try:
        json.dumps(contents)
    except (TypeError, ValueError) as e:
        raise TypeError(f"the checkpoint state must be JSON data (dicts, lists, numbers, strings): {e}") from e
    return contents


def _write(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, step: int,
           contents: dict[str, Any]) -> Path:
    """Write the checkpoint into a temporary folder, flush it, rename it to ``step-XXXXXX``, point ``latest``
    at it. On any error: remove what was written, put a moved-aside copy back, raise."""
    from safetensors import SafetensorError
    from safetensors.torch import save_model

    final = directory / f"step-{step:06d}"
    tmp = directory / f".tmp-step-{step:06d}-{uuid.uuid4().hex[:8]}"
    old, writing = None, "the folder"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        remove_leftovers(directory)
        tmp.mkdir()
        writing = MODEL_FILE
        save_model(model, str(tmp / MODEL_FILE))  # drops the duplicate names of tied tensors
        if optimizer is not None:
            writing = OPTIMIZER_FILE
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        writing = STATE_FILE
        names = [MODEL_FILE] + ([OPTIMIZER_FILE] if optimizer is not None else [])
        contents = {**contents, "files": file_hashes(tmp, names)}
        (tmp / STATE_FILE).write_text(json.dumps(contents, indent=1))
        writing = "the flush to disk and the rename"
        for f in tmp.iterdir():
            files.fsync_file(f)
        files.fsync_dir(tmp)
        if final.exists():  # saving the same step again: move the old one aside, never delete it first
            old = directory / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)  # the atomic step: from here on the new checkpoint is complete
        files.fsync_dir(directory)
        files.atomic_write(directory / LATEST_FILE, final.name + "\n", fsync=True)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not final.exists():
            try:
                os.replace(old, final)  # the new copy never arrived: put the old one back
            except OSError:
                pass  # remove_leftovers puts it back at the next save
        if isinstance(e, (OSError, RuntimeError, SafetensorError)):  # torch and safetensors wrap I/O errors
            raise CheckpointWriteError(
                f"could not write a checkpoint into {directory} (at {writing}): {e}. Earlier checkpoints there are "
                "untouched and the partial one was removed. Check that the folder is writable and the "
                "disk has free space, or pick another checkpoint_dir."
            ) from e
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
