"""LSTM language model: embedding -> nn.LSTM -> linear head (Hochreiter & Schmidhuber, 1997).

Unlike a transformer the LSTM has no block_size: its state (h, c) carries the past. For truncated
backpropagation through time (TBPTT) feed consecutive chunks and carry the state across, detached
so gradients stop at the chunk boundary::

    state = None
    for x, y in chunks:                      # consecutive windows of one long text
        logits, state = model.forward_with_state(x, state)
        loss = F.cross_entropy(logits.view(-1, V), y.view(-1))
        ...backward, step...
        state = tuple(s.detach() for s in state)

``decode_step`` / ``reorder_cache`` follow the same contract as ``GPT``'s, with the cache being the
state ``(h, c)``, so ``lmlab.generate`` works for both.

Letters: B batch, T time, E embedding size (n_embd), H hidden size (n_hidden), nl layers, V vocab.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lmlab.checks import check_idx, check_targets

__all__ = ["LSTMConfig", "LSTMLM"]

LSTMState = tuple[Tensor, Tensor]


@dataclass
class LSTMConfig:
    """Hyperparameters of an LSTM LM, as plain data (``dataclasses.asdict`` -> JSON) for checkpoints."""

    vocab_size: int = 65  # number of token ids V
    n_embd: int = 128  # size E of the token embeddings fed to the LSTM
    n_hidden: int = 256  # size H of the LSTM state h and cell c
    n_layer: int = 1  # stacked LSTM layers
    dropout: float = 0.0  # dropout on embeddings, between LSTM layers and before the head (training only)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError if the fields do not make a valid model."""
        for name in ("vocab_size", "n_embd", "n_hidden", "n_layer"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"LSTMConfig.{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LSTMConfig.dropout must be in [0, 1), got {self.dropout}")


class LSTMLM(nn.Module):
    """LSTM language model. ``forward(idx, targets=None, state=None) -> (logits, loss)``.

    Args:
        vocab_size: number of token ids V, or an ``LSTMConfig`` (then the other args are ignored).
        n_embd, n_hidden, n_layer, dropout: see ``LSTMConfig``.

    Shape:
        idx (B, T) -> logits (B, T, V); state (h, c) each (nl, B, H)

    Example:
        >>> model = LSTMLM(10, n_embd=8, n_hidden=16)
        >>> logits, state = model.forward_with_state(torch.zeros(2, 5, dtype=torch.long))
        >>> logits.shape, state[0].shape
        (torch.Size([2, 5, 10]), torch.Size([1, 2, 16]))
    """

    check_ids: bool = True

    def __init__(self, vocab_size: int | LSTMConfig, n_embd: int = 128, n_hidden: int = 256,
                 n_layer: int = 1, dropout: float = 0.0):
        super().__init__()
        if isinstance(vocab_size, LSTMConfig):
            config = vocab_size
            config.validate()
        else:
            config = LSTMConfig(vocab_size=vocab_size, n_embd=n_embd, n_hidden=n_hidden, n_layer=n_layer,
                                dropout=dropout)
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        # nn.LSTM's own dropout acts only between stacked layers, so it is 0 for a single layer
        self.lstm = nn.LSTM(config.n_embd, config.n_hidden, num_layers=config.n_layer, batch_first=True,
                            dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.lm_head = nn.Linear(config.n_hidden, config.vocab_size)

    def num_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def _check_state(self, state: LSTMState, batch_size: int) -> None:
        expected = (self.config.n_layer, batch_size, self.config.n_hidden)
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise TypeError("state must be a tuple (h, c) as returned by forward_with_state, or None")
        for name, s in zip("hc", state):
            if tuple(s.shape) != expected:
                raise ValueError(f"state {name} must have shape (n_layer, B, n_hidden) = {expected}, "
                                 f"got {tuple(s.shape)}; pass the state returned for a batch of the same size")

    def forward_with_state(self, idx: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """Logits and the final state, to be passed to the next call (detach it between TBPTT chunks).

        Shape: idx (B, T), state (h, c) each (nl, B, H) or None (zeros) -> logits (B, T, V), new state
        """
        check_idx(idx, self.config.vocab_size, check_ids=self.check_ids, device=self.wte.weight.device)
        if state is not None:
            self._check_state(state, idx.size(0))
            state = tuple(state)
        x = self.drop(self.wte(idx))  # (B, T, E)
        out, new_state = self.lstm(x, state)  # (B, T, H), (h, c) each (nl, B, H)
        logits = self.lm_head(self.drop(out))  # (B, T, V)
        return logits, new_state

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                state: LSTMState | None = None) -> tuple[Tensor, Tensor | None]:
        """Shape: idx (B, T), targets (B, T) -> logits (B, T, V), loss scalar or None"""
        if targets is not None:
            check_idx(idx, self.config.vocab_size, check_ids=False, device=self.wte.weight.device)
            check_targets(targets, idx, self.config.vocab_size, check_ids=self.check_ids)
        logits, _ = self.forward_with_state(idx, state)  # (B, T, V)
        loss = None
        if targets is not None:
            V = self.config.vocab_size
            loss = F.cross_entropy(logits.view(-1, V), targets.reshape(-1), ignore_index=-100)  # (B*T, V) vs (B*T,)
        return logits, loss

    def decode_step(self, idx: Tensor, cache: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """Same contract as ``GPT.decode_step``: the cache is the state (h, c); there is no length limit.

        Shape: idx (B, T_new) -> logits (B, T_new, V), cache (h, c) each (nl, B, H)
        """
        if idx.dim() == 2 and idx.size(1) == 0:
            raise ValueError("decode_step needs at least one new token, got idx with T=0")
        return self.forward_with_state(idx, cache)

    def reorder_cache(self, cache: LSTMState, index: Tensor) -> LSTMState:
        """Select (or repeat) batch rows of the state, e.g. for beam search. The batch dim of h and c is 1.

        Shape: index (B',) -> (h, c) each (nl, B', H)
        """
        h, c = cache
        index = index.to(device=h.device, dtype=torch.long)
        return h.index_select(1, index), c.index_select(1, index)  # (nl, B', H)
