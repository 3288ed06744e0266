"""Where a model runs and in which precision: the device, mixed precision (autocast) and its dtype.

- ``pick_device``: the one asked for (checked to exist), else CUDA, then Apple's MPS, then the CPU.
- ``resolve_precision``: ``"auto"`` becomes bf16 on CUDA GPUs that support it (Ampere and newer), fp16 on
  older CUDA GPUs (with a gradient scaler, since fp16 gradients underflow), fp32 on CPU and MPS.
- ``autocast``: matrix products in the lower precision, reductions (softmax, loss) in fp32; a no-op in fp32.
- ``HostReads``: counts where the host reads a tensor's value (``.item()``, ``bool(t)``...): on a GPU each read
  waits for the device to finish its queue (a host-device sync), so a fast loop has none between its log steps.

The training loop (``lmlab.train``), ``lmlab.repro.setup`` and ``lmlab env`` all pick devices here.

Left out: several GPUs in one process (``lmlab.distributed`` runs one process per GPU), XLA/TPU devices,
and fp8.
"""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["PRECISIONS", "pick_device", "resolve_precision", "amp_dtype", "autocast", "HostReads"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``preferred`` if given, else CUDA, then Apple's MPS, then CPU.

    Example:
        >>> pick_device("cpu")
        device(type='cpu')
    """
    if preferred is not None:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but CUDA is not available; use device=None or 'cpu'")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError("device 'mps' was asked for but MPS is not available; use device=None or 'cpu'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``"auto"`` into a concrete precision for ``device`` and check the choice is possible.

    auto: bf16 on CUDA GPUs that support it (Ampere and newer), fp16 (with a gradient scaler) on older
    CUDA GPUs, fp32 on CPU and MPS.

    Example: resolve_precision("auto", torch.device("cpu")) -> "fp32"
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA GPU (it uses a gradient scaler); on {device.type} use 'bf16' or 'fp32'"
        )
    return precision


def amp_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision: ``torch.bfloat16``, ``torch.float16``, or None for fp32."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Mixed precision: matrix products in ``dtype``, reductions (softmax, loss) in fp32. ``None``: full precision."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


class HostReads(TorchFunctionMode):
    """Count the reads of tensor values by the host while it is active: ``.item()``, ``.tolist()``, ``.cpu()``,
    ``.numpy()``, ``bool(t)``, ``int(t)``, ``float(t)`` (``if loss > 0:`` is a ``bool``).

    On a GPU each read makes the host wait until the device has run everything queued before it (a host-device
    sync): while it waits it queues no new work, so the device then waits for the host. On a CPU nothing waits,
    but the reads are the same, so a test on a CPU can show that a loop would not sync on a GPU. Not counted:
    ``.to("cpu")`` and printing a tensor, and reads inside ``torch.optim`` (AdamW's step counters, host tensors
    by design; on a GPU the training loop's fused AdamW keeps them on the device).

    Example:
        >>> with HostReads() as reads:
        ...     x = torch.ones(3).sum().item()
        >>> reads.total, dict(reads.counts)
        (1, {'item': 1})
    """

    READS = frozenset({"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"})

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()  # reads by kind since the start (or the last ``reset``)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in self.READS:
            caller = sys._getframe(1).f_globals.get("__name__", "")  # the module that asked for the value
            if not caller.startswith("torch.optim"):
                self.counts[name] += 1
        return func(*args, **(kwargs or {}))
