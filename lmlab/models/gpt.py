"""GPT: a decoder-only transformer language model, the whole forward pass in one file.

The architecture is GPT-2's (Radford et al., 2019), module for module, so weights can be exchanged
with Hugging Face's ``GPT2LMHeadModel`` (see ``lmlab.interop``):

    token embedding wte + learned position embedding wpe -> dropout
    -> n_layer blocks:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))      (pre-LayerNorm)
    -> final LayerNorm ln_f -> lm_head (no bias, weight tied to wte)

Module names follow nanoGPT (Karpathy): ``transformer.wte``, ``transformer.wpe``,
``transformer.h[i].ln_1``, ``.attn.c_attn`` (fused q/k/v), ``.attn.c_proj``, ``.ln_2``, ``.mlp.c_fc``,
``.mlp.c_proj``, ``transformer.ln_f``, ``lm_head``. GPT-2 stores its Linear weights transposed
(``Conv1D``); the interop code transposes them.

Attention has two paths: the fast one through ``F.scaled_dot_product_attention`` and the readable one
through ``lmlab.attention.scaled_dot_product_attention``, used when the weights are wanted
(``attention_maps``). ``decode_step`` keeps a KV cache for generation; ``decode_static`` writes into a
``StaticKVCache`` allocated once, so that every generation step has the same shapes (for CUDA graphs).

``pad_vocab_multiple=64`` rounds the rows of the embedding and of ``lm_head`` up to a multiple of 64 (GPT-2's
50257 -> 50304, as nanoGPT does): a GPU's matrix units run faster on such sizes. The padding rows are never a
token: the logits are cut back to V, so the model computes what the unpadded one computes. It is meant for
``torch.compile``, which can fold the cut into the loss; eager, the cut costs a copy of the logits.

Letters: B batch, T time, C channels (n_embd), nh heads, hs head size (C // nh), V vocab size,
Vp padded vocab size (V unless ``pad_vocab_multiple`` > 1), L cached length, S static cache slots (block_size).

Left out: flash-attention options, weight decay groups (the training loop owns those), and
generation itself (``lmlab.generate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lmlab.attention import scaled_dot_product_attention
from lmlab.checks import check_idx, check_targets, check_transformer_config

__all__ = ["GPTConfig", "GPT", "KVCache", "StaticKVCache"]


@dataclass
class GPTConfig:
    """Hyperparameters of a GPT. Plain data: ``dataclasses.asdict`` gives JSON for checkpoints."""

    vocab_size: int = 65  # number of token ids V (65 = characters of tiny Shakespeare)
    block_size: int = 256  # longest context T the model can see (size of the position table)
    n_layer: int = 4  # number of transformer blocks
    n_head: int = 4  # attention heads per block; must divide n_embd
    n_embd: int = 128  # channels C of the residual stream
    dropout: float = 0.0  # dropout on embeddings, attention weights and residual branches (training only)
    bias: bool = True  # biases in Linear and LayerNorm layers (GPT-2 has them; False is a bit faster)
    pad_vocab_multiple: int = 1  # embedding/lm_head rows rounded up to a multiple (64: faster on GPUs); logits keep V
    mlp: bool = True  # False: attention-only blocks (no ln_2, no MLP), the models of circuit studies (notebook 08)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError if the fields do not make a valid model."""
        sizes = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "pad_vocab_multiple")
        check_transformer_config(self, sizes)

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and lm_head: vocab_size rounded up to a multiple of pad_vocab_multiple."""
        return -(-self.vocab_size // self.pad_vocab_multiple) * self.pad_vocab_multiple


@dataclass
class KVCache:
    """Keys and values of every layer for the tokens seen so far, for fast generation.

    ``layers[i] = (k, v)`` for block i, each of shape (B, nh, L, hs); ``length`` = L, the number of
    positions already processed (the next token gets position ``length``).
    """

    layers: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    length: int = 0

    @property
    def batch_size(self) -> int:
        return self.layers[0][0].size(0) if self.layers else 0


@dataclass
class StaticKVCache:
    """Keys and values of every layer in buffers allocated once for all ``block_size`` positions, written in place.

    ``k[i]``, ``v[i]``: block i's keys and values, each (B, nh, S, hs) with S = block_size. Slot p holds the
    token at position p once it has been run; slots not written yet are masked out. Every generation step
    then has the same shapes and uses the same memory, which CUDA graphs need (``torch.compile`` with
    ``mode="reduce-overhead"`` replays a whole step as one launch). The price: attention reads all S slots.
    """

    k: list[Tensor]
    v: list[Tensor]

    @property
    def batch_size(self) -> int:
        return self.k[0].size(0)


class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention with a fused q/k/v projection (``c_attn``).

    Shape: x (B, T, C) -> y (B, T, C); past (k, v) each (B, nh, L, hs); weights (B, nh, T, L + T)
    With ``pos`` (T,): past is a static cache's (k, v), each (B, nh, S, hs), written in place at slots pos.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v for all heads
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # output projection
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None, need_weights: bool = False,
        pos: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, 3C) -> 3 x (B, T, C)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        L = 0
        if pos is not None:  # static cache: write the new keys/values into slots pos (in place)
            past[0].index_copy_(2, pos, k)
            past[1].index_copy_(2, pos, v)
            k, v = past  # (B, nh, S, hs)
        elif past is not None:
            L = past[0].size(2)
            k = torch.cat([past[0], k], dim=2)  # (B, nh, L + T, hs)
            v = torch.cat([past[1], v], dim=2)  # (B, nh, L + T, hs)
        dropout_p = self.dropout if self.training else 0.0

        weights = None
        if pos is not None:
            # query i sits at position pos[i] and may attend slots 0..pos[i] (True = may attend)
            mask = torch.arange(k.size(2), device=x.device) <= pos[:, None]  # (T, S)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, nh, T, hs)
        elif need_weights or (L > 0 and T > 1):
            # query i sits at position L + i and may attend keys 0..L + i (True = may attend)
            mask = torch.ones(T, L + T, dtype=torch.bool, device=x.device).tril(diagonal=L)  # (T, L + T)
            if need_weights:
                y, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)  # (B, nh, T, hs), (B, nh, T, L+T)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, nh, T, hs)
        else:
            # no cache: plain causal mask; one new token with a cache: it may see every key
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=(L == 0))  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        y = self.resid_dropout(self.c_proj(y))  # (B, T, C)
        return y, (k, v), weights


class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> GELU (tanh approximation, as GPT-2) -> C."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.gelu(self.c_fc(x))  # (B, T, 4C)
        return self.dropout(self.c_proj(x))  # (B, T, C)


class Block(nn.Module):
    """One pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)) (unless ``mlp=False``)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias) if config.mlp else None
        self.mlp = MLP(config) if config.mlp else None

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None, need_weights: bool = False,
        pos: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        a, present, weights = self.attn(self.ln_1(x), past, need_weights, pos)
        x = x + a  # (B, T, C)
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return x, present, weights


