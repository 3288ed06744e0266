"""What the training loop keeps in a checkpoint besides the weights, and how a run continues from one.

A checkpoint of ``lmlab.train`` adds to ``state.json`` (``training_state`` writes them, ``resume_training``
reads them back):

- ``history``: the ``History`` so far (losses, steps, times...);
- ``train_config``: the ``TrainConfig`` of the run, to warn when a resumed run changes a setting that
  changes its results (``RESUME_FREE`` lists the ones that do not);
- ``rng_states``: every random-number generator's state, one per process (dropout masks continue exactly);
- ``pending_loss``: the sum and count of the losses since the last logged step;
- ``grad_scaler``: the fp16 gradient scaler's state (or null), and ``world_size``.

So a resumed CPU run's losses are bit-identical to those of a run that never stopped.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from lmlab.checkpoint.layout import CheckpointError, latest_checkpoint, resolve_checkpoint
from lmlab.checkpoint.load import read_state, restore
from lmlab.trainconfig import RESUME_FREE, History, TrainConfig

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


def training_state(history: History, config: TrainConfig, rng_states: list[dict[str, Any]],
                   pending_loss: tuple[float, int], grad_scaler: dict[str, Any] | None,
                   world_size: int) -> dict[str, Any]:
    """The training loop's part of ``state.json`` (the ``state=`` of ``save_checkpoint``)."""
    return {
        "history": history.to_dict(),
        "train_config": asdict(config),
        "rng_states": rng_states,  # one per process
        "pending_loss": list(pending_loss),  # losses since the last log, for exact resume
        "grad_scaler": grad_scaler,
        "world_size": world_size,
    }


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


def check_training_state(path: Path, state: dict[str, Any], config: TrainConfig) -> None:
    """Refuse a checkpoint without the training loop's state; warn, naming them, about changed settings."""
    missing = [k for k in ("history", "rng_states") if k not in state]
    if missing or not isinstance(state.get("history"), dict) or not isinstance(state.get("rng_states"), list):
        raise CheckpointError(
            f"{path} has no usable training state ({', '.join(missing) or 'history/rng_states malformed'}): "
            "it was not written by lmlab.train. Load its weights with lmlab.checkpoint.load_checkpoint(path, "
            "model) and start a new run instead of resume=..."
        )
    saved = state.get("train_config")
    if not isinstance(saved, dict):
        return
    current = asdict(config)
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r}, now {current[k]!r}"
        for k in current
        if k not in RESUME_FREE and k in saved and _as_json(saved[k]) != _as_json(current[k])
    ]
    if diffs:
        warnings.warn(
            f"resuming {path} with other training settings than it was saved with: {'; '.join(diffs)}. "
            "The run will not match one that never stopped; resume with the saved TrainConfig "
            "(its state.json 'train_config') to continue it exactly.",
            stacklevel=7,  # the caller of lmlab.train.train
        )


def _as_json(value: Any) -> Any:
    """Tuples as lists, as they come back from JSON."""
    return list(value) if isinstance(value, tuple) else value


def resume_training(resume: str | os.PathLike | bool | None, config: TrainConfig, model: nn.Module,
                    optimizer: torch.optim.Optimizer, *, map_location: torch.device, rank: int = 0,
                    world_size: int = 1) -> Resumed | None:
    """Find the checkpoint to resume from (``find_resume_checkpoint``), read its state once, check it
    (``check_training_state``, before anything is loaded), load the weights into ``model`` and the
    optimizer state into ``optimizer``, and return what the loop needs; None when there is nothing to
    resume from.

    Raises:
        ValueError: ``resume`` names no folder, or is True without ``config.checkpoint_dir``.
        CheckpointError: the checkpoint is damaged, does not fit the model, or was not written by the
            training loop.
    """
    path = find_resume_checkpoint(resume, config.checkpoint_dir)
    if path is None:
        return None
    state = read_state(path)
    check_training_state(path, state, config)
    ckpt = restore(path, state, model, optimizer, map_location)
    history = History.from_dict(state["history"])
    history.stopped_early, history.stop_reason = False, None  # we go on
    pending_sum, pending_n = state.get("pending_loss", [0.0, 0])
    rng = state["rng_states"]
    return Resumed(
        path=path,
        step=ckpt.step,
        history=history,
        pending_loss=(pending_sum, pending_n),
        rng_state=rng[rank] if len(rng) == world_size else rng[0],
        grad_scaler=state.get("grad_scaler") or None,
    )
