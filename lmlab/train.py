"""The one training loop of the course, for every model that follows the lmlab convention
``model(idx, targets) -> (logits, loss)``.

One optimizer step (the loop in ``_train`` below), as in nanoGPT's train.py:

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

Where the rest lives: the settings, the history, the schedule and the optimizer in ``lmlab.trainconfig``;
the device and mixed precision in ``lmlab.device``; processes in ``lmlab.distributed``; the progress bar in
``lmlab.progress``; saving and resuming in ``lmlab.checkpoint``. Their public names can be imported from
here too (``from lmlab.train import TrainConfig, train``).

Left out: gradient checkpointing, FSDP/tensor parallelism, and learning-rate schedules other than
warmup + cosine (pass your own loop if you need them; this one is meant to be read).
"""

from __future__ import annotations

import inspect
import os
import time
from contextlib import nullcontext
from typing import Any, Callable

import torch
import torch.nn as nn

from lmlab.checkpoint import (
    CheckpointError,
    RunLockedError,
    claim_run_folder,
    remove_leftovers,
    resume_training,
    run_fingerprints,
    save_checkpoint,
    training_state,
    unwrap_model,
)
from lmlab.device import amp_dtype, autocast, pick_device, resolve_precision
from lmlab.distributed import Dist
from lmlab.progress import Progress
from lmlab.repro import get_rng_state, seed_rngs, set_rng_state
from lmlab.trainconfig import BatchSource, History, TrainConfig, TrainingDivergedError, lr_at, make_optimizer

__all__ = [
    "TrainConfig",
    "History",
    "TrainingDivergedError",
    "RunLockedError",
    "BatchSource",
    "train",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "pick_device",
    "resolve_precision",
]


def train(
    model: nn.Module,
    train_batches: BatchSource,
    val_batches: BatchSource | None = None,
    config: TrainConfig | None = None,
    *,
    resume: str | os.PathLike | bool = False,
    overwrite: bool = False,
    strict: bool = False,
    tokenizer: Any = None,
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
            max_steps...), data, batch shape or tokenizer that differ from the checkpoint's are named in a
            warning. ``False``: a new run; refused when ``config.checkpoint_dir`` holds another run's checkpoints.
        overwrite: ``True``: a new run may replace the run in ``config.checkpoint_dir``; its checkpoints are
            deleted when this one starts (never together with ``resume``).
        strict: with ``resume``, refuse (``ValueError``) instead of warning when settings, data, batch shape
            or tokenizer differ from the checkpoint's.
        tokenizer: the tokenizer that made the ids (optional): its fingerprint goes into the checkpoints, so
            that resuming, or sampling (``lmlab sample``), with another one is noticed.
        callback: ``callback(step, history)`` after every logged step; returning ``True`` stops.

    While it runs, ``train`` holds the lock of ``config.checkpoint_dir`` (``lmlab.checkpoint.RunLock``): a second
    trainer in the same folder is stopped.

    Raises:
        CheckpointError: the checkpoint to resume from is damaged (a field of state.json, a file whose SHA-256
            changed, NaN values), does not fit the model or optimizer, or was not written by this loop.
        FileExistsError: ``resume=False`` into a folder that holds a run (pass ``resume=True`` or ``overwrite=True``).
        RunLockedError: another training process uses ``config.checkpoint_dir``.
        TrainingDivergedError: the loss became NaN or infinite. It is caught at the next logged step,
            evaluation or checkpoint (within ``log_every`` steps), before any checkpoint is written.

    Example:
        >>> history = train(model, LMBatches(ids, 64, 32), val, TrainConfig(max_steps=500))  # doctest: +SKIP
        >>> history.plot()                                                                  # doctest: +SKIP
    """
    config = _check_arguments(model, train_batches, val_batches, config)
    dist = Dist.setup(config.device)
    try:
        with claim_run_folder(config.checkpoint_dir, resume, overwrite, main=dist.is_main):  # lock, never overwrite
            fingerprints = None
            if config.checkpoint_dir is not None or resume not in (False, None):  # what the run trains on
                fingerprints = run_fingerprints(train_batches, tokenizer)
            return _train(model, train_batches, val_batches, config, dist, resume, callback, fingerprints, strict)
    finally:
        dist.close()


def _train(model, train_batches, val_batches, config: TrainConfig, dist: Dist, resume, callback, fingerprints=None,
           strict=False) -> History:
    run = _Run(model, config, dist, resume, fingerprints, strict)  # device, optimizer, precision; restore or seed
    optimizer, scaler, history = run.optimizer, run.scaler, run.history
    progress = Progress(config.max_steps, run.start_step, show=dist.is_main, flag=config.progress,
                        live_plot=config.live_plot)
    max_norm = config.grad_clip if config.grad_clip is not None else float("inf")  # inf: measure only
    try:
        for step in range(run.start_step, config.max_steps):
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # ---- forward and backward over the micro-batches, then the update
            step_loss = run.forward_backward(train_batches, step)
            if scaler is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), max_norm)
            if scaler is not None:
                scaler.step(optimizer)  # skips the update when the gradients overflowed
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            run.add_step(done, step_loss, grad_norm)  # on the device: no host sync
            progress.step()
            last = done == config.max_steps

            # ---- log (host sync), evaluate, checkpoint (never of a diverged model)
            stop = None
            if done % config.log_every == 0 or last:
                stop = run.log(done, lr, progress, callback)
            if val_batches is not None and (done % config.eval_every == 0 or last or stop):
                stop = run.validate(done, val_batches, progress, stop)
            if stop is not None:
                history.stopped_early, history.stop_reason = True, stop
            every = config.checkpoint_every
            if config.checkpoint_dir is not None and ((every and done % every == 0) or last or stop):
                run.save(done)
            if stop is not None:
                break
    finally:
        progress.close()
    history.wall_time = time.perf_counter() - run.t_start
    progress.plot(history, force=True)
    return history


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
# the pieces of the loop


def _check_arguments(model: Any, train_batches: Any, val_batches: Any, config: Any) -> TrainConfig:
    """The config to use (defaults for None); a TypeError/ValueError for arguments ``train`` cannot use."""
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
    return config


def _pair(value: Any, who: str, what: str) -> tuple[Any, Any]:
    """``value`` if it is a pair, else a TypeError saying who returned what instead of ``what``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{who} returned {type(value).__name__}; it must return a pair {what}")
    return value[0], value[1]


