"""Where a model runs and in which precision: the device, mixed precision (autocast) and its dtype.

- ``pick_device``: the one asked for (checked to exist), else CUDA, then Apple's MPS, then the CPU.
- ``resolve_precision``: ``"auto"`` becomes bf16 on CUDA GPUs that support it (Ampere and newer), fp16 on
  older CUDA GPUs (with a gradient scaler, since fp16 gradients underflow), fp32 on CPU and MPS.
- ``autocast``: matrix products in the lower precision, reductions (softmax, loss) in fp32; a no-op in fp32.

The training loop (``lmlab.train``), ``lmlab.repro.setup`` and ``lmlab env`` all pick devices here.

Left out: several GPUs in one process (``lmlab.distributed`` runs one process per GPU), XLA/TPU devices,
and fp8.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

__all__ = ["PRECISIONS", "pick_device", "resolve_precision", "amp_dtype", "autocast"]

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
