"""Sampling the next token: greedy decoding, and drawing from the model's distribution reshaped by a
temperature, top-k and top-p (nucleus) filters.

- greedy (``do_sample=False``): the most likely token, ``argmax``;
- sampling (``do_sample=True``): draw from ``softmax(logits / temperature)``, optionally only among
  the ``top_k`` most likely tokens (``top_k_filter``) or the smallest set of most likely tokens whose
  probability reaches ``top_p`` (``top_p_filter``, "nucleus sampling", Holtzman et al., 2019).

The filters are pure functions on the last dimension (..., V), shown one by one in notebook 07; they
follow transformers' ``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and ``TopPLogitsWarper``, applied in
that order. ``greedy_or_sample`` is the loop: one token per row per step until ``max_new_tokens`` or every row's EOS.

Letters: B batch, L the sequence length so far, V vocab size.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from lmlab.decoding import NextTokenLogits

__all__ = ["apply_temperature", "top_k_filter", "top_p_filter", "check_top_k", "check_top_p", "pick_next", "greedy_or_sample"]


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide the logits by ``temperature``: below 1 sharpens the distribution, above 1 flattens it.

    Shape: logits (..., V) -> (..., V)

    Example: apply_temperature(torch.tensor([2.0, 0.0]), 2.0) -> tensor([1., 0.])
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0, got {temperature}; for the most likely token (temperature -> 0) "
            "use greedy decoding: do_sample=False"
        )
    if temperature == float("inf"):
        raise ValueError("temperature must be finite, got inf; a large value (e.g. 100) samples almost uniformly")
    return logits / temperature


def check_top_k(k: Any) -> None:
    """Raise TypeError/ValueError unless ``k`` is an int >= 1."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"top_k must be a positive int (how many tokens to keep), got {k!r} ({type(k).__name__})")
    if k <= 0:
        raise ValueError(f"top_k must be >= 1, got {k}; use top_k=None to keep every token")


def check_top_p(p: Any) -> None:
    """Raise TypeError/ValueError unless ``p`` is a number in (0, 1]."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"top_p must be a number in (0, 1], got {p!r} ({type(p).__name__})")
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (a probability mass to keep), got {p}; "
                         "top_p=1.0 or None keeps every token")


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row and set the others to -inf.

    Tokens tied with the k-th largest logit are kept too (as transformers' ``TopKLogitsWarper`` does),
    so a row can keep more than ``k``. ``k`` larger than V keeps everything.

    Shape: logits (..., V) -> (..., V)

    Example: top_k_filter(torch.tensor([1.0, 3.0, 2.0, 0.0]), 2) -> tensor([-inf, 3., 2., -inf])
    """
    check_top_k(k)
    k = min(k, logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))  # (..., V)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches ``p``.

    Sort the probabilities in ascending order and drop tokens from the unlikely end while the dropped
    mass stays <= 1 - p; the most likely token is always kept. This is transformers'
    ``TopPLogitsWarper`` rule, including how ties are broken (by the same ``torch.sort``).

    Shape: logits (..., V) -> (..., V)

    Example: probabilities [0.5, 0.3, 0.2] with p=0.7 keep [0.5, 0.3] (mass 0.8 >= 0.7);
    with p=0.4 they keep [0.5] only.
    """
    check_top_p(p)
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=False)  # (..., V), ascending
    tail_mass = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (..., V) mass of this token and all less likely
    drop_sorted = tail_mass <= 1.0 - p  # (..., V)
    drop_sorted[..., -1] = False  # always keep the most likely token
    drop = drop_sorted.scatter(-1, sorted_idx, drop_sorted)  # back to vocabulary order, (..., V)
    return logits.masked_fill(drop, float("-inf"))  # (..., V)


def pick_next(logits: Tensor, do_sample: bool, temperature: float, top_k: int | None, top_p: float | None,
              generator: torch.Generator | None) -> Tensor:
    """Choose one token per row: argmax (greedy) or a draw from the filtered distribution.

    Shape: logits (B, V) -> (B,)
    """
    if not do_sample:
        return logits.argmax(dim=-1)  # (B,)
    logits = apply_temperature(logits, temperature)  # same order as transformers: temperature, top-k, top-p
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = F.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)


def greedy_or_sample(next_logits: NextTokenLogits, idx: Tensor, max_new_tokens: int, eos_id: int | None,
                     pick: Callable[[Tensor], Tensor]) -> Tensor:
    """One token per row per step, chosen by ``pick`` (e.g. ``pick_next``); rows that produced ``eos_id`` are
    padded with it until all are done.

    Shape: idx (B, T) -> (B, T + n), n <= max_new_tokens
    """
    seq = idx  # (B, T)
    finished = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)  # (B,)
    for _ in range(max_new_tokens):
        next_id = pick(next_logits(seq))  # (B, V) -> (B,)
        if eos_id is not None:
            next_id = next_id.masked_fill(finished, eos_id)  # finished rows: padding
            finished |= next_id == eos_id
        seq = torch.cat([seq, next_id[:, None]], dim=1)  # (B, L + 1)
        if eos_id is not None and bool(finished.all()):
            break
    return seq
