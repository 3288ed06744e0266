"""The one training loop of the course, for every model that follows the lmlab convention
``model(idx, targets) -> (logits, loss)``.

One optimizer step (``train`` below), as in nanoGPT's train.py:

1. set the learning rate of this step (``lr_at``: linear warmup, then cosine decay to ``min_lr``);
2. for each of ``grad_accum`` micro-batches: forward (under autocast on a GPU), ``loss / grad_accum``,
   backward -- gradients add up, so 2 micro-batches of 4 rows give the gradient of one batch of 8;
3. clip the gradient norm (and record it), AdamW step, zero the gradients;
4. every ``log_every`` steps: read the loss (the only host-device sync of the inner loop), check it is
   finite, update the history and the progress bar, call the callback;
5. every ``eval_every`` steps: validation loss (``evaluate``), early stopping;
6. every ``checkpoint_every`` steps and at the end: an atomic checkpoint (``lmlab.checkpoint``).

Batch sources (``lmlab.data.batching``) are stateless: micro-batch m of step s is
``train_batches.get(s * grad_accum + m)``. So resuming from a checkpoint only needs the model, the
optimizer, the step, the history and the random-number-generator states (dropout draws from PyTorch's
generator); on CPU a resumed run's losses are bit-identical to those of a run that never stopped.

Distributed data parallel: started by ``torchrun --nproc_per_node=N``, each process takes rows
``rank::N`` of every batch the source gives, gradients are averaged across processes by
``DistributedDataParallel``, so N processes with a global batch of B rows compute what one process
with B rows computes. Only rank 0 writes checkpoints and shows progress.

Step numbers: ``History.steps`` and checkpoint steps count optimizer updates done (1 = after the first
update); ``lr_at(s)`` and ``train_batches.get`` take the 0-based index of the update.

Left out: gradient checkpointing, FSDP/tensor parallelism, and learning-rate schedules other than
warmup + cosine (pass your own loop if you need them; this one is meant to be read).
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn as nn

from lmlab.checkpoint import (
    CheckpointError,
    _resolve,
    latest_checkpoint,
    load_checkpoint,
    read_state,
    remove_leftovers,
    save_checkpoint,
    unwrap_model,
)
from lmlab.device import PRECISIONS, autocast, pick_device, resolve_precision
from lmlab.repro import get_rng_state, seed_rngs, set_rng_state

__all__ = [
    "TrainConfig",
    "History",
    "TrainingDivergedError",
    "BatchSource",
    "train",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "pick_device",
    "resolve_precision",
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


# ----------------------------------------------------------------------------------------------------
# pure pieces: schedule, optimizer, evaluation


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


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: BatchSource,
    n_batches: int = 20,
    device: str | torch.device | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> float:
    """Mean loss of ``model`` over batches ``0 .. n_batches - 1`` of ``batches``, without dropout.

    The model is put in eval mode (and back into the mode it was in), gradients are off.
    ``dtype``: autocast dtype (``torch.bfloat16``...) or ``None`` for full precision.

    Shape:
        batches.get(i) -> x (B, T), y (B, T); returns one float.
    """
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    try:
        for i in range(n_batches):
            x, y = batches.get(i)
            with autocast(device, dtype):
                _, loss = model(x.to(device), y.to(device))
            total += loss.float()
    finally:
        model.train(was_training)
    return (total / n_batches).item()


# ----------------------------------------------------------------------------------------------------
# environment: progress, live plot, distributed


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (without importing IPython when it is not loaded)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _progress_on(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    if os.environ.get("LMLAB_PROGRESS") == "0":
        return False
    return _in_notebook() or sys.stderr.isatty()


class _LivePlot:
    """Redraw the loss plot in a notebook cell, at most once a second."""

    def __init__(self) -> None:
        self.last = 0.0

    def update(self, history: History, force: bool = False) -> None:
        if not force and time.perf_counter() - self.last < 1.0:
            return
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        fig, ax = plt.subplots(figsize=(5, 3))
        history.plot(ax)
        clear_output(wait=True)
        display(fig)
        plt.close(fig)
        self.last = time.perf_counter()


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    created_group: bool = False  # we called init_process_group, so we destroy it


def _setup_distributed(preferred: str | None) -> _Dist:
    """One process (WORLD_SIZE unset or 1), or join the group torchrun started."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(preferred)
    if world <= 1:
        return _Dist(device=device)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if device.type == "mps":
        raise ValueError("distributed training is not supported on MPS; use device='cpu' or a CUDA machine")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return _Dist(rank=rank, world_size=world, device=device, created_group=created)


