"""The training loop's own work per step: host reads of device values (host-device syncs on a GPU) and host
milliseconds spent outside the model.

- reads per step: ``lmlab.device.HostReads`` counts ``.item()``, ``bool(t)``, ``int(t)``... during ``train`` runs
  that log only at their end; runs of N and 4N steps give the reads per step between logs, and the rest are
  the reads done once per run (the model's token-id check on the first step, the log step). On a GPU, the CUDA
  sync debug mode also counts the real syncs.
- ms per step: ``lmlab.train.train`` against the bare step (batch, forward, backward, clip, AdamW: nanoGPT's
  loop without its logging) on the same model and batches, each timed over N and 4N steps so that the set-up
  cancels; the difference is the loop's own work (history, finite checks, progress bar, batch copy).
- batch: ``LMBatches.get`` and the copy to the device, microseconds per batch.

A small model makes the loop's own work visible; on a CPU nothing waits for a sync, so the reads are what a
GPU would wait for.

    python benchmarks/loop_syncs.py [--size tiny|shakespeare] [--steps 100] [--reps 5] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from lmlab.data.batching import LMBatches, PinnedCopy
from lmlab.device import HostReads, pick_device
from lmlab.models import GPT, GPTConfig
from lmlab.train import TrainConfig, make_optimizer, train

SIZES = {  # model and batch: tiny (the loop's work shows), nanoGPT's Shakespeare-char config
    "tiny": dict(model=dict(vocab_size=65, block_size=16, n_layer=1, n_head=2, n_embd=32), batch=4),
    "shakespeare": dict(model=dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
                        batch=64),
}


def setup(size: str, device: torch.device) -> tuple[GPT, LMBatches, TrainConfig]:
    s = SIZES[size]
    torch.manual_seed(0)
    model = GPT(GPTConfig(**s["model"])).to(device)
    ids = torch.randint(0, s["model"]["vocab_size"], (100_000,))
    batches = LMBatches(ids, s["model"]["block_size"], s["batch"])
    config = TrainConfig(lr=1e-3, warmup_steps=10, eval_every=10**9, progress=False, device=str(device))
    return model, batches, config


def run_train(size: str, device: torch.device, steps: int) -> float:
    """Seconds of a ``train`` run of ``steps`` steps that logs once, at its end."""
    model, batches, config = setup(size, device)
    config.max_steps, config.log_every = steps, steps
    t0 = time.perf_counter()
    train(model, batches, None, config)
    return time.perf_counter() - t0


def count_reads(size: str, device: torch.device, steps: int) -> tuple[int, int]:
    """(host reads, CUDA syncs) of a ``train`` run of ``steps`` steps that logs once, at its end."""
    model, batches, config = setup(size, device)
    config.max_steps, config.log_every = steps, steps
    with HostReads() as reads, CudaSyncs(device) as syncs:  # (HostReads slows every torch call: not timed)
        train(model, batches, None, config)
    return reads.total, syncs.count


def run_bare(size: str, device: torch.device, steps: int) -> float:
    """Seconds for ``steps`` bare steps and one loss read (nanoGPT's loop without its logging)."""
    model, batches, config = setup(size, device)
    model.check_ids = False
    optimizer = make_optimizer(model, config, device)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    t0 = time.perf_counter()
    for step in range(steps):
        x, y = batches.get(step)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            _, loss = model(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    loss.item()
    return time.perf_counter() - t0


class CudaSyncs:
    """Counts host-device syncs on a CUDA device (``torch.cuda.set_sync_debug_mode``); 0 elsewhere."""

    def __init__(self, device: torch.device):
        self.on, self.count = device.type == "cuda", 0

    def __enter__(self) -> CudaSyncs:
        if self.on:
            self.caught = warnings.catch_warnings(record=True)
            self.log = self.caught.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc) -> None:
        if self.on:
            torch.cuda.set_sync_debug_mode("default")
            self.count = sum("synchroniz" in str(w.message) for w in self.log)
            self.caught.__exit__(*exc)


def batch_microseconds(size: str, device: torch.device, n: int = 200) -> float:
    _, batches, _ = setup(size, device)
    to_device = PinnedCopy(device)  # batches are built on the host and copied as the loop copies them
    times = []
    for step in range(n):
        t0 = time.perf_counter()
        to_device(*batches.get(step))
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--steps", type=int, default=100, help="N: runs of N and 4N steps")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default=None, help="default: the best available")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: steadier timings)")
    args = p.parse_args()
    device = pick_device(args.device)
    n = args.steps
    if args.threads:
        torch.set_num_threads(args.threads)
    short, long_ = count_reads(args.size, device, n), count_reads(args.size, device, 4 * n)
    per_step_reads = (long_[0] - short[0]) / (3 * n)
    per_step_syncs = (long_[1] - short[1]) / (3 * n)
    loop, bare = [], []
    for _ in range(args.reps):
        loop.append((run_train(args.size, device, 4 * n) - run_train(args.size, device, n)) / (3 * n))
        bare.append((run_bare(args.size, device, 4 * n) - run_bare(args.size, device, n)) / (3 * n))
    t_loop, t_bare = statistics.median(loop) * 1e3, statistics.median(bare) * 1e3
    model = SIZES[args.size]["model"]
    print(f"GPT {model['n_layer']} x {model['n_embd']}, batch {SIZES[args.size]['batch']} x {model['block_size']}, "
          f"{device}, torch threads {torch.get_num_threads()}; runs of {n} and {4 * n} steps, median of {args.reps}\n")
    print("| what | per step (between logs) | once per run (first step and log step) |")
    print("|---|---:|---:|")
    once = short[0] - n * per_step_reads
    print(f"| host reads of device values (.item(), bool(t)...) | {per_step_reads:g} | {once:g} |")
    if device.type == "cuda":
        print(f"| CUDA syncs (sync debug mode) | {per_step_syncs:g} | {short[1] - n * per_step_syncs:g} |")
    print(f"\n| ms per step | lmlab train | bare step | the loop's own work |")
    print("|---|---:|---:|---:|")
    print(f"| {args.size} | {t_loop:.3f} | {t_bare:.3f} | {t_loop - t_bare:+.3f} |")
    print(f"\nbatch construction and copy to {device}: {batch_microseconds(args.size, device):.0f} us per batch")


if __name__ == "__main__":
    main()
