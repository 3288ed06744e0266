"""Input and config checks shared by the language models, with messages that say what was wrong and what to do.

Every LM takes ``idx`` (B, T) of token ids and optional ``targets`` (B, T). Checking that ids lie in
``[0, vocab_size)`` needs their min and max (one host sync per call); a model skips it when its
attribute ``check_ids`` is False or while ``torch.compile`` / ``torch.jit`` is tracing.
"""

from __future__ import annotations

import torch
from torch import Tensor

_ID_DTYPES = (torch.long, torch.int32)


def _tracing() -> bool:
    compiling = getattr(torch.compiler, "is_compiling", lambda: False)()
    return compiling or torch.jit.is_tracing() or torch.jit.is_scripting()


def check_idx(idx: Tensor, vocab_size: int, block_size: int | None = None, *, check_ids: bool = True,
              device: torch.device | None = None) -> None:
    """Raise TypeError/ValueError unless ``idx`` is a (B, T) integer tensor of ids in [0, vocab_size)
    (on ``device``, the model's, when given).

    Shape: idx (B, T)
    """
    if not isinstance(idx, Tensor):
        raise TypeError(f"idx must be a torch.Tensor of token ids with shape (B, T), got {type(idx).__name__}; "
                        "use torch.tensor([[...]], dtype=torch.long)")
    if idx.dtype not in _ID_DTYPES:
        dtype = str(idx.dtype).removeprefix("torch.")
        raise TypeError(f"idx must hold integer token ids, got {dtype}; token ids must be torch.long, e.g. idx.long()")
    if idx.dim() != 2:
        hint = "add a batch dim with idx[None]" if idx.dim() == 1 else "reshape it to (B, T)"
        raise ValueError(f"idx must be 2-D (B, T), got shape {tuple(idx.shape)}; {hint}")
    if device is not None and idx.device != device:
        raise ValueError(f"idx is on {idx.device} but the model is on {device}; move it with idx.to('{device}') "
                         "(or the model with model.to(...))")
    T = idx.size(1)
    if block_size is not None and T > block_size:
        raise ValueError(f"sequence length T={T} is longer than block_size={block_size}; "
                         f"crop the input to the last block_size tokens: idx[:, -{block_size}:]")
    if check_ids and idx.numel() > 0 and not idx.is_meta and not _tracing():
        lo, hi = (int(x) for x in torch.aminmax(idx))
        if lo < 0 or hi >= vocab_size:
            bad = f"max id {hi}" if hi >= vocab_size else f"min id {lo}"
            raise ValueError(f"token ids must be in [0, vocab_size={vocab_size}), got {bad}; "
                             "check the tokenizer matches the model's vocab_size")


def check_targets(targets: Tensor, idx: Tensor, vocab_size: int, *, check_ids: bool = True) -> None:
    """Raise unless ``targets`` is a long tensor shaped like ``idx`` with ids in [0, V) or -100 (ignored).

    Shape: targets (B, T), same as idx.
    """
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor of token ids, got {type(targets).__name__}")
    if targets.shape != idx.shape:
        raise ValueError(
            f"targets must have the same shape as idx, got targets {tuple(targets.shape)} and idx {tuple(idx.shape)}; "
            "pass class ids shaped (B, T) (not flattened to (B*T,), not one-hot (B, T, V))"
        )
    if targets.device != idx.device:
        raise ValueError(f"targets is on {targets.device} but idx is on {idx.device}; move it with "
                         f"targets.to('{idx.device}')")
    if targets.dtype != torch.long:
        raise TypeError(f"targets has dtype {str(targets.dtype).removeprefix('torch.')}; targets must be token ids "
                        "of dtype torch.long (not one-hot or probabilities), e.g. targets.long()")
    if check_ids and targets.numel() > 0 and not targets.is_meta and not _tracing():
        valid = (targets == -100) | ((targets >= 0) & (targets < vocab_size))
        if not bool(valid.all()):
            bad = targets[~valid]
            raise ValueError(f"targets must be in [0, vocab_size={vocab_size}) or -100 (ignored), "
                             f"got values such as {bad[:3].tolist()}")


def check_transformer_config(config, int_fields: tuple[str, ...]) -> None:
    """The checks every Transformer config shares: positive int sizes, n_embd divisible by n_head, a dropout
    probability. Raises ValueError naming the config class, the field and a fix."""
    from lmlab.attention import _divisors_near, _multiples_near

    name = type(config).__name__
    for field in int_fields:
        value = getattr(config, field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}.{field} must be a positive int, got {value!r}")
    if config.n_embd % config.n_head != 0:
        raise ValueError(
            f"n_embd={config.n_embd} is not divisible by n_head={config.n_head}; "
            f"try n_head in {_divisors_near(config.n_embd, config.n_head)} "
            f"or n_embd in {_multiples_near(config.n_head, config.n_embd)}"
        )
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{name}.dropout must be in [0, 1), got {config.dropout}")
