"""How a training run continues from a checkpoint: find it, check it, compare it with the run that continues
it, load it. (What the training loop keeps in ``state.json`` besides the weights: ``trainstate``.)

Every check comes before anything is loaded, so a checkpoint that is refused leaves the model and the
optimizer as they were. With the same settings, data and tokenizer, a resumed CPU run's losses are
bit-identical to those of a run that never stopped; a run that continues with other ones does not match it,
which is a warning, or an error under ``strict=True``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from lmlab.checkpoint.layout import latest_checkpoint, resolve_checkpoint
from lmlab.checkpoint.load import read_state, restore
from lmlab.checkpoint.trainstate import check_training_fields, differences, training_state
from lmlab.trainconfig import History, TrainConfig

__all__ = ["Resumed", "training_state", "find_resume_checkpoint", "check_training_state", "resume_training"]


@dataclass
class Resumed:
    """What the training loop needs to go on from a checkpoint (the weights and the optimizer state are
    already loaded into its model and optimizer)."""

    path: Path  # the step-XXXXXX folder
    step: int  # optimizer updates done: the loop goes on with update number `step` (0-based)
    history: History  # the history up to `step`, not marked as stopped
    pending_loss: tuple[float, int]  # (sum, count) of the losses since the last logged step
    rng_state: dict[str, Any]  # this process's generator states, for lmlab.repro.set_rng_state
    grad_scaler: dict[str, Any] | None  # the fp16 gradient scaler's state_dict, if it had one


def find_resume_checkpoint(resume: str | os.PathLike | bool | None, checkpoint_dir: str | None) -> Path | None:
    """The checkpoint folder ``train(resume=...)`` continues from, or None to start from scratch.

    ``resume=True``: the latest checkpoint in ``checkpoint_dir`` (None when nothing is saved yet); a path:
    that ``step-XXXXXX`` folder, or the latest checkpoint in that folder; False or None: none.
    """
    if resume is False or resume is None:
        return None
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs TrainConfig.checkpoint_dir (or pass the checkpoint path as resume=...)")
        return latest_checkpoint(checkpoint_dir)  # None: nothing saved yet, start from scratch
    path = Path(resume)
    if not path.exists():
        raise ValueError(f"resume={str(resume)!r}: no such checkpoint folder")
    return resolve_checkpoint(path)


def check_training_state(path: Path, state: dict[str, Any], config: TrainConfig,
                         fingerprints: dict[str, Any] | None = None, strict: bool = False) -> None:
    """Refuse a checkpoint without the training loop's state or with a malformed field (``CheckpointError``);
    name the settings and data that differ from the checkpoint's in a warning (``ValueError`` if ``strict``)."""
    check_training_fields(path, state)
    diffs = differences(state, config, fingerprints)
    if not diffs:
        return
    if strict:
        raise ValueError(f"resuming {path} with strict=True, but this run differs from it: {'; '.join(diffs)}. "
                         "Resume with the checkpoint's settings (its state.json 'train_config'), data and tokenizer, "
                         "or pass strict=False to continue anyway")
    warnings.warn(
        f"resuming {path} with other training settings or data than it was saved with: {'; '.join(diffs)}. "
        "The run will not match one that never stopped; resume with the saved TrainConfig "
        "(its state.json 'train_config'), the same batches and tokenizer to continue it exactly.",
        stacklevel=7,  # the caller of lmlab.train.train
    )


def resume_training(resume: str | os.PathLike | bool | None, config: TrainConfig, model: nn.Module,
                    optimizer: torch.optim.Optimizer, *, map_location: torch.device, rank: int = 0,
                    world_size: int = 1, fingerprints: dict[str, Any] | None = None,
                    strict: bool = False) -> Resumed | None:
    """Find the checkpoint to resume from (``find_resume_checkpoint``), read its state once, check it
    (``check_training_state``, before anything is loaded), load the weights into ``model`` and the
    optimizer state into ``optimizer``, and return what the loop needs; None when there is nothing to
    resume from. ``fingerprints``: what this run trains on (``trainstate.run_fingerprints``).

    Raises:
        ValueError: ``resume`` names no folder, or is True without ``config.checkpoint_dir``; or, with
            ``strict``, this run's settings, data or tokenizer differ from the checkpoint's.
        CheckpointError: the checkpoint is damaged (a field of state.json, a file's SHA-256, NaN values),
            does not fit the model or optimizer, or was not written by the training loop.
    """
    path = find_resume_checkpoint(resume, config.checkpoint_dir)
    if path is None:
        return None
    state = read_state(path)
    check_training_state(path, state, config, fingerprints, strict)
    ckpt = restore(path, state, model, optimizer, map_location)
    history = History.from_dict(state["history"])
    history.stopped_early, history.stop_reason = False, None  # we go on
    pending_sum, pending_n = state.get("pending_loss", [0.0, 0])
    rng = state["rng_states"]
    return Resumed(
        path=path,
        step=ckpt.step,
        history=history,
        pending_loss=(float(pending_sum), pending_n),
        rng_state=rng[rank] if len(rng) == world_size else rng[0],
        grad_scaler=state.get("grad_scaler") or None,
    )
