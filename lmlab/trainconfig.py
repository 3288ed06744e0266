"""The settings of the training loop and what it records, and the two pure pieces it is built from.

- ``TrainConfig``: every setting of ``lmlab.train.train``, with why it exists; plain data (``asdict`` gives
  the JSON stored in checkpoints).
- ``History``: what happened, one entry per logged step and per evaluation; ``plot`` draws the losses.
- ``lr_at``: the learning-rate schedule, linear warmup then cosine decay to ``min_lr``.
- ``make_optimizer``: AdamW with weight decay on matrices and embeddings only.

Step numbers: ``History.steps`` and checkpoint steps count optimizer updates done (1 = after the first
update); ``lr_at(s)`` and ``train_batches.get`` take the 0-based index of the update.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import torch
import torch.nn as nn

from lmlab.device import PRECISIONS

__all__ = [
    "TrainConfig",
    "History",
    "TrainingDivergedError",
    "BatchSource",
    "RESUME_FREE",
    "lr_at",
    "make_optimizer",
]


class BatchSource(Protocol):
    """Anything with ``get(step) -> (x, y)``; see ``lmlab.data.batching``."""

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class TrainConfig:
    """Settings of ``train``. Plain data: ``dataclasses.asdict`` gives JSON for checkpoints."""

    max_steps: int = 1000  # optimizer updates in the whole run (also the length of the LR schedule)
    lr: float = 1e-3  # peak learning rate, reached at the end of warmup
    min_lr: float | None = None  # learning rate at the end of the cosine decay (None: lr / 10)
    warmup_steps: int = 100  # linear warmup from lr / warmup_steps to lr: early updates are noisy
    weight_decay: float = 0.1  # AdamW decay on tensors with dim >= 2 (as nanoGPT: matrices and embeddings)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW moment decay rates (0.95: nanoGPT/GPT-3's choice)
    grad_clip: float | None = 1.0  # clip the total gradient norm to this (None: no clipping)
    grad_accum: int = 1  # micro-batches per update: a bigger effective batch in the same memory
    eval_every: int = 100  # steps between validation losses (also at the end)
    eval_batches: int = 20  # validation batches averaged per evaluation
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    device: str | None = None  # None: CUDA, then MPS, then CPU
    precision: str = "auto"  # "auto" (bf16 on CUDA if supported, else fp16; fp32 on CPU/MPS), "fp32", "bf16", "fp16"
    compile: bool = False  # torch.compile the model (faster on GPU after a slow first step)
    seed: int = 0  # seeds dropout and any other randomness in the model (rank r of DDP uses seed + r)
    checkpoint_dir: str | None = None  # folder for checkpoints (None: no checkpoints)
    checkpoint_every: int | None = None  # steps between checkpoints; also one at the end
    keep_checkpoints: int = 2  # newest checkpoints kept in checkpoint_dir
    log_every: int = 10  # steps between loss readings (the only host-device sync in the inner loop)
    progress: bool | None = None  # tqdm bar; None: on when interactive and LMLAB_PROGRESS != "0"
    live_plot: bool = False  # redraw a loss plot in the notebook (only inside IPython)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON gives lists back
        for name in ("max_steps", "grad_accum", "eval_every", "eval_batches", "log_every", "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr!r}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"TrainConfig.min_lr must be between 0 and lr={self.lr}, got {self.min_lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be positive or None, got {self.grad_clip!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("early_stopping_patience", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"TrainConfig.{name} must be a positive int or None, got {value!r}")
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ValueError("TrainConfig.checkpoint_every is set but checkpoint_dir is None; set a checkpoint_dir")


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite. ``step``, ``lr`` and the ``history`` up to then are
    attached; no checkpoint was written after the loss went bad."""

    def __init__(self, message: str, step: int, lr: float, history: History):
        super().__init__(message)
        self.step, self.lr, self.history = step, lr, history


@dataclass
class History:
    """What happened during training, one entry per logged step (and per evaluation).

    ``steps`` count optimizer updates done. ``train_losses[i]`` is the mean training loss over the
    steps since the previous log (nats per token for language models).
    """

    steps: list[int] = field(default_factory=list)  # logged steps
    train_losses: list[float] = field(default_factory=list)  # mean loss since the previous logged step
    lrs: list[float] = field(default_factory=list)  # learning rate of the logged step
    grad_norms: list[float] = field(default_factory=list)  # gradient norm before clipping, logged step
    tokens: list[int] = field(default_factory=list)  # target tokens (all processes) seen up to the logged step
    times: list[float] = field(default_factory=list)  # training seconds up to the logged step
    val_steps: list[int] = field(default_factory=list)  # steps at which the validation loss was measured
    val_losses: list[float] = field(default_factory=list)
    tokens_seen: int = 0  # target tokens seen so far, all processes together
    wall_time: float = 0.0  # seconds spent in train() (summed over resumed runs)
    stopped_early: bool = False  # stopped before max_steps (early stopping or the callback)
    stop_reason: str | None = None  # "early_stopping", "callback" or None

    @property
    def best_val_loss(self) -> float | None:
        """The lowest validation loss, or ``None`` before any evaluation."""
        finite = [v for v in self.val_losses if math.isfinite(v)]
        return min(finite) if finite else None

    @property
    def best_val_step(self) -> int | None:
        best = self.best_val_loss
        return None if best is None else self.val_steps[self.val_losses.index(best)]

    @property
    def final_train_loss(self) -> float | None:
        return self.train_losses[-1] if self.train_losses else None

    @property
    def final_val_loss(self) -> float | None:
        return self.val_losses[-1] if self.val_losses else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of ``to_dict``; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def plot(self, ax: Any = None, logy: bool = False) -> Any:
        """Training and validation loss against the step (matplotlib). Returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        ax.plot(self.steps, self.train_losses, label="train")
        if self.val_losses:
            ax.plot(self.val_steps, self.val_losses, "o-", markersize=3, label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats / token)")
        if logy:
            ax.set_yscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
        return ax


# settings that may change between a run and its resumption without changing its results
RESUME_FREE = ("seed", "eval_every", "eval_batches", "early_stopping_patience", "device", "checkpoint_dir",
               "checkpoint_every", "keep_checkpoints", "log_every", "progress", "live_plot", "compile")


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of update ``step`` (counted from 0): linear warmup, then cosine decay.

    - ``step < warmup_steps``: ``lr * (step + 1) / warmup_steps`` (so the first update is not 0);
    - then ``min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2`` with ``p = (step - warmup) / (max_steps - warmup)``;
    - from ``max_steps`` on: ``min_lr``.

    Example (lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110):
        step 0 -> 1e-4, step 9 -> 1e-3, step 10 -> 1e-3, step 60 -> 5.5e-4, step 110 -> 1e-4
    """
    min_lr = config.lr / 10 if config.min_lr is None else config.min_lr
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_steps = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    return min_lr + (config.lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device | None = None) -> torch.optim.AdamW:
    """AdamW with two parameter groups: weight decay on tensors with ``dim >= 2``, none on the rest.

    As nanoGPT: matrices of Linear layers *and embeddings* decay; biases and LayerNorm gains do not
    (decaying a gain towards 0 would shrink the activations, not regularize). Tied tensors count once.
    ``fused=True`` (one kernel for all parameters) on CUDA.
    """
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() skips tied duplicates
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    extra = {}
    if device is not None and device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters:
        extra["fused"] = True
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, **extra)
