"""N-gram language model by counting: maximum likelihood with add-k smoothing.

    p(w | context) = (count(context, w) + k) / (count(context) + k * V)

where context is the previous n - 1 tokens (Jurafsky & Martin, *Speech and Language Processing*,
ch. 3). With k = 0 this is the maximum-likelihood estimate: an n-gram never seen in training gets
probability 0, so a test text that contains one has infinite loss (the notebook shows this).
A context never seen at all gives 0 / 0; we define that row as uniform (1 / V).

Storage: counts for orders n <= 3 are dense tensors of shape (V,) * order, saved as buffers
(``counts1``, ``counts2``, ...). Higher orders are kept in a dict ``{context tuple: counts (V,)}``,
which is not part of ``state_dict`` (refit instead).

As for every lmlab LM, ``logits[b, t]`` predicts the token after ``idx[b, t]`` (``targets`` is ``idx``
shifted by one), so its context is the n - 1 tokens ending at position t: ``idx[b, t-n+2 : t+1]``.
The first n - 2 positions have fewer tokens than that; they back off to the lower-order model that fits:
position t (0-based, t < n - 2) uses the (t + 2)-gram model with the t + 1 tokens it has.

Letters: B batch, T time, V vocab size.

Left out: interpolation, Kneser-Ney and Katz backoff (only "shorter context at the start").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lmlab.checks import check_idx, check_targets

__all__ = ["NGramLM"]

_DENSE_MAX_ORDER = 3


class NGramLM(nn.Module):
    """Counting n-gram model. ``fit(ids)``, then ``forward(idx, targets=None) -> (logits, loss)``.

    Args:
        vocab_size: number of token ids V.
        n: order (2 = bigram: one token of context).
        k: add-k smoothing (0 = maximum likelihood, 1 = Laplace).

    Shape:
        idx (B, T) -> logits (B, T, V); logits[b, t] = log p(. | idx[b, t-n+2 : t+1]); -inf where p = 0.

    Example:
        >>> lm = NGramLM(vocab_size=3, n=2).fit([0, 1, 0, 2])
        >>> lm.probs([0])      # after 0 came 1 once and 2 once
        tensor([0.0000, 0.5000, 0.5000])
    """

    check_ids: bool = True

    def __init__(self, vocab_size: int, n: int, k: float = 0.0):
        super().__init__()
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if n < 1:
            raise ValueError(f"n must be at least 1 (1 = unigram, 2 = bigram), got {n}")
        if k < 0:
            raise ValueError(f"smoothing k must be >= 0, got {k}")
        self.vocab_size = vocab_size
        self.n = n
        self.k = float(k)
        self._sparse: dict[int, dict[tuple[int, ...], Tensor]] = {}
        for m in range(1, n + 1):
            if m <= _DENSE_MAX_ORDER:
                self.register_buffer(f"counts{m}", torch.zeros((vocab_size,) * m, dtype=torch.long))
            else:
                self._sparse[m] = {}

    def fit(self, ids: Sequence[int] | Tensor) -> NGramLM:
        """Count the n-grams (and all lower orders) in ``ids``, replacing earlier counts. Returns self.

        ``ids`` is one sequence (T,) or a batch of sequences (B, T) counted separately (no n-gram
        crosses a row boundary).
        """
        t = torch.as_tensor(ids, dtype=torch.long).cpu()
        rows = t[None] if t.dim() == 1 else t
        if rows.dim() != 2:
            raise ValueError(f"ids must be 1-D (T,) or 2-D (B, T), got shape {tuple(t.shape)}")
        check_idx(rows, self.vocab_size, check_ids=True)
        V = self.vocab_size
        for m in range(1, self.n + 1):
            if m <= _DENSE_MAX_ORDER:
                counts = torch.zeros(V**m, dtype=torch.long)
                if rows.size(1) >= m:
                    grams = rows.unfold(1, m, 1).reshape(-1, m)  # (B * (T - m + 1), m)
                    flat = (grams * (V ** torch.arange(m - 1, -1, -1))).sum(1)  # base-V number of each m-gram
                    counts = torch.bincount(flat, minlength=V**m)  # (V**m,)
                getattr(self, f"counts{m}").copy_(counts.view((V,) * m))
            else:
                table: dict[tuple[int, ...], Tensor] = {}
                for row in rows.tolist():
                    for i in range(len(row) - m + 1):
                        ctx = tuple(row[i : i + m - 1])
                        if ctx not in table:
                            table[ctx] = torch.zeros(V, dtype=torch.long)
                        table[ctx][row[i + m - 1]] += 1
                self._sparse[m] = table
        return self

    def _counts(self, contexts: Tensor) -> Tensor:
        """Next-token counts after each context; the order is contexts' width + 1.

        Shape: contexts (N, m - 1) -> counts (N, V)
        """
        m = contexts.size(1) + 1
        if m == 1:
            return self.counts1.expand(contexts.size(0), -1)  # (N, V): no context, unigram counts
        if m <= _DENSE_MAX_ORDER:
            table = getattr(self, f"counts{m}")  # (V,) * m
            return table[tuple(contexts.T)]  # (N, V)
        table = self._sparse[m]
        zeros = torch.zeros(self.vocab_size, dtype=torch.long)
        return torch.stack([table.get(tuple(c), zeros) for c in contexts.tolist()]).to(contexts.device)  # (N, V)

    def _normalize(self, counts: Tensor) -> Tensor:
        """(count + k) / (total + k V); rows with total 0 and k = 0 become uniform. Shape: (..., V) -> (..., V)"""
        c = counts.double() + self.k
        total = c.sum(-1, keepdim=True)  # (..., 1)
        uniform = torch.full_like(c, 1.0 / self.vocab_size)
        return torch.where(total > 0, c / total.clamp_min(1e-300), uniform).float()

    def probs(self, context: Sequence[int] | Tensor) -> Tensor:
        """p(next | context) using the last n - 1 tokens of ``context`` (fewer: lower-order model).

        Shape: context (t,) -> (V,)
        """
        ctx = torch.as_tensor(context, dtype=torch.long).reshape(-1)
        ctx = ctx[max(0, ctx.numel() - (self.n - 1)) :]  # (m - 1,)
        if self.check_ids and ctx.numel() and (ctx.min() < 0 or ctx.max() >= self.vocab_size):
            raise ValueError(f"context ids must be in [0, vocab_size={self.vocab_size}), got {ctx.tolist()}")
        return self._normalize(self._counts(ctx[None].to(self.counts1.device)))[0]  # (V,)

    @property
    def prob_table(self) -> Tensor:
        """The full conditional table p[c_1, ..., c_{n-1}, w] (dense orders only, n <= 3).

        Shape: (V,) * n; summing over the last dim gives ones.
        """
        if self.n > _DENSE_MAX_ORDER:
            raise ValueError(f"prob_table exists only for n <= {_DENSE_MAX_ORDER} (dense counts); use probs(context)")
        return self._normalize(getattr(self, f"counts{self.n}"))

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Log-probabilities of the next token at every position, and the mean cross-entropy.

        Shape: idx (B, T), targets (B, T) -> logits (B, T, V), loss scalar or None (inf if a target has p = 0)
        """
        check_idx(idx, self.vocab_size, check_ids=self.check_ids)
        if targets is not None:
            check_targets(targets, idx, self.vocab_size, check_ids=self.check_ids)
        B, T = idx.shape
        V = self.vocab_size
        w = self.n - 1  # context width
        if w == 0:  # unigram: the same distribution everywhere
            p = self._normalize(self._counts(idx.new_zeros(1, 0)))  # (1, V)
            logits = p.log().expand(B, T, V)  # (B, T, V)
        else:
            logits = torch.empty(B, T, V, device=idx.device)  # (B, T, V)
            for t in range(min(w - 1, T)):  # the first positions have only t + 1 tokens: shorter context
                ctx = idx[:, : t + 1]  # (B, t + 1)
                logits[:, t] = self._normalize(self._counts(ctx)).log()  # (B, V)
            if T >= w:
                ctx = idx.unfold(1, w, 1).reshape(-1, w)  # (B * (T - w + 1), w): tokens t - w + 1 .. t
                p = self._normalize(self._counts(ctx))  # (B * (T - w + 1), V)
                logits[:, w - 1 :] = p.log().view(B, T - w + 1, V)  # (B, T - w + 1, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)  # (B*T, V) vs (B*T,)
        return logits, loss
