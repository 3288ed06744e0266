"""Scaled dot-product attention and multi-head attention, written out from the formulas.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V            (Vaswani et al., 2017, eq. 1)

Each function has a readable from-scratch path that also returns the attention weights, and
`MultiHeadAttention` has a fast path through `torch.nn.functional.scaled_dot_product_attention`
(fused kernels, no weights) beside it. The tests check that both agree with PyTorch's own modules.

Mask convention, everywhere in lmlab: a **boolean** mask where **True means "may attend"**.
`torch.nn.functional.scaled_dot_product_attention` uses the same meaning for boolean masks, but
`nn.MultiheadAttention` (``attn_mask``, ``key_padding_mask``) uses the opposite one: there True
means "masked out", so pass ``~mask`` when moving a mask between the two.

Letters: B batch, T time (sequence length), C channels (d_model), nh heads, hs head size (C // nh).

Left out: cross-attention with different key/value inputs, grouped-query attention, rotary
embeddings and additive (float) masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lmlab.checks import divisors_near, multiples_near

__all__ = ["causal_mask", "scaled_dot_product_attention", "MultiHeadAttention"]


def causal_mask(T: int, device: torch.device | str | None = None) -> Tensor:
    """Boolean causal mask: position i may attend to positions j <= i (True = may attend).

    Shape: (T, T), lower-triangular True.

    Example: causal_mask(3) ->
        [[True, False, False],
         [True, True,  False],
         [True, True,  True ]]
    """
    if T < 0:
        raise ValueError(f"T must be a non-negative sequence length, got {T}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def _check_bool_mask(mask: Tensor) -> None:
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a boolean tensor (True = may attend), got {mask.dtype}; "
            "convert a 0/1 mask with mask.bool(). Additive float masks are not supported."
        )


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    *,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Attention written out: softmax(q k^T * scale, masked) @ v. Returns ``(out, weights)``.

    Args:
        q, k, v: queries, keys and values; any leading dims (batch, heads) that broadcast.
        mask: boolean, **True = may attend**, broadcastable to (..., T_q, T_k).
            (``nn.MultiheadAttention`` uses the opposite meaning for boolean masks.)
        dropout_p: dropout on the attention weights. Like ``F.scaled_dot_product_attention``
            it is applied whenever ``dropout_p > 0``: pass 0.0 at evaluation time.
        scale: multiplies the scores; default 1 / sqrt(d_k).

    Rows where every key is masked out: softmax over all -inf gives NaN; we set those rows'
    weights (and so their outputs) to zeros, as recent PyTorch versions do on CPU (older ones return NaN).

    Shape:
        q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v)
        -> out (..., T_q, d_v), weights (..., T_q, T_k) (each row sums to 1, or 0 if fully masked)

    Example:
        >>> q = k = v = torch.randn(2, 5, 8)
        >>> out, w = scaled_dot_product_attention(q, k, v, mask=causal_mask(5))
        >>> out.shape, w.shape
        (torch.Size([2, 5, 8]), torch.Size([2, 5, 5]))
    """
    if q.size(-1) != k.size(-1):
        raise ValueError(f"q and k must have the same last dim d_k, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.size(-2) != v.size(-2):
        raise ValueError(
            f"k and v must have the same length T_k (dim -2), got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(q.size(-1))
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, d_k) x (..., d_k, T_k) -> (..., T_q, T_k)
    if mask is not None:
        _check_bool_mask(mask)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., T_q, T_k)
    if mask is not None:
        # Fully masked rows are NaN after the softmax; masking again makes them zeros.
        weights = weights.masked_fill(~mask, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    out = weights @ v  # (..., T_q, T_k) x (..., T_k, d_v) -> (..., T_q, d_v)
    return out, weights


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection and an output projection.

    Args:
        d_model: channels C of the input and output.
        n_heads: number of heads nh; must divide d_model (head size hs = C // nh).
        dropout: dropout on the attention weights (training mode only).
        bias: whether the projections have biases.
        causal: if True, position i attends only to positions <= i (combined with any mask given).

    The weights are laid out like ``nn.MultiheadAttention``: ``qkv.weight`` is its
    ``in_proj_weight`` (rows: all q, then all k, then all v; head h uses features h*hs:(h+1)*hs)
    and ``out_proj`` is its ``out_proj``.

    Shape:
        x (B, T, C) -> out (B, T, C), weights (B, nh, T, T) or None
    """

    def __init__(self, d_model: int, n_heads: int, *, dropout: float = 0.0, bias: bool = True, causal: bool = False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model={d_model} is not divisible by n_heads={n_heads}; "
                f"try n_heads in {divisors_near(d_model, n_heads)} or d_model in {multiples_near(n_heads, d_model)}"
            )
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_size = d_model // n_heads
        self.dropout = dropout
        self.causal = causal
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)  # fused query, key, value projections
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Self-attention over ``x``. Returns ``(out, weights)``; weights is None unless ``need_weights``.

        Args:
            x: input (B, T, C).
            mask: boolean, **True = may attend**, shape (T, T) or 4-D broadcastable to (B, nh, T, T).
                For a key padding mask ``pad`` of shape (B, T) (True = real token) pass
                ``pad[:, None, None, :]``. (``nn.MultiheadAttention`` uses the opposite meaning.)
            need_weights: also return the attention weights; uses the from-scratch path.

        Shape:
            x (B, T, C) -> out (B, T, C), weights (B, nh, T, T)
        """
        if x.dim() != 3 or x.size(-1) != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        B, T, C = x.shape
        if mask is not None:
            _check_bool_mask(mask)
            if mask.dim() not in (2, 4):
                raise ValueError(
                    f"mask must be 2-D (T, T) or 4-D broadcastable to (B, nh, T, T), got shape {tuple(mask.shape)}; "
                    "for a (B, T, T) mask use mask[:, None], for a (B, T) padding mask use mask[:, None, None, :]"
                )
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, 3C) -> 3 x (B, T, C)
        q = q.view(B, T, self.n_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        dropout_p = self.dropout if self.training else 0.0

        if self.causal:
            cm = causal_mask(T, device=x.device)  # (T, T)
            full_mask = cm if mask is None else cm & mask  # broadcast to (B, nh, T, T)
        else:
            full_mask = mask

        if need_weights:
            y, weights = scaled_dot_product_attention(q, k, v, full_mask, dropout_p)  # (B, nh, T, hs), (B, nh, T, T)
        else:
            weights = None
            if self.causal and mask is None:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)  # (B, nh, T, hs)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=full_mask, dropout_p=dropout_p)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.out_proj(y), weights

