"""Running a language model one token at a time, for generation.

``NextTokenLogits`` gives the logits of the token after each row of a sequence that grows by one token per
call. Models with a KV cache (``GPT``, ``LSTMLM``: ``decode_step(idx, cache=None) -> (logits, cache)`` and
``reorder_cache(cache, index)``) run only the newest token through the network at each step. A model whose
config has a ``block_size`` sees at most its last ``block_size`` tokens: once the sequence is longer, the
context is cropped to the last ``block_size`` tokens and the cache is rebuilt from them at every step
(positions restart at 0, just as ``forward`` on the cropped context), so such steps cost a full forward
pass, like nanoGPT's loop. Models without ``decode_step`` run ``forward`` on the (cropped) whole sequence.

Letters: N rows run through the model (B, or B * K in beam search), L the sequence length so far, V vocab.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["NextTokenLogits", "model_device", "context_length"]


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer (None for a model without tensors)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return None


def context_length(model: nn.Module) -> int | None:
    """The longest context the model accepts, from ``model.config.block_size`` (None: unlimited)."""
    return getattr(getattr(model, "config", None), "block_size", None)


class NextTokenLogits:
    """Logits for the token after each row of a sequence that grows by one token per call.

    Keeps the model's KV cache between calls when the model has ``decode_step`` and ``use_cache``:
    the cache always holds the sequence minus its newest token, which is the only one run. When the
    cache is empty, or full (``block_size`` tokens), it is rebuilt from the last ``block_size`` tokens.
    Models without ``decode_step`` run ``forward`` on the (cropped) whole sequence at every call.
    """

    def __init__(self, model: nn.Module, use_cache: bool):
        self.model = model
        self.block_size = context_length(model)
        self.use_cache = use_cache and hasattr(model, "decode_step")
        self.cache: Any = None
        self.cached_len = 0  # tokens held in the cache

    def _crop(self, seq: Tensor) -> Tensor:
        return seq if self.block_size is None else seq[:, -self.block_size:]  # (N, <= block_size)

    def __call__(self, seq: Tensor) -> Tensor:
        """Shape: seq (N, L) -> logits for position L, (N, V) in float32."""
        if not self.use_cache:
            logits, _ = self.model(self._crop(seq))  # (N, L', V)
        elif self.cache is None or (self.block_size is not None and self.cached_len + 1 > self.block_size):
            context = self._crop(seq)  # (N, L')
            logits, self.cache = self.model.decode_step(context)  # (N, L', V), fresh cache
            self.cached_len = context.size(1)
        else:
            logits, self.cache = self.model.decode_step(seq[:, -1:], self.cache)  # (N, 1, V)
            self.cached_len += 1
        return logits[:, -1, :].float()  # (N, V)

    def reorder(self, index: Tensor) -> None:
        """Keep (or repeat) the cache rows ``index``, after beam search chose which beams go on."""
        if self.use_cache and self.cache is not None:
            self.cache = self.model.reorder_cache(self.cache, index)
