"""MaskedLM: a BERT-style bidirectional encoder trained to fill in masked tokens (Devlin et al., 2019).

The architecture is Hugging Face ``BertForMaskedLM``'s, layer for layer, so weights can be exchanged
(``lmlab.interop``). Every token attends to every other (no causal mask); only padding is masked.

    word + position + token-type embeddings -> LayerNorm (eps 1e-12) -> dropout
    -> n_layer post-LayerNorm layers:
           x = LN(x + dropout(out(attention(x))))
           x = LN(x + dropout(proj(GELU(fc(x)))))        (GELU exact, erf form; fc is C -> 4C)
    -> MLM head: dense -> GELU -> LayerNorm -> decoder (weight tied to the word embeddings, own bias)

Name map (lmlab -> Hugging Face ``BertForMaskedLM``; i is the layer):

    embeddings.word_embeddings        bert.embeddings.word_embeddings
    embeddings.position_embeddings    bert.embeddings.position_embeddings
    embeddings.token_type_embeddings  bert.embeddings.token_type_embeddings   (type_vocab_size rows)
    embeddings.ln                     bert.embeddings.LayerNorm
    layers.i.attn.query/key/value     bert.encoder.layer.i.attention.self.query/key/value
    layers.i.attn.out                 bert.encoder.layer.i.attention.output.dense
    layers.i.ln_1                     bert.encoder.layer.i.attention.output.LayerNorm
    layers.i.mlp.fc                   bert.encoder.layer.i.intermediate.dense
    layers.i.mlp.proj                 bert.encoder.layer.i.output.dense
    layers.i.ln_2                     bert.encoder.layer.i.output.LayerNorm
    head.dense, head.ln               cls.predictions.transform.dense, .LayerNorm
    head.decoder.weight / .bias       cls.predictions.decoder.weight (tied) / cls.predictions.bias

All Linear weights are stored as (out, in) in both libraries: no transposes.

Masks: ``attention_mask`` (B, T) has 1/True for real tokens and 0/False for padding (the Hugging Face
convention); padded keys get no attention. Inside, masks are boolean with True = may attend.

Letters: B batch, T time, C channels (n_embd), nh heads, hs head size, V vocab size.

Left out: next-sentence prediction, segment (token type) ids other than 0, the pooler.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lmlab.attention import scaled_dot_product_attention
from lmlab.checks import check_idx, check_targets, check_transformer_config

__all__ = ["MaskedLMConfig", "MaskedLM", "mask_tokens"]


@dataclass
class MaskedLMConfig:
    """Hyperparameters of a MaskedLM, as plain data (``dataclasses.asdict`` -> JSON) for checkpoints."""

    vocab_size: int = 66  # number of token ids V, including the special [MASK] (and [PAD]) ids
    block_size: int = 128  # longest sequence T (size of the position table)
    n_layer: int = 2  # number of encoder layers
    n_head: int = 4  # attention heads per layer; must divide n_embd
    n_embd: int = 128  # channels C (BERT's hidden_size); the MLP is 4C wide
    dropout: float = 0.0  # dropout on embeddings, attention weights and residual branches (training only)
    mask_token_id: int | None = None  # id of [MASK], used by mask_tokens (None: not set yet)
    pad_token_id: int | None = None  # id of [PAD], if sequences are padded (for building attention masks)
    type_vocab_size: int = 1  # token-type (segment) rows; lmlab uses type 0 only (BERT has 2)
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError if the fields do not make a valid model."""
        check_transformer_config(
            self, ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "type_vocab_size"))
        for name in ("mask_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"MaskedLMConfig.{name}={value} must be an id in [0, vocab_size={self.vocab_size}); "
                                 "add the special token to the vocabulary first")


