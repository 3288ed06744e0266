"""Checks of what users pass in, shared across lmlab, with messages that say what was wrong and what to do.

- token ids for a model or for generation: ``check_idx`` (a (B, T) tensor of ids), ``check_targets``;
- token ids for a tokenizer's ``decode``: ``token_id_list``, ``as_token_id``;
- Transformer configs: ``check_transformer_config`` (suggesting sizes with ``divisors_near`` and
  ``multiples_near`` when ``n_embd`` is not divisible by ``n_head``).

Checking that ids lie in ``[0, vocab_size)`` needs their min and max (one host sync per call); a model skips
it when its attribute ``check_ids`` is False or while ``torch.compile`` / ``torch.jit`` is tracing.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["check_idx", "check_targets", "check_transformer_config", "divisors_near", "multiples_near",
           "as_token_id", "token_id_list"]

ID_DTYPES = (torch.long, torch.int32)  # what the models' embeddings take


def tracing() -> bool:
    """True while torch.compile or TorchScript traces the code (no data-dependent checks then)."""
    compiling = getattr(torch.compiler, "is_compiling", lambda: False)()
    return compiling or torch.jit.is_tracing() or torch.jit.is_scripting()


def check_idx(idx: Tensor, vocab_size: int | None = None, block_size: int | None = None, *, check_ids: bool = True,
              device: torch.device | None = None, dtypes: tuple[torch.dtype, ...] = ID_DTYPES) -> None:
    """Raise TypeError/ValueError unless ``idx`` is a (B, T) integer tensor (of one of ``dtypes``), on
    ``device`` (the model's) when given, no longer than ``block_size``, with ids in [0, vocab_size) when
    ``vocab_size`` is given.

    Shape: idx (B, T)
    """
    if not isinstance(idx, Tensor):
        raise TypeError(f"idx must be a torch.Tensor of token ids with shape (B, T), got {type(idx).__name__}; "
                        "use torch.tensor([[...]], dtype=torch.long)")
    if idx.dtype not in dtypes:
        dtype = str(idx.dtype).removeprefix("torch.")
        raise TypeError(f"idx must hold integer token ids, got {dtype}; token ids must be torch.long, e.g. idx.long()")
    if idx.dim() != 2:
        hint = "add a batch dimension with idx[None]" if idx.dim() == 1 else "reshape it to (B, T)"
        raise ValueError(f"idx must be 2-D (B, T), got shape {tuple(idx.shape)}; {hint}")
    if device is not None and idx.device != device:
        raise ValueError(f"idx is on {idx.device} but the model is on {device}; move it with idx.to('{device}') "
                         "(or the model with model.to(...))")
    T = idx.size(1)
    if block_size is not None and T > block_size:
        raise ValueError(f"sequence length T={T} is longer than block_size={block_size}; "
                         f"crop the input to the last block_size tokens: idx[:, -{block_size}:]")
    if vocab_size is not None and check_ids and idx.numel() > 0 and not idx.is_meta and not tracing():
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
    if check_ids and targets.numel() > 0 and not targets.is_meta and not tracing():
        valid = (targets == -100) | ((targets >= 0) & (targets < vocab_size))
        if not bool(valid.all()):
            bad = targets[~valid]
            raise ValueError(f"targets must be in [0, vocab_size={vocab_size}) or -100 (ignored), "
                             f"got values such as {bad[:3].tolist()}")


def divisors_near(n: int, target: int, count: int = 3) -> list[int]:
    """The ``count`` divisors of ``n`` closest to ``target``. Example: divisors_near(128, 6) -> [4, 8, 2]"""
    divs = [d for d in range(1, n + 1) if n % d == 0]
    return sorted(divs, key=lambda d: (abs(d - target), d))[:count]


def multiples_near(m: int, target: int, count: int = 2) -> list[int]:
    """The ``count`` positive multiples of ``m`` closest to ``target``.

    Example: multiples_near(6, 128) -> [126, 132]
    """
    lo = max(m, (target // m) * m)
    cands = {lo, lo + m} | ({lo - m} if lo - m > 0 else set())
    return sorted(sorted(cands, key=lambda x: (abs(x - target), x))[:count])


def check_transformer_config(config: Any, int_fields: tuple[str, ...]) -> None:
    """The checks every Transformer config shares: positive int sizes, n_embd divisible by n_head, a dropout
    probability. Raises ValueError naming the config class, the field and a fix."""
    name = type(config).__name__
    for field in int_fields:
        value = getattr(config, field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}.{field} must be a positive int, got {value!r}")
    if config.n_embd % config.n_head != 0:
        raise ValueError(
            f"n_embd={config.n_embd} is not divisible by n_head={config.n_head}; "
            f"try n_head in {divisors_near(config.n_embd, config.n_head)} "
            f"or n_embd in {multiples_near(config.n_head, config.n_embd)}"
        )
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{name}.dropout must be in [0, 1), got {config.dropout}")


def as_token_id(i: Any) -> int:
    """One token id as a Python int: ints, NumPy integers and one-element integer tensors are fine;
    floats, strings and whole rows are not (``int(2.7)`` would silently become 2)."""
    try:
        return operator.index(i)
    except TypeError:
        shape = getattr(i, "shape", None)
        if shape is not None and len(shape):
            what = f"a tensor of shape {tuple(shape)}"
        else:
            what = f"{i!r:.40} ({type(i).__name__})"
        raise TypeError(
            f"token ids must be ints, got {what}; pass a flat list of ints, e.g. tok.decode(ids.tolist()) for a "
            "1-D tensor or tok.decode(idx[0].tolist()) for one row of a (B, T) batch"
        ) from None


def token_id_list(ids: Any) -> Iterable[Any]:
    """``ids`` if a tokenizer's ``decode`` can iterate over it as token ids (not a str or bytes)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"decode takes a list of int token ids, got {type(ids).__name__}; e.g. tok.decode([3, 1])")
    return ids
