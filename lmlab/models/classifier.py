"""Sequence classification on top of a pretrained language model (fine-tuning).

A ``SequenceClassifier`` reads the body's final hidden states (``GPT.hidden_states`` or
``MaskedLM.encode``), pools them into one vector per sequence and applies a linear head:

    hidden (B, T, C) -> pool -> (B, C) -> dropout -> Linear -> logits (B, n_classes)

Pooling: ``"last"`` takes the last real token (the natural choice for a causal GPT, whose last token
has seen the whole sequence), ``"mean"`` averages the real tokens, ``"first"`` takes position 0 (BERT's
[CLS] position). Real tokens are those with ``attention_mask == 1``; without a mask all are real.

With a GPT body, pad on the right: a causal model's real tokens never see later padding, so padding
changes nothing before the last real token. A MaskedLM body also masks padded keys.

Freezing: ``freeze_body=True`` trains only the head; ``train_last_n_layers=k`` also trains the last k
blocks (plus GPT's final LayerNorm) and freezes the rest of the body.

Letters: B batch, T time, C channels, K classes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SequenceClassifier"]

_POOLINGS = ("last", "mean", "first")


class SequenceClassifier(nn.Module):
    """Classify whole sequences with a pretrained ``GPT`` or ``MaskedLM`` body.

    Args:
        body: a GPT (uses ``hidden_states``) or MaskedLM (uses ``encode``).
        n_classes: number of classes K.
        pooling: "last", "mean" or "first" (see the module docstring).
        freeze_body: if True, no body parameter is trained.
        train_last_n_layers: if set to k, only the last k blocks of the body (and GPT's ln_f) train.
        dropout: dropout before the linear head (training only).

    Shape:
        idx (B, T), attention_mask (B, T) (1 = real token), labels (B,) -> logits (B, K), loss scalar or None

    Example:
        >>> clf = SequenceClassifier(GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=16)), 3,
        ...                          freeze_body=True)
        >>> logits, loss = clf(torch.zeros(4, 6, dtype=torch.long), labels=torch.tensor([0, 1, 2, 0]))
        >>> logits.shape
        torch.Size([4, 3])
    """

    def __init__(self, body: nn.Module, n_classes: int, *, pooling: str = "last", freeze_body: bool = False,
                 train_last_n_layers: int | None = None, dropout: float = 0.0):
        super().__init__()
        if not (hasattr(body, "encode") or hasattr(body, "hidden_states")):
            raise TypeError("body must be a GPT or MaskedLM (a model with hidden_states or encode), "
                            f"got {type(body).__name__}")
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        self.body = body
        self.pooling = pooling
        self.n_classes = n_classes
        n_embd = body.config.n_embd
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

        blocks, final = self._blocks_and_final_norm()
        if train_last_n_layers is not None and not 0 <= train_last_n_layers <= len(blocks):
            raise ValueError(f"train_last_n_layers must be in [0, {len(blocks)}] (the body's number of blocks), "
                             f"got {train_last_n_layers}")
        if freeze_body or train_last_n_layers is not None:
            self.body.requires_grad_(False)
        if train_last_n_layers:
            for block in list(blocks)[len(blocks) - train_last_n_layers :]:
                block.requires_grad_(True)
            if final is not None:
                final.requires_grad_(True)

    def _blocks_and_final_norm(self) -> tuple[nn.ModuleList, nn.Module | None]:
        if hasattr(self.body, "transformer"):  # GPT: pre-LN blocks, then a final LayerNorm
            return self.body.transformer.h, self.body.transformer.ln_f
        return self.body.layers, None  # MaskedLM: post-LN, the last layer ends in its own LayerNorm

    def parameter_counts(self) -> dict[str, int]:
        """{"total": all parameters, "trainable": those with requires_grad} (tied weights counted once)."""
        params = list(self.parameters())
        return {"total": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in params if p.requires_grad)}

    def forward(self, idx: Tensor, labels: Tensor | None = None,
                attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Shape: idx (B, T), labels (B,), attention_mask (B, T) -> logits (B, K), loss scalar or None"""
        if attention_mask is not None and (not isinstance(attention_mask, Tensor) or attention_mask.shape != idx.shape):
            raise ValueError(f"attention_mask must be shaped like idx {tuple(idx.shape)} (1 = real token, 0 = padding)")
        if hasattr(self.body, "encode"):
            h = self.body.encode(idx, attention_mask)  # (B, T, C)
        else:
            h = self.body.hidden_states(idx)  # (B, T, C)
        B, T, C = h.shape
        real = torch.ones(B, T, dtype=torch.bool, device=h.device) if attention_mask is None else attention_mask.bool()
        if self.pooling == "last":
            positions = torch.arange(T, device=h.device).expand(B, T)  # (B, T)
            last = torch.where(real, positions, -1).amax(dim=1).clamp_min(0)  # (B,) index of the last real token
            pooled = h[torch.arange(B, device=h.device), last]  # (B, C)
        elif self.pooling == "mean":
            w = real.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
            pooled = (h * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, C)
        else:
            pooled = h[:, 0]  # (B, C)
        logits = self.head(self.drop(pooled))  # (B, K)
        loss = None
        if labels is not None:
            if not isinstance(labels, Tensor) or labels.shape != (B,) or labels.dtype != torch.long:
                got = f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, Tensor) else type(labels).__name__
                raise ValueError(f"labels must be class ids of shape ({B},) and dtype torch.long, got {got}")
            loss = F.cross_entropy(logits, labels)
        return logits, loss
