"""Keeping track of a training run: a fingerprint of the weights, per-parameter gradient norms, and
TensorBoard logging from ``lmlab.train``'s callback.

- ``params_hash(model)``: one SHA-256 over every parameter, in name order. Two runs that end with the
  same hash have bit-identical weights -- the strictest reproducibility check there is.
- ``grad_norms(model)``: the L2 norm of each parameter's gradient after ``backward()``; a layer whose
  gradients are 0, tiny or huge compared with the others is where to look when training misbehaves.
- ``TensorBoardCallback(log_dir)``: pass it as ``train(..., callback=cb)``; it writes the history's
  losses, learning rates and gradient norms as TensorBoard scalars (``tensorboard --logdir runs``).
  ``read_scalars(log_dir)`` reads the event files back.

TensorBoard stores scalars as float32, so a logged value equals ``float(torch.tensor(x,
dtype=torch.float32))`` of the history's float64 value, not the value itself.

Left out: other trackers (Weights & Biases, MLflow: their callbacks would have the same shape), images,
histograms and hyperparameter tables.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
import torch.nn as nn

__all__ = ["params_hash", "grad_norms", "TensorBoardCallback", "read_scalars"]


def params_hash(model: nn.Module) -> str:
    """SHA-256 hex digest of all parameters: for each ``(name, p)`` of ``model.named_parameters()``
    sorted by name, the name (UTF-8) and then the raw bytes of ``p`` (on the CPU, contiguous).

    Tied parameters count once (``named_parameters`` skips duplicates); buffers are not included.
    Any change of any bit of any parameter changes the hash; the order in which modules were
    registered does not matter.

    Example:
        >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
        >>> b.load_state_dict(a.state_dict()); params_hash(a) == params_hash(b)   # doctest: +SKIP
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"params_hash takes a torch.nn.Module, got {type(model).__name__}")
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode("utf-8"))
        t = p.detach().cpu().contiguous()
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes, whatever the dtype
    return h.hexdigest()


def grad_norms(model: nn.Module) -> dict[str, float]:
    """The L2 norm of each parameter's gradient, ``{name: ||p.grad||_2}``, in ``named_parameters`` order.

    Parameters without a gradient (``p.grad is None``: frozen, unused, or before the first backward)
    are left out. The total norm that gradient clipping uses is ``sqrt(sum(n ** 2 for n in ...))``.

    Example:
        >>> lin = nn.Linear(2, 1); lin(torch.ones(1, 2)).sum().backward()
        >>> grad_norms(lin)          # d(w.x + b)/dw = x = (1, 1), d/db = 1
        {'weight': 1.4142135381698608, 'bias': 1.0}
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"grad_norms takes a torch.nn.Module, got {type(model).__name__}")
    return {name: p.grad.detach().float().norm().item() for name, p in model.named_parameters() if p.grad is not None}


class TensorBoardCallback:
    """Log a ``lmlab.train`` run to TensorBoard: ``train(..., callback=TensorBoardCallback("runs/a"))``.

    At every logged step it writes the new entries of the history: ``train/loss``, ``train/lr``,
    ``train/grad_norm`` and ``val/loss`` (evaluations made so far), each at its step. The training loop
    calls the callback before the evaluation of the same step, so the last evaluation is written by
    ``close(history)``, which also flushes and closes the event file. Use it as a context manager or
    call ``close`` yourself.

    A resumed run gets a history that already holds the earlier steps; pass ``after_step=<the
    checkpoint's step>`` so they are not written twice into the same folder.

    Args:
        log_dir: folder for the event files (created if needed); one folder per run.
        after_step: write only entries with a step greater than this.

    Example:
        >>> with TensorBoardCallback("runs/demo") as tb:                          # doctest: +SKIP
        ...     history = train(model, batches, val, config, callback=tb)
        ...     tb.close(history)
    """

    def __init__(self, log_dir: str | os.PathLike, *, after_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.log_dir = os.fspath(log_dir)
        self.writer: Any = SummaryWriter(self.log_dir)
        self._last_train = after_step  # last step written for train/*
        self._last_val = after_step  # last step written for val/loss
        self.closed = False

    def _write(self, history: Any) -> None:
        if self.closed:
            raise ValueError(f"this TensorBoardCallback ({self.log_dir}) is closed; make a new one for another run")
        w = self.writer
        for i, step in enumerate(history.steps):
            if step > self._last_train:
                w.add_scalar("train/loss", history.train_losses[i], step)
                w.add_scalar("train/lr", history.lrs[i], step)
                w.add_scalar("train/grad_norm", history.grad_norms[i], step)
                self._last_train = step
        for step, loss in zip(history.val_steps, history.val_losses):
            if step > self._last_val:
                w.add_scalar("val/loss", loss, step)
                self._last_val = step

    def __call__(self, step: int, history: Any) -> bool:
        """The training loop's callback: write what is new; never asks to stop (returns False)."""
        self._write(history)
        return False

    def close(self, history: Any = None) -> None:
        """Write what ``history`` holds that is not written yet (the last evaluation), flush, close."""
        if self.closed:
            return
        if history is not None:
            self._write(history)
        self.writer.flush()
        self.writer.close()
        self.closed = True

    def __enter__(self) -> TensorBoardCallback:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_scalars(log_dir: str | os.PathLike) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar TensorBoard event files in ``log_dir`` hold: ``{tag: (steps, values)}``.

    Values come back as Python floats of the stored float32 numbers.

    Example:
        >>> read_scalars("runs/demo")["train/loss"]            # doctest: +SKIP
        ([10, 20, 30], [1.93..., 1.71..., 1.52...])
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not os.path.isdir(log_dir):
        raise ValueError(f"{os.fspath(log_dir)!r} is not a folder; pass the log_dir the run was written to")
    acc = EventAccumulator(os.fspath(log_dir), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        out[tag] = ([e.step for e in events], [float(e.value) for e in events])
    return out