class GPT(nn.Module):
    """GPT-2-style language model. ``forward(idx, targets=None) -> (logits, loss)``.

    Set ``model.check_ids = False`` to skip the token-id range check (one host sync per call).

    Shape:
        idx (B, T) int64 with T <= block_size -> logits (B, T, V); targets (B, T) -> loss scalar

    Example:
        >>> model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16))
        >>> logits, loss = model(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
        >>> logits.shape
        torch.Size([2, 5, 10])
    """

    check_ids: bool = True

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}; build one with GPTConfig(**fields)")
        config.validate()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.padded_vocab_size, config.n_embd),  # token embedding (Vp rows)
            wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embedding
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying: one Parameter, two uses

        # GPT-2 init: N(0, 0.02) everywhere, zero biases, and residual projections scaled by
        # 1/sqrt(2 * n_layer) so the residual stream's variance does not grow with depth.
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters (tied weights counted once); minus the position table if ``non_embedding``.

        As in nanoGPT the token embedding stays in the count, because it is also the output layer.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def _run(
        self, idx: Tensor, cache: KVCache | None = None, need_weights: bool = False
    ) -> tuple[Tensor, KVCache, list[Tensor]]:
        """Embeddings and blocks; returns hidden states after ln_f (B, T, C), the new cache, the weights."""
        B, T = idx.shape
        L = 0 if cache is None else cache.length
        pos = torch.arange(L, L + T, dtype=torch.long, device=idx.device)  # (T,)
        tok_emb = self.transformer.wte(idx)  # (B, T, C)
        pos_emb = self.transformer.wpe(pos)  # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb)  # (B, T, C)
        presents, maps = [], []
        for i, block in enumerate(self.transformer.h):
            past = None if cache is None else cache.layers[i]
            x, present, weights = block(x, past, need_weights)  # (B, T, C)
            presents.append(present)
            if weights is not None:
                maps.append(weights)
        x = self.transformer.ln_f(x)  # (B, T, C)
        return x, KVCache(layers=presents, length=L + T), maps

    def _logits(self, x: Tensor) -> Tensor:
        """Shape: hidden states x (B, T, C) -> logits (B, T, V), without the padding rows of the vocabulary."""
        logits = self.lm_head(x)  # (B, T, Vp)
        if self.config.padded_vocab_size != self.config.vocab_size:
            logits = logits[..., :self.config.vocab_size]  # (B, T, V): a view; the padding is never a token
        return logits

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits for the next token at every position, and the mean cross-entropy if ``targets`` is given.

        Targets equal to -100 are ignored in the loss.

        Shape: idx (B, T), targets (B, T) -> logits (B, T, V), loss scalar or None
        """
        V = self.config.vocab_size
        check_idx(idx, V, self.config.block_size, check_ids=self.check_ids, device=self.transformer.wte.weight.device)
        if targets is not None:
            check_targets(targets, idx, V, check_ids=self.check_ids)
        x, _, _ = self._run(idx)  # (B, T, C)
        logits = self._logits(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)  # (B*T, V) vs (B*T,)
        return logits, loss

    def hidden_states(self, idx: Tensor) -> Tensor:
        """The final hidden states (after ln_f), e.g. for a classifier head.

        Shape: idx (B, T) -> (B, T, C)
        """
        check_idx(idx, self.config.vocab_size, self.config.block_size, check_ids=self.check_ids,
                  device=self.transformer.wte.weight.device)
        x, _, _ = self._run(idx)
        return x

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> Tensor:
        """Every layer's attention weights, computed on the readable (from-scratch) path.

        Row t of a map is the distribution over positions 0..t that token t attends to.

        Shape: idx (B, T) -> (n_layer, B, nh, T, T)
        """
        check_idx(idx, self.config.vocab_size, self.config.block_size, check_ids=self.check_ids,
                  device=self.transformer.wte.weight.device)
        _, _, maps = self._run(idx, need_weights=True)
        return torch.stack(maps)  # n_layer x (B, nh, T, T) -> (n_layer, B, nh, T, T)

    def decode_step(self, idx: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Run new tokens through the model, reusing the keys/values of earlier ones.

        With ``cache=None`` ``idx`` is the prompt; with a cache, ``idx`` holds the next tokens and their
        positions continue from ``cache.length``. The result equals ``forward`` on the whole sequence.
        The cache cannot grow past ``block_size``: the caller crops (``lmlab.generate`` does).

        Shape: idx (B, T_new) -> logits (B, T_new, V), cache with length L + T_new

        Example:
            >>> logits, cache = model.decode_step(prompt)                   # (B, T, V)
            >>> logits, cache = model.decode_step(next_ids[:, None], cache)  # (B, 1, V)
        """
        check_idx(idx, self.config.vocab_size, check_ids=self.check_ids, device=self.transformer.wte.weight.device)
        T_new = idx.size(1)
        if T_new == 0:
            raise ValueError("decode_step needs at least one new token, got idx with T=0")
        L = 0 if cache is None else cache.length
        if L + T_new > self.config.block_size:
            raise ValueError(
                f"cache length {L} + {T_new} new tokens = {L + T_new} exceeds block_size={self.config.block_size}; "
                f"start a new cache from the last block_size tokens (idx[:, -{self.config.block_size}:])"
            )
        if cache is not None:
            if len(cache.layers) != self.config.n_layer:
                raise ValueError(f"cache has {len(cache.layers)} layers but the model has {self.config.n_layer}; "
                                 "pass the cache this model returned")
            if cache.batch_size != idx.size(0):
                raise ValueError(f"idx has batch size {idx.size(0)} but the cache holds {cache.batch_size} rows; "
                                 "use reorder_cache to select or repeat rows")
        x, new_cache, _ = self._run(idx, cache)  # (B, T_new, C)
        return self._logits(x), new_cache  # (B, T_new, V)

    def static_cache(self, batch_size: int) -> StaticKVCache:
        """An empty ``StaticKVCache`` for ``batch_size`` rows, in the dtype and on the device of the weights."""
        c, w = self.config, self.transformer.wte.weight
        shape = (batch_size, c.n_head, c.block_size, c.n_embd // c.n_head)  # (B, nh, S, hs)
        new = [torch.zeros(shape, dtype=w.dtype, device=w.device) for _ in range(2 * c.n_layer)]
        return StaticKVCache(k=new[:c.n_layer], v=new[c.n_layer:])

    def decode_static(self, idx: Tensor, pos: Tensor, cache: StaticKVCache) -> Tensor:
        """``decode_step`` with a ``StaticKVCache``: run tokens ``idx`` at positions ``pos``, writing their keys and
        values into the cache's slots ``pos``; they attend to the slots up to their own position.

        ``pos`` is a tensor (not an int) so that a compiled step serves every position. No argument checks: this
        is the inner loop of generation (``lmlab.decoding.StaticNextTokenLogits`` calls it). The weights' dtype is
        used throughout (no autocast): convert the model (``model.to(torch.bfloat16)``) for bf16.

        Shape: idx (B, T_new), pos (T_new,) int64, consecutive, < block_size -> logits (B, T_new, V)

        Example:
            >>> cache = model.static_cache(1)
            >>> logits = model.decode_static(prompt, torch.arange(prompt.size(1)), cache)   # (1, T, V)
            >>> logits = model.decode_static(next_id[:, None], torch.tensor([T]), cache)    # (1, 1, V)
        """
        tok_emb = self.transformer.wte(idx)  # (B, T_new, C)
        pos_emb = self.transformer.wpe(pos)  # (T_new, C)
        x = self.transformer.drop(tok_emb + pos_emb)  # (B, T_new, C)
        for block, k, v in zip(self.transformer.h, cache.k, cache.v):
            x, _, _ = block(x, (k, v), pos=pos)  # (B, T_new, C)
        return self._logits(self.transformer.ln_f(x))  # (B, T_new, V)

    def reorder_cache(self, cache: KVCache, index: Tensor) -> KVCache:
        """Select (or repeat) batch rows of a cache, e.g. the surviving beams in beam search.

        Shape: index (B',) int64 -> cache with batch size B'

        Example: reorder_cache(cache, torch.tensor([0, 0, 1])) keeps row 0 twice, then row 1.
        """
        index = index.to(device=cache.layers[0][0].device if cache.layers else index.device, dtype=torch.long)
        layers = [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache.layers]  # (B', nh, L, hs)
        return KVCache(layers=layers, length=cache.length)