def mask_tokens(
    idx: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
    special_ids: Iterable[int] = (),
) -> tuple[Tensor, Tensor]:
    """BERT's masking recipe: returns ``(inputs, targets)`` for masked-language-model training.

    Each position is selected with probability ``mask_prob`` (never one holding a ``special_ids`` id,
    e.g. padding). Of the selected positions 80% become ``mask_token_id``, 10% a random id drawn
    uniformly from [0, vocab_size), and 10% stay unchanged. ``targets`` holds the original id at
    selected positions and -100 (ignored by the loss) everywhere else.

    Shape: idx (B, T) -> inputs (B, T), targets (B, T)

    Example:
        >>> inputs, targets = mask_tokens(torch.tensor([[5, 6, 7, 8]]), mask_token_id=0, vocab_size=10, mask_prob=1.0)
        >>> targets
        tensor([[5, 6, 7, 8]])
    """
    if not isinstance(idx, Tensor) or idx.dtype not in (torch.long, torch.int32):
        raise TypeError("idx must be an integer tensor of token ids (torch.long), e.g. idx.long()")
    if not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob} (BERT uses 0.15)")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id={mask_token_id} must be in [0, vocab_size={vocab_size})")
    idx = idx.long()
    device = idx.device
    special = torch.tensor(sorted(set(special_ids)), dtype=torch.long, device=device)
    selectable = ~torch.isin(idx, special)  # (B, T)
    selected = (torch.rand(idx.shape, generator=generator, device=device) < mask_prob) & selectable  # (B, T)
    r = torch.rand(idx.shape, generator=generator, device=device)  # which of the three treatments
    to_mask = selected & (r < 0.8)
    to_random = selected & (r >= 0.8) & (r < 0.9)
    random_ids = torch.randint(0, vocab_size, idx.shape, generator=generator, device=device)  # (B, T)
    inputs = torch.where(to_mask, torch.full_like(idx, mask_token_id), idx)
    inputs = torch.where(to_random, random_ids, inputs)
    targets = torch.where(selected, idx, torch.full_like(idx, -100))
    return inputs, targets


class Embeddings(nn.Module):
    """word + position + token type (always 0) -> LayerNorm -> dropout. Shape: (B, T) -> (B, T, C)"""

    def __init__(self, config: MaskedLMConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embeddings = nn.Embedding(config.block_size, config.n_embd)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.n_embd)
        self.ln = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.size(1)
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.word_embeddings(idx) + self.position_embeddings(pos)  # (B, T, C)
        x = x + self.token_type_embeddings.weight[0]  # (B, T, C): every token is of type 0
        return self.drop(self.ln(x))


