"""Bigram language model trained by gradient descent: a (V, V) table of next-token logits.

Row i of the table holds the logits of the token that follows token i, so the model is
``logits[b, t] = table[idx[b, t]]``. Trained with cross-entropy it converges to the counting
estimate of ``NGramLM(n=2, k=0)`` (the MLE), which the tests check; rows of tokens never seen as a
context get no gradient and stay at their initial value (zeros: uniform).

Letters: B batch, T time, V vocab size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lmlab.checks import check_idx, check_targets

__all__ = ["BigramConfig", "BigramLM"]


@dataclass
class BigramConfig:
    """Hyperparameters of a bigram model (just one), as plain data for checkpoints."""

    vocab_size: int = 65  # number of token ids V; the table is (V, V)


class BigramLM(nn.Module):
    """Bigram LM: an embedding table read as next-token logits. ``forward(idx, targets=None) -> (logits, loss)``.

    Args:
        vocab_size: number of token ids V (or a ``BigramConfig``).

    The table starts at zeros, so the initial prediction is uniform and the loss is ln V.

    Shape:
        idx (B, T) -> logits (B, T, V)

    Example:
        >>> logits, loss = BigramLM(5)(torch.tensor([[0, 1, 2]]), torch.tensor([[1, 2, 3]]))
        >>> logits.shape, round(loss.item(), 4)   # ln 5 = 1.6094
        (torch.Size([1, 3, 5]), 1.6094)
    """

    check_ids: bool = True

    def __init__(self, vocab_size: int | BigramConfig):
        super().__init__()
        config = vocab_size if isinstance(vocab_size, BigramConfig) else BigramConfig(vocab_size=vocab_size)
        if not isinstance(config.vocab_size, int) or config.vocab_size <= 0:
            raise ValueError(f"vocab_size must be a positive int, got {config.vocab_size!r}")
        self.config = config
        self.vocab_size = config.vocab_size
        self.logits_table = nn.Embedding(config.vocab_size, config.vocab_size)  # row i: logits of the next token
        nn.init.zeros_(self.logits_table.weight)

    def num_params(self) -> int:
        """V * V."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Shape: idx (B, T), targets (B, T) -> logits (B, T, V), loss scalar or None"""
        V = self.vocab_size
        check_idx(idx, V, check_ids=self.check_ids, device=self.logits_table.weight.device)
        if targets is not None:
            check_targets(targets, idx, V, check_ids=self.check_ids)
        logits = self.logits_table(idx)  # (B, T) -> (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, V), targets.reshape(-1), ignore_index=-100)  # (B*T, V) vs (B*T,)
        return logits, loss