def _all_reduce(t: torch.Tensor, op: str, world: int) -> torch.Tensor:
    """Sum or min of ``t`` over all processes (``t`` itself with one process)."""
    if world == 1:
        return t
    import torch.distributed as dist

    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MIN)
    return t


def _agree(stop_reason: str | None, world: int) -> str | None:
    """Every process must stop at the same step: all follow rank 0's decision."""
    if world == 1:
        return stop_reason
    import torch.distributed as dist

    decision = [stop_reason]
    dist.broadcast_object_list(decision, src=0)
    return decision[0]


def _resume_path(resume: str | os.PathLike | bool, config: TrainConfig) -> Path | None:
    if resume is False or resume is None:
        return None
    if resume is True:
        if config.checkpoint_dir is None:
            raise ValueError("resume=True needs TrainConfig.checkpoint_dir (or pass the checkpoint path as resume=...)")
        return latest_checkpoint(config.checkpoint_dir)  # None: nothing saved yet, start from scratch
    path = Path(resume)
    if not path.exists():
        raise ValueError(f"resume={str(resume)!r}: no such checkpoint folder")
    return path


# settings that may change between a run and its resumption without changing its results
_RESUME_FREE = ("seed", "eval_every", "eval_batches", "early_stopping_patience", "device", "checkpoint_dir",
                "checkpoint_every", "keep_checkpoints", "log_every", "progress", "live_plot", "compile")


def _check_training_state(path: Path, state: dict[str, Any], config: TrainConfig) -> None:
    """Refuse a checkpoint without the training loop's state; warn, naming them, about changed settings."""
    missing = [k for k in ("history", "rng_states") if k not in state]
    if missing or not isinstance(state.get("history"), dict) or not isinstance(state.get("rng_states"), list):
        raise CheckpointError(
            f"{path} has no usable training state ({', '.join(missing) or 'history/rng_states malformed'}): "
            "it was not written by lmlab.train. Load its weights with lmlab.checkpoint.load_checkpoint(path, "
            "model) and start a new run instead of resume=..."
        )
    saved = state.get("train_config")
    if isinstance(saved, dict):
        current = asdict(config)
        diffs = [
            f"{k}: checkpoint {saved.get(k)!r}, now {current[k]!r}"
            for k in current
            if k not in _RESUME_FREE and k in saved and _jsonish(saved[k]) != _jsonish(current[k])
        ]
        if diffs:
            import warnings

            warnings.warn(
                f"resuming {path} with other training settings than it was saved with: {'; '.join(diffs)}. "
                "The run will not match one that never stopped; resume with the saved TrainConfig "
                "(its state.json 'train_config') to continue it exactly.",
                stacklevel=4,
            )


def _jsonish(value: Any) -> Any:
    """Tuples as lists, as they come back from JSON."""
    return list(value) if isinstance(value, tuple) else value