def _evals_since_best(val_losses: list[float]) -> int:
    """Evaluations after the best one (the first lowest): 0 when the last evaluation is the best."""
    best = min(range(len(val_losses)), key=lambda i: (val_losses[i], i))
    return len(val_losses) - 1 - best


class _Run:
    """One call of ``train``: the model and its wrappers, the optimizer, the history, and the sums kept on
    the device between logged steps (so the inner loop never waits for the device)."""

    def __init__(self, model: nn.Module, config: TrainConfig, dist: Dist, resume: Any,
                 fingerprints: dict[str, Any] | None = None, strict: bool = False):
        """Set up, continue from a checkpoint (or seed the generators), wrap the model for the forward passes.
        ``fingerprints``: what the run trains on, saved in its checkpoints and compared with the one it resumes."""
        self.config, self.dist, self.device = config, dist, dist.device
        self.fingerprints, self.strict = fingerprints, strict
        self.model = unwrap_model(model).to(self.device)  # the plain model: checkpoints and evaluation use it
        self.model.train()
        self.optimizer = make_optimizer(self.model, config, self.device)
        precision = resolve_precision(config.precision, self.device)
        self.amp_dtype = amp_dtype(precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None  # fp16 underflows
        self.history, self.start_step = History(), 0
        pending_sum, self.pending_n = self.restore_or_seed(resume)
        # compiled and/or wrapped by DDP: the forward passes of training (evaluation skips DDP)
        self.fwd_model = torch.compile(self.model) if config.compile else self.model
        self.eval_model = self.fwd_model
        if dist.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.fwd_model = nn.parallel.DistributedDataParallel(self.fwd_model, device_ids=device_ids)
        # ---- state of the loop, kept on the device between logged steps (no host sync per step)
        self.loss_sum = torch.tensor(pending_sum, dtype=torch.float32, device=self.device)  # since the last log
        self.first_bad = torch.tensor(-1, dtype=torch.long, device=self.device)  # first step with a non-finite loss
        self.grad_norm = torch.zeros((), device=self.device)
        self.t_start = time.perf_counter() - self.history.wall_time

    def restore_or_seed(self, resume: Any) -> tuple[float, int]:
        """Continue from the checkpoint ``resume`` names (model, optimizer, history, generators), or seed the
        generators; returns the (sum, count) of the losses since the last logged step."""
        config, dist = self.config, self.dist
        if resume is True and dist.is_main and config.checkpoint_dir is not None:
            remove_leftovers(config.checkpoint_dir)  # what a process killed while saving left behind
        if resume is True:
            dist.barrier()  # every rank looks for the latest checkpoint after rank 0 has tidied the folder
        resumed = resume_training(resume, config, self.model, self.optimizer, map_location=self.device,
                                  rank=dist.rank, world_size=dist.world_size, fingerprints=self.fingerprints,
                                  strict=self.strict)
        if resumed is None:
            seed_rngs(config.seed + dist.rank)  # dropout masks differ between processes, as they should
            return 0.0, 0
        self.history, self.start_step = resumed.history, resumed.step
        set_rng_state(resumed.rng_state)
        if self.scaler is not None and resumed.grad_scaler:
            try:
                self.scaler.load_state_dict(resumed.grad_scaler)
            except (KeyError, TypeError, ValueError, RuntimeError) as e:
                raise CheckpointError(f"{resumed.path / 'state.json'}: 'grad_scaler' is malformed ({e!r}); the "
                                      "checkpoint is damaged: resume from an earlier one") from e
        return resumed.pending_loss

    def forward_backward(self, batches: BatchSource, step: int) -> torch.Tensor:
        """Forward and backward over the ``grad_accum`` micro-batches of update ``step``; the gradients add
        up to those of the mean loss of the whole batch. Returns that loss, on the device."""
        config, dist, device = self.config, self.dist, self.device
        step_loss = torch.zeros((), device=device)
        for micro in range(config.grad_accum):
            batch = batches.get(step * config.grad_accum + micro)  # x (B, T), y (B, T)
            x, y = _pair(batch, "train_batches.get(step)", "(x, y), as lmlab.data.batching.LMBatches does")
            x, y = dist.shard(x, y)  # (B / world, T): this process's share
            if device.type == "cuda" and not x.is_cuda:
                x, y = x.pin_memory(), y.pin_memory()  # page-locked: the copy below does not block the host
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            last_micro = micro == config.grad_accum - 1
            # DDP averages gradients across processes during backward; only needed on the last micro-batch
            sync = self.fwd_model.no_sync() if (dist.world_size > 1 and not last_micro) else nullcontext()
            with sync:
                with autocast(device, self.amp_dtype):
                    _, loss = _pair(self.fwd_model(x, y), "the model", "(logits, loss), the lmlab convention")
                if loss is None:
                    raise TypeError("the model returned loss=None; it must compute the loss when given targets")
                loss = loss / config.grad_accum  # gradients add up over micro-batches: mean of the batch
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            step_loss += loss.detach().float()
            self.history.tokens_seen += y.numel() * dist.world_size
        return step_loss

    def add_step(self, done: int, step_loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Add update ``done``'s loss to the sums since the last log and note whether it was finite."""
        finite = torch.isfinite(step_loss)
        if self.scaler is None:  # (with fp16 the scaler handles overflowing gradients by skipping the step)
            finite = finite & torch.isfinite(grad_norm)  # NaN gradients would poison the weights
        self.first_bad = torch.where((self.first_bad < 0) & ~finite, done, self.first_bad)  # stays on the device
        self.loss_sum += step_loss
        self.pending_n += 1
        self.grad_norm = grad_norm

    def check_finite(self, step: int) -> None:
        """Raise if a loss went NaN/inf since the start (syncs with the device)."""
        never = torch.iinfo(torch.long).max
        bad = int(self.dist.all_reduce(torch.where(self.first_bad < 0, never, self.first_bad), "min"))
        if bad != never:
            self.history.wall_time = time.perf_counter() - self.t_start
            lr = lr_at(bad - 1, self.config)
            raise TrainingDivergedError(
                f"the training loss (or its gradient) became NaN or infinite at step {bad} (learning rate {lr:.3g}); "
                f"training stopped at step {step} and no checkpoint was written after it went bad. Try: a lower "
                f"learning rate (e.g. lr={self.config.lr / 3:.2g}), gradient clipping (grad_clip=1.0), checking the "
                "data (targets in 0..vocab_size-1, no NaN inputs), or precision='fp32'.",
                step=bad, lr=lr, history=self.history,
            )

    def log(self, done: int, lr: float, progress: Progress, callback: Any) -> str | None:
        """Record the mean loss since the last log; returns "callback" if the callback asks to stop."""
        self.check_finite(done)
        world, history = self.dist.world_size, self.history
        mean_loss = (self.dist.all_reduce(self.loss_sum, "sum") / (world * self.pending_n)).item()
        history.steps.append(done)
        history.train_losses.append(mean_loss)
        history.lrs.append(lr)
        history.grad_norms.append(self.grad_norm.item())
        history.tokens.append(history.tokens_seen)
        history.wall_time = time.perf_counter() - self.t_start
        history.times.append(history.wall_time)
        self.loss_sum.zero_()
        self.pending_n = 0
        progress.show(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
        progress.plot(history)
        stop = "callback" if callback is not None and callback(done, history) else None
        return self.dist.agree(stop)

    def validate(self, done: int, batches: BatchSource, progress: Progress, stop: str | None) -> str | None:
        """Record the validation loss; returns "early_stopping" when patience has run out, else ``stop``."""
        self.check_finite(done)
        val = evaluate(self.eval_model, batches, self.config.eval_batches, self.device, dtype=self.amp_dtype)
        self.history.val_steps.append(done)
        self.history.val_losses.append(val)
        progress.show(val=f"{val:.4f}")
        patience = self.config.early_stopping_patience
        if patience is not None and _evals_since_best(self.history.val_losses) >= patience:
            stop = "early_stopping"
        return self.dist.agree(stop)

    def save(self, done: int) -> None:
        """A checkpoint after update ``done`` (rank 0 writes it), once the losses are known to be finite."""
        self.check_finite(done)
        rng = self.dist.gather(get_rng_state())  # one per process
        if not self.dist.is_main:
            return
        self.history.wall_time = time.perf_counter() - self.t_start
        state = training_state(self.history, self.config, rng, (float(self.loss_sum), self.pending_n),
                               self.scaler.state_dict() if self.scaler is not None else None, self.dist.world_size,
                               self.fingerprints)
        save_checkpoint(self.config.checkpoint_dir, self.model, self.optimizer, step=done, state=state,
                        keep=self.config.keep_checkpoints)
