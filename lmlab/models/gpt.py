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
(``attention_maps``). ``decode_step`` keeps a KV cache for generation.

Letters: B batch, T time, C channels (n_embd), nh heads, hs head size (C // nh), V vocab size,
L cached length.

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

__all__ = ["GPTConfig", "GPT", "KVCache"]


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
    mlp: bool = True  # False: attention-only blocks (no ln_2, no MLP), the models of circuit studies (notebook 08)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError if the fields do not make a valid model."""
        check_transformer_config(self, ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"))


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


class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention with a fused q/k/v projection (``c_attn``).

    Shape: x (B, T, C) -> y (B, T, C); past (k, v) each (B, nh, L, hs); weights (B, nh, T, L + T)
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
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None, need_weights: bool = False
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, 3C) -> 3 x (B, T, C)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        L = 0
        if past is not None:
            L = past[0].size(2)
            k = torch.cat([past[0], k], dim=2)  # (B, nh, L + T, hs)
            v = torch.cat([past[1], v], dim=2)  # (B, nh, L + T, hs)
        dropout_p = self.dropout if self.training else 0.0

        weights = None
        if need_weights or (L > 0 and T > 1):
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
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None, need_weights: bool = False
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        a, present, weights = self.attn(self.ln_1(x), past, need_weights)
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
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding
            wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embedding
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
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
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, V), targets.reshape(-1), ignore_index=-100)  # (B*T, V) vs (B*T,)
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
        return self.lm_head(x), new_cache  # (B, T_new, V)

    def reorder_cache(self, cache: KVCache, index: Tensor) -> KVCache:
        """Select (or repeat) batch rows of a cache, e.g. the surviving beams in beam search.

        Shape: index (B',) int64 -> cache with batch size B'

        Example: reorder_cache(cache, torch.tensor([0, 0, 1])) keeps row 0 twice, then row 1.
        """
        index = index.to(device=cache.layers[0][0].device if cache.layers else index.device, dtype=torch.long)
        layers = [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache.layers]  # (B', nh, L, hs)
        return KVCache(layers=layers, length=cache.length)
