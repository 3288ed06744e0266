"""Distributed data parallel, as the training loop uses it: one process per device, started by
``torchrun --nproc_per_node=N``.

``Dist.setup`` joins the process group torchrun started (or is one plain process when ``WORLD_SIZE`` is
unset or 1). Each process then takes rows ``rank::N`` of every batch (``shard``), gradients are averaged by
``DistributedDataParallel``, and the few decisions the loop takes (a loss went NaN, stop early, the
generator states to save) are agreed on with ``all_reduce``, ``agree`` and ``gather``. With one process
every helper returns its input, without touching ``torch.distributed``.

Left out: FSDP and tensor parallelism, several nodes' rendezvous settings (torchrun's), elastic restarts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from lmlab.device import pick_device

__all__ = ["Dist"]


@dataclass
class Dist:
    """This process's place in the group: ``rank`` of ``world_size`` processes, and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    created_group: bool = False  # we called init_process_group, so close() destroys it

    @classmethod
    def setup(cls, preferred: str | None) -> Dist:
        """One process (WORLD_SIZE unset or 1), or join the group torchrun started."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        device = pick_device(preferred)
        if world <= 1:
            return cls(device=device)
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
        return cls(rank=rank, world_size=world, device=device, created_group=created)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints and shows progress."""
        return self.rank == 0

    def close(self) -> None:
        """Destroy the process group if ``setup`` created it."""
        if self.created_group:
            import torch.distributed as dist

            dist.destroy_process_group()

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def shard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows of a batch: x (B, T) -> (B / world, T), and y alike."""
        world = self.world_size
        if world == 1:
            return x, y
        if len(x) % world != 0:
            raise ValueError(
                f"a batch of {len(x)} rows cannot be split evenly over {world} processes; "
                f"use a batch size divisible by {world}"
            )
        return x[self.rank :: world], y[self.rank :: world]

    def all_reduce(self, t: torch.Tensor, op: str) -> torch.Tensor:
        """Sum (``op="sum"``) or min (``"min"``) of ``t`` over all processes (``t`` itself with one process)."""
        if self.world_size == 1:
            return t
        import torch.distributed as dist

        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MIN)
        return t

    def agree(self, decision: Any) -> Any:
        """Every process must take the same decision (e.g. stop at this step): all follow rank 0's."""
        if self.world_size == 1:
            return decision
        import torch.distributed as dist

        box = [decision]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every process, in rank order (``[obj]`` with one process)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out
