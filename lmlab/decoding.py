"""Running a language model one token at a time, for generation.

``NextTokenLogits`` gives the logits of the token after each row of a sequence that grows by one token per
call. Models with a KV cache (``GPT``, ``LSTMLM``: ``decode_step(idx, cache=None) -> (logits, cache)`` and
``reorder_cache(cache, index)``) run only the newest token through the network at each step. A model whose
config has a ``block_size`` sees at most its last ``block_size`` tokens: once the sequence is longer, the
context is cropped to the last ``block_size`` tokens and the cache is rebuilt from them at every step
(positions restart at 0, just as ``forward`` on the cropped context), so such steps cost a full forward
pass, like nanoGPT's loop. Models without ``decode_step`` run ``forward`` on the (cropped) whole sequence.

``StaticNextTokenLogits`` does the same with a GPT's ``StaticKVCache``: buffers allocated once, so every step
after the prompt runs one token with the same shapes. That step can be compiled with
``torch.compile(mode="reduce-overhead")``: on a GPU it is captured as a CUDA graph and replayed with one launch,
instead of a few hundred kernel launches that take longer than the kernels of a small batch (as gpt-fast does).

Letters: N rows run through the model (B, or B * K in beam search), L the sequence length so far, V vocab,
S the static cache's slots (block_size).
"""

from __future__ import annotations

import functools
import itertools
import weakref
from typing import Any, Callable

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["NextTokenLogits", "StaticNextTokenLogits", "model_device", "context_length"]


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


def decode_last(model: nn.Module, idx: Tensor, pos: Tensor, cache: Any) -> Tensor:
    """Logits for the token after the last of ``idx``, run at positions ``pos`` with a static cache.

    Shape: idx (N, T), pos (T,) -> (N, V) float32
    """
    return model.decode_static(idx, pos, cache)[:, -1, :].float()


@functools.cache
def compiled_decode_last() -> Callable[..., Tensor]:
    """``decode_last`` compiled once per process for one-token steps (CUDA graphs on a GPU)."""
    return torch.compile(decode_last, mode="reduce-overhead", fullgraph=True)


# the static cache of each model that generated with compile=True: the next call reuses it (and the CUDA graphs
# recorded for its memory); it goes away with the model
_kept_caches: weakref.WeakKeyDictionary[nn.Module, Any] = weakref.WeakKeyDictionary()


class StaticNextTokenLogits:
    """``NextTokenLogits`` for models with a static cache (``GPT.static_cache``, ``GPT.decode_static``).

    The prompt fills the cache's first slots; then each call runs the newest token alone, at its position (a
    tensor, so one compiled step serves every position). A sequence longer than ``block_size`` is cropped and
    the cache refilled from the last ``block_size`` tokens at every step, as ``NextTokenLogits`` does.
    ``compile=True`` compiles the one-token step (``compiled_decode_last``); the prompt runs uncompiled, since
    its length varies. Greedy decoding and sampling only (beam search reorders its cache rows).
    """

    def __init__(self, model: nn.Module, compile: bool = False):
        self.model, self.compile = model, compile
        self.positions = torch.arange(model.config.block_size, device=model_device(model))  # (S,) slot of each position
        self.cache: Any = _kept_caches.get(model) if compile else None
        self.filled = 0  # positions in the cache that belong to the current sequence

    def __call__(self, seq: Tensor) -> Tensor:
        """Shape: seq (N, L) -> logits for position L, (N, V) in float32."""
        N, L = seq.shape
        S = self.positions.numel()
        weight = self.model.lm_head.weight
        if self.cache is None or self.cache.batch_size != N or self.cache.k[0].dtype != weight.dtype:
            self.cache = self.model.static_cache(N)  # (N, nh, S, hs) per layer, in the weights' dtype
            if self.compile:
                for t in self.cache.k + self.cache.v:
                    torch._dynamo.mark_static_address(t)  # the same memory at every step: CUDA graphs may keep it
                _kept_caches[self.model] = self.cache
        if self.filled != L - 1 or L > S:  # the prompt, or a context longer than block_size: (re)fill the cache
            context = seq[:, -S:]  # (N, L')
            self.filled = context.size(1)
            return decode_last(self.model, context, self.positions[:self.filled], self.cache)
        if self.compile:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs are no longer needed
        step = compiled_decode_last() if self.compile else decode_last
        self.filled = L
        return step(self.model, seq[:, -1:].contiguous(), self.positions[L - 1:L], self.cache)  # (N, V)