class SelfAttention(nn.Module):
    """Bidirectional multi-head self-attention with separate query/key/value projections.

    Shape: x (B, T, C), mask broadcastable to (B, nh, T, T) (True = may attend) -> (B, T, C), weights
    """

    def __init__(self, config: MaskedLMConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.out = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: Tensor, mask: Tensor | None, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        B, T, C = x.shape
        hs = C // self.n_head
        q = self.query(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.key(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = self.value(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            y, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)  # (B, nh, T, hs), (B, nh, T, T)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.out(y), weights


class MLP(nn.Module):
    """C -> 4C -> GELU (exact) -> C."""

    def __init__(self, config: MaskedLMConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU()
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.gelu(self.fc(x)))  # (B, T, 4C) -> (B, T, C)


class EncoderLayer(nn.Module):
    """Post-LayerNorm encoder layer: x = LN(x + attn(x)); x = LN(x + mlp(x))."""

    def __init__(self, config: MaskedLMConfig):
        super().__init__()
        self.attn = SelfAttention(config)
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor | None, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        a, weights = self.attn(x, mask, need_weights)
        x = self.ln_1(x + self.drop(a))  # (B, T, C)
        x = self.ln_2(x + self.drop(self.mlp(x)))  # (B, T, C)
        return x, weights


class MLMHead(nn.Module):
    """dense -> GELU -> LayerNorm -> decoder (weight tied to the word embeddings by MaskedLM, own bias)."""

    def __init__(self, config: MaskedLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.n_embd, config.n_embd)
        self.gelu = nn.GELU()
        self.ln = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.n_embd, config.vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.ln(self.gelu(self.dense(x))))  # (B, T, C) -> (B, T, V)


class MaskedLM(nn.Module):
    """BERT-style masked language model. ``forward(idx, targets=None, attention_mask=None) -> (logits, loss)``.

    ``targets`` are usually the second output of ``mask_tokens``: original ids at masked positions,
    -100 elsewhere; the loss is the mean cross-entropy over the non-ignored positions.

    Shape:
        idx (B, T), attention_mask (B, T) (1 = real token, 0 = padding) -> logits (B, T, V)

    Example:
        >>> cfg = MaskedLMConfig(vocab_size=12, block_size=16, n_layer=1, n_head=2, n_embd=16, mask_token_id=11)
        >>> model = MaskedLM(cfg)
        >>> inputs, targets = mask_tokens(torch.randint(0, 11, (2, 8)), mask_token_id=11, vocab_size=12)
        >>> logits, loss = model(inputs, targets)
    """

    check_ids: bool = True

    def __init__(self, config: MaskedLMConfig):
        super().__init__()
        if not isinstance(config, MaskedLMConfig):
            raise TypeError(f"MaskedLM expects a MaskedLMConfig, got {type(config).__name__}")
        config.validate()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList([EncoderLayer(config) for _ in range(config.n_layer)])
        self.head = MLMHead(config)
        self.head.decoder.weight = self.embeddings.word_embeddings.weight  # weight tying
        self.apply(self._init_weights)  # BERT init: N(0, 0.02), zero biases, LayerNorm (1, 0)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Number of parameters (the tied decoder weight counted once)."""
        return sum(p.numel() for p in self.parameters())

    def _key_mask(self, idx: Tensor, attention_mask: Tensor | None) -> Tensor | None:
        """(B, T) 1 = real token -> boolean (B, 1, 1, T), True = may attend."""
        if attention_mask is None:
            return None
        if not isinstance(attention_mask, Tensor) or attention_mask.shape != idx.shape:
            shape = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
            raise ValueError(f"attention_mask must be a tensor shaped like idx {tuple(idx.shape)} "
                             f"(1 = real token, 0 = padding), got {shape}")
        return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)

    def _run(self, idx: Tensor, attention_mask: Tensor | None, need_weights: bool) -> tuple[Tensor, list[Tensor]]:
        check_idx(idx, self.config.vocab_size, self.config.block_size, check_ids=self.check_ids,
                  device=self.embeddings.word_embeddings.weight.device)
        mask = self._key_mask(idx, attention_mask)  # (B, 1, 1, T) or None
        x = self.embeddings(idx)  # (B, T, C)
        maps = []
        for layer in self.layers:
            x, weights = layer(x, mask, need_weights)  # (B, T, C)
            if weights is not None:
                maps.append(weights)
        return x, maps

    def encode(self, idx: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Contextual hidden states of the last layer (for classifiers).

        Shape: idx (B, T) -> (B, T, C)
        """
        return self._run(idx, attention_mask, need_weights=False)[0]

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Shape: idx (B, T), targets (B, T), attention_mask (B, T) -> logits (B, T, V), loss scalar or None"""
        V = self.config.vocab_size
        x, _ = self._run(idx, attention_mask, need_weights=False)  # (B, T, C)
        if targets is not None:
            check_targets(targets, idx, V, check_ids=self.check_ids)
        logits = self.head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, V), targets.reshape(-1), ignore_index=-100)  # (B*T, V) vs (B*T,)
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Every layer's attention weights (from-scratch path). Padded keys get weight 0.

        Shape: idx (B, T) -> (n_layer, B, nh, T, T)
        """
        _, maps = self._run(idx, attention_mask, need_weights=True)
        return torch.stack(maps)  # n_layer x (B, nh, T, T) -> (n_layer, B, nh, T, T)