def _pair(value: Any, who: str, what: str) -> tuple[Any, Any]:
    """``value`` if it is a pair, else a TypeError saying who returned what instead of ``what``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{who} returned {type(value).__name__}; it must return a pair {what}")
    return value[0], value[1]


def _evals_since_best(val_losses: list[float]) -> int:
    """Evaluations after the best one (the first lowest): 0 when the last evaluation is the best."""
    best = min(range(len(val_losses)), key=lambda i: (val_losses[i], i))
    return len(val_losses) - 1 - best


# ----------------------------------------------------------------------------------------------------
# the loop


def train(
    model: nn.Module,
    train_batches: BatchSource,
    val_batches: BatchSource | None = None,
    config: TrainConfig | None = None,
    *,
    resume: str | os.PathLike | bool = False,
    callback: Callable[[int, History], bool | None] | None = None,
) -> History:
    """Train ``model`` in place; return its ``History``.

    Args:
        model: any module with ``forward(x, y) -> (logits, loss)``; moved to the chosen device.
        train_batches: batch source; micro-batch m of update s is ``get(s * grad_accum + m)``.
        val_batches: batch source for ``evaluate`` (batches ``0 .. eval_batches - 1``), or ``None``.
        config: a ``TrainConfig`` (default settings when ``None``).
        resume: ``True``: continue from the latest checkpoint in ``config.checkpoint_dir`` (or start
            from scratch if there is none yet), after removing what a process killed while saving left
            there; a path: continue from that checkpoint. Settings that change the results (lr, betas,
            max_steps...) and differ from the checkpoint's are named in a warning.
        callback: ``callback(step, history)`` after every logged step; returning ``True`` stops.

    Raises:
        CheckpointError: the checkpoint to resume from is damaged, does not fit the model, or was not
            written by this loop (no history or generator states).
        TrainingDivergedError: the loss became NaN or infinite. It is caught at the next logged step,
            evaluation or checkpoint (within ``log_every`` steps), before any checkpoint is written.

    Example:
        >>> history = train(model, LMBatches(ids, 64, 32), val, TrainConfig(max_steps=500))  # doctest: +SKIP
        >>> history.plot()                                                                  # doctest: +SKIP
    """
    config = config if config is not None else TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    for name, source in (("train_batches", train_batches), ("val_batches", val_batches)):
        if source is not None and not callable(getattr(source, "get", None)):
            raise TypeError(f"{name} must have a get(step) -> (x, y) method (e.g. lmlab.data.batching.LMBatches)")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        inspect.signature(unwrap_model(model).forward).bind(None, None)
    except TypeError:
        raise TypeError(
            f"{type(unwrap_model(model)).__name__}.forward cannot be called as forward(x, targets); train needs a "
            "model following the lmlab convention model(idx, targets) -> (logits, loss)"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): find out when it is called
        pass
    if config.early_stopping_patience is not None and val_batches is None:
        raise ValueError("early_stopping_patience needs val_batches to measure the validation loss")

    env = _setup_distributed(config.device)
    try:
        return _train(model, train_batches, val_batches, config, env, resume, callback)
    finally:
        if env.created_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(model, train_batches, val_batches, config: TrainConfig, env: _Dist, resume, callback) -> History:
    from tqdm.auto import tqdm

    device, rank, world = env.device, env.rank, env.world_size
    raw = unwrap_model(model).to(device)  # the plain model: checkpoints and evaluation use it
    raw.train()
    optimizer = make_optimizer(raw, config, device)
    precision = resolve_precision(config.precision, device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # fp16 gradients underflow

    # ---- start or resume
    history, start, pending_sum, pending_n = History(), 0, 0.0, 0
    if resume is True and rank == 0 and config.checkpoint_dir is not None:
        remove_leftovers(config.checkpoint_dir)  # what a process killed while saving left behind
    if world > 1 and resume is True:
        import torch.distributed as dist

        dist.barrier()  # every rank looks for the latest checkpoint after rank 0 has tidied the folder
    path = _resume_path(resume, config)
    if path is not None:
        path = _resolve(path)  # a step-XXXXXX folder
        _check_training_state(path, read_state(path), config)  # before anything is loaded
        ckpt = load_checkpoint(path, raw, optimizer, map_location=device)
        start, state = ckpt.step, ckpt.state
        history = History.from_dict(state["history"])
        history.stopped_early, history.stop_reason = False, None  # we go on
        pending_sum, pending_n = state.get("pending_loss", [0.0, 0])
        rng = state["rng_states"]
        set_rng_state(rng[rank] if len(rng) == world else rng[0])
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
    else:
        seed_rngs(config.seed + rank)  # dropout masks differ between processes, as they should

    fwd_model: nn.Module = torch.compile(raw) if config.compile else raw  # type: ignore[assignment]
    eval_model = fwd_model
    if world > 1:
        fwd_model = nn.parallel.DistributedDataParallel(
            fwd_model, device_ids=[device.index] if device.type == "cuda" else None
        )

    # ---- state of the loop, kept on the device between logged steps (no host sync per step)
    loss_sum = torch.tensor(pending_sum, dtype=torch.float32, device=device)  # losses since the last log
    first_bad = torch.tensor(-1, dtype=torch.long, device=device)  # first step with a non-finite loss
    grad_norm = torch.zeros((), device=device)
    t_start = time.perf_counter() - history.wall_time
    is_main = rank == 0
    show = is_main and _progress_on(config.progress)
    bar = tqdm(total=config.max_steps, initial=start, desc="train", disable=not show)
    postfix: dict[str, str] = {}  # live numbers shown after the bar
    live = _LivePlot() if (config.live_plot and is_main and _in_notebook()) else None

    def check_finite(step: int) -> None:
        """Raise if a loss went NaN/inf since the start (syncs with the device)."""
        bad = int(_all_reduce(torch.where(first_bad < 0, torch.iinfo(torch.long).max, first_bad), "min", world))
        if bad != torch.iinfo(torch.long).max:
            history.wall_time = time.perf_counter() - t_start
            lr = lr_at(bad - 1, config)
            raise TrainingDivergedError(
                f"the training loss (or its gradient) became NaN or infinite at step {bad} (learning rate {lr:.3g}); "
                f"training stopped at step {step} and no checkpoint was written after it went bad. Try: a lower "
                f"learning rate (e.g. lr={config.lr / 3:.2g}), gradient clipping (grad_clip=1.0), checking the "
                "data (targets in 0..vocab_size-1, no NaN inputs), or precision='fp32'.",
                step=bad, lr=lr, history=history,
            )

    def save(step: int) -> None:
        rng = [get_rng_state()]
        if world > 1:
            import torch.distributed as dist

            rng = [None] * world
            dist.all_gather_object(rng, get_rng_state())
        if not is_main:
            return
        history.wall_time = time.perf_counter() - t_start
        state = {
            "history": history.to_dict(),
            "train_config": asdict(config),
            "rng_states": rng,  # one per process
            "pending_loss": [float(loss_sum), pending_n],  # losses since the last log, for exact resume
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
            "world_size": world,
        }
        save_checkpoint(config.checkpoint_dir, raw, optimizer, step=step, state=state, keep=config.keep_checkpoints)

    try:
        for step in range(start, config.max_steps):
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # ---- forward and backward over the micro-batches
            step_loss = torch.zeros((), device=device)
            for micro in range(config.grad_accum):
                batch = train_batches.get(step * config.grad_accum + micro)  # x (B, T), y (B, T)
                x, y = _pair(batch, "train_batches.get(step)", "(x, y), as lmlab.data.batching.LMBatches does")
                if world > 1:
                    if len(x) % world != 0:
                        raise ValueError(
                            f"a batch of {len(x)} rows cannot be split evenly over {world} processes; "
                            f"use a batch size divisible by {world}"
                        )
                    x, y = x[rank::world], y[rank::world]  # (B / world, T): this process's share
                if device.type == "cuda" and not x.is_cuda:
                    x, y = x.pin_memory(), y.pin_memory()  # page-locked: the copy below does not block the host
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                last_micro = micro == config.grad_accum - 1
                # DDP averages gradients across processes during backward; only needed on the last micro-batch
                sync = fwd_model.no_sync() if (world > 1 and not last_micro) else nullcontext()
                with sync:
                    with autocast(device, amp_dtype):
                        _, loss = _pair(fwd_model(x, y), "the model", "(logits, loss), the lmlab convention")
                    if loss is None:
                        raise TypeError("the model returned loss=None; it must compute the loss when given targets")
                    loss = loss / config.grad_accum  # gradients add up over micro-batches: mean of the batch
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                step_loss += loss.detach().float()
                history.tokens_seen += y.numel() * world

            # ---- update
            if scaler is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            max_norm = config.grad_clip if config.grad_clip is not None else float("inf")  # inf: measure only
            grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), max_norm)
            if scaler is not None:
                scaler.step(optimizer)  # skips the update when the gradients overflowed
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            done = step + 1
            finite = torch.isfinite(step_loss)
            if scaler is None:  # (with fp16 the scaler handles overflowing gradients by skipping the step)
                finite = finite & torch.isfinite(grad_norm)  # NaN gradients would poison the weights
            first_bad = torch.where((first_bad < 0) & ~finite, done, first_bad)  # stays on the device
            loss_sum += step_loss
            pending_n += 1
            bar.update(1)
            last = done == config.max_steps
            stop_reason = None

            # ---- log (host sync)
            if done % config.log_every == 0 or last:
                check_finite(done)
                mean_loss = (_all_reduce(loss_sum, "sum", world) / (world * pending_n)).item()
                history.steps.append(done)
                history.train_losses.append(mean_loss)
                history.lrs.append(lr)
                history.grad_norms.append(grad_norm.item())
                history.tokens.append(history.tokens_seen)
                history.wall_time = time.perf_counter() - t_start
                history.times.append(history.wall_time)
                loss_sum.zero_()
                pending_n = 0
                postfix.update(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
                bar.set_postfix(postfix)
                if live is not None:
                    live.update(history)
                if callback is not None and callback(done, history):
                    stop_reason = "callback"
                stop_reason = _agree(stop_reason, world)

            # ---- evaluate
            if val_batches is not None and (done % config.eval_every == 0 or last or stop_reason):
                check_finite(done)
                val = evaluate(eval_model, val_batches, config.eval_batches, device, dtype=amp_dtype)
                history.val_steps.append(done)
                history.val_losses.append(val)
                postfix["val"] = f"{val:.4f}"
                bar.set_postfix(postfix)
                patience = config.early_stopping_patience
                if patience is not None and _evals_since_best(history.val_losses) >= patience:
                    stop_reason = "early_stopping"
                stop_reason = _agree(stop_reason, world)

            if stop_reason is not None:
                history.stopped_early, history.stop_reason = True, stop_reason

            # ---- checkpoint (never of a diverged model)
            every = config.checkpoint_every
            if config.checkpoint_dir is not None and ((every and done % every == 0) or last or stop_reason):
                check_finite(done)
                save(done)
            if stop_reason is not None:
                break
    finally:
        bar.close()
    history.wall_time = time.perf_counter() - t_start
    if live is not None:
        live.update(history, force=True)
    return history
