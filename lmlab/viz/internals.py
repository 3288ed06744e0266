"""Inside a head: its query, key and value vectors, value-weighted attention, and head ablation.

Attention weights say where a head reads from, not what it reads or whether the model needs it. Three
tools look further, on the same models as ``attention_weights`` (lmlab ``GPT`` / ``MaskedLM``, and
GPT-2 or BERT style Hugging Face models):

- ``head_vectors``: every head's query, key and value vectors (the neuron view: ``q_i * k_j`` summed
  over the head's dimensions and divided by sqrt(hs) is the score that the softmax turns into a weight,
  as in notebook 05);
- ``value_weighted``: each weight times the size of what the head adds from that key,
  ``a_ij * ||v_j W_O||`` (Kobayashi et al., 2020), rows renormalized;
- ``ablate_head``: the loss on a text and the predictions at one position with a head's output set to
  zero, against the intact model.

They read the projections through forward hooks, so the models are not changed. Letters: L layers,
H heads, T tokens, hs head size, C = H * hs, V vocabulary.

Left out: other attention layouts (grouped-query, rotary, cross-attention), batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lmlab.viz.weights import encode_text, is_causal

__all__ = ["HeadVectors", "head_vectors", "value_weighted", "Ablation", "ablate_head", "inspectable"]


@dataclass
class _Layer:
    """Where one layer's attention projections live in a model."""

    qkv: tuple[nn.Module, ...]  # one fused projection (output q | k | v) or three (query, key, value)
    out: nn.Module  # the output projection; its input holds the heads side by side: (B, T, C)
    out_weight: Tensor  # the output projection as x @ W: (C, C)


def _layers(model: nn.Module) -> tuple[list[_Layer], int]:
    """The attention projections of every layer and the number of heads; TypeError for other models."""
    from lmlab.models.gpt import GPT
    from lmlab.models.masked import MaskedLM

    if isinstance(model, GPT):
        return [_Layer((b.attn.c_attn,), b.attn.c_proj, b.attn.c_proj.weight.T) for b in model.transformer.h], \
            model.config.n_head
    if isinstance(model, MaskedLM):
        return [_Layer((l.attn.query, l.attn.key, l.attn.value), l.attn.out, l.attn.out.weight.T)
                for l in model.layers], model.config.n_head
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", None)
    if kind == "gpt2":  # Conv1D layers store W as (in, out): y = x @ W + b
        return [_Layer((b.attn.c_attn,), b.attn.c_proj, b.attn.c_proj.weight) for b in model.transformer.h], \
            config.n_head
    if kind == "bert":
        return [_Layer((l.attention.self.query, l.attention.self.key, l.attention.self.value),
                       l.attention.output.dense, l.attention.output.dense.weight.T)
                for l in model.base_model.encoder.layer], config.num_attention_heads
    raise TypeError(f"looking inside the heads of {type(model).__name__} is not supported: use an lmlab GPT or "
                    "MaskedLM, or a GPT-2 or BERT style transformers model")


def inspectable(model: nn.Module) -> bool:
    """True if these tools can look inside ``model``'s heads (lmlab GPT / MaskedLM, GPT-2 or BERT style)."""
    try:
        _layers(model)
    except TypeError:
        return False
    return True


def _logits(model: nn.Module, idx: Tensor) -> Tensor:
    """Shape: idx (1, T) -> logits (1, T, V)"""
    if hasattr(model, "attention_maps"):  # lmlab: forward(idx) -> (logits, loss)
        return model(idx)[0]
    return model(input_ids=idx, attention_mask=torch.ones_like(idx)).logits


def _ids(model: nn.Module, tokenizer: Any, text: str) -> Tensor:
    ids = encode_text(tokenizer, text)
    if not ids:
        raise ValueError("the text gives no tokens; type at least one character")
    device = next(model.parameters()).device
    return torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)


@dataclass
class HeadVectors:
    """Every head's query, key and value vectors for one text.

    ``scores()`` gives q_i . k_j / sqrt(hs), the numbers the softmax turns into attention weights.

    Shape: q, k, v (L, H, T, hs)
    """

    q: Tensor
    k: Tensor
    v: Tensor

    def scores(self, layer: int, head: int) -> Tensor:
        """Shape: -> (T, T), before the mask and the softmax"""
        q, k = self.q[layer, head], self.k[layer, head]  # (T, hs) each
        return q @ k.T / math.sqrt(q.size(-1))  # (T, hs) x (hs, T) -> (T, T)


@torch.no_grad()
def head_vectors(model: nn.Module, tokenizer: Any, text: str) -> HeadVectors:
    """Run ``text`` through ``model`` once and keep every head's q, k and v vectors.

    Shape: -> HeadVectors with q, k, v (L, H, T, hs), float32 on the CPU

    Example:
        >>> vec = head_vectors(gpt, tok, "hello")
        >>> torch.softmax(vec.scores(0, 1).masked_fill(~causal, -inf), -1)  # == attention_weights(...)[1][0, 1]
    """
    layers, H = _layers(model)
    idx = _ids(model, tokenizer, text)
    found: list[list[Tensor]] = [[] for _ in layers]

    def keep(i: int):
        return lambda _module, _inputs, output: found[i].append(output.detach())

    hooks = [m.register_forward_hook(keep(i)) for i, layer in enumerate(layers) for m in layer.qkv]
    was_training = model.training
    model.eval()
    try:
        _logits(model, idx)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    per_layer = []
    for parts in found:
        qkv = torch.cat(parts, dim=-1)[0]  # (T, 3C): fused, or query | key | value side by side
        T, C = qkv.size(0), qkv.size(1) // 3
        per_layer.append(qkv.view(T, 3, H, C // H).permute(1, 2, 0, 3))  # (T, 3C) -> (3, H, T, hs)
    q, k, v = torch.stack(per_layer).float().cpu().unbind(1)  # (L, 3, H, T, hs) -> 3 x (L, H, T, hs)
    return HeadVectors(q=q, k=k, v=v)


@torch.no_grad()
def value_weighted(model: nn.Module, weights: Tensor, vectors: HeadVectors) -> Tensor:
    """Attention weighted by the size of what each key adds: a_ij * ||v_j W_O^h||, rows summing to 1.

    A head can attend strongly to a token whose value vector is tiny (a "no-op" such as the first
    token) and so add almost nothing; this view shrinks such weights (Kobayashi et al., 2020).

    Shape: weights (L, H, T, T) -> (L, H, T, T)
    """
    layers, H = _layers(model)
    L, _, T, hs = vectors.v.shape
    if weights.shape != (L, H, T, T):
        raise ValueError(f"weights {tuple(weights.shape)} and vectors ({L}, {H}, {T}, {hs}) come from different "
                         "texts or models")
    sizes = []
    for layer, v in zip(layers, vectors.v):  # v: (H, T, hs)
        w_o = layer.out_weight.detach().float().cpu().view(H, hs, -1)  # (C, C) -> (H, hs, C)
        sizes.append(torch.linalg.vector_norm(v @ w_o, dim=-1))  # (H, T, hs) x (H, hs, C) -> (H, T, C) -> (H, T)
    scaled = weights * torch.stack(sizes)[:, :, None, :]  # (L, H, T, T) * (L, H, 1, T)
    return scaled / scaled.sum(-1, keepdim=True).clamp_min(1e-12)


@dataclass
class Ablation:
    """What zeroing one head changes on one text.

    ``loss_before`` / ``loss_after``: mean cross-entropy of the text's tokens, next-token for a causal
    model, each token at its own (unmasked) position for a bidirectional one. ``top_before`` /
    ``top_after``: the five likeliest tokens at position ``query`` as (token, probability).
    """

    layer: int
    head: int
    query: int
    loss_before: float
    loss_after: float
    top_before: list[tuple[str, float]]
    top_after: list[tuple[str, float]]

    @property
    def loss_change(self) -> float:
        return self.loss_after - self.loss_before


def _loss(logits: Tensor, idx: Tensor, causal: bool) -> float:
    """Shape: logits (1, T, V), idx (1, T) -> mean cross-entropy"""
    if causal:
        if idx.size(1) < 2:
            return float("nan")
        return F.cross_entropy(logits[0, :-1], idx[0, 1:]).item()  # (T-1, V) vs (T-1,)
    return F.cross_entropy(logits[0], idx[0]).item()  # (T, V) vs (T,)


def _top(logits: Tensor, tokenizer: Any, k: int = 5) -> list[tuple[str, float]]:
    probs = torch.softmax(logits.float(), dim=-1)  # (V,)
    p, ids = probs.topk(min(k, probs.numel()))
    return [(tokenizer.decode([int(i)]), float(pi)) for pi, i in zip(p, ids)]


@torch.no_grad()
def ablate_head(model: nn.Module, tokenizer: Any, text: str, layer: int, head: int, query: int = -1) -> Ablation:
    """Zero the output of head ``head`` of layer ``layer`` and compare loss and predictions with the intact model.

    The head's slice of the output projection's input is set to 0 (a forward pre-hook), so the head
    adds nothing to the residual stream; every other head is unchanged. ``query`` (default: the last
    token) is where the top predictions are compared.

    Example:
        >>> ab = ablate_head(gpt, tok, "abcabc", layer=1, head=0)
        >>> ab.loss_change          # > 0: the model needed this head on this text
    """
    layers, H = _layers(model)
    if not 0 <= layer < len(layers):
        raise ValueError(f"layer must be in 0..{len(layers) - 1}, got {layer}")
    if not 0 <= head < H:
        raise ValueError(f"head must be in 0..{H - 1}, got {head}")
    idx = _ids(model, tokenizer, text)
    T = idx.size(1)
    query = T - 1 if query == -1 else query
    if not 0 <= query < T:
        raise ValueError(f"query must be in 0..{T - 1}, got {query}")
    causal = is_causal(model)

    def zero_head(_module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        x = inputs[0].clone()  # (B, T, C): the heads side by side
        hs = x.size(-1) // H
        x[..., head * hs:(head + 1) * hs] = 0.0
        return (x, *inputs[1:])

    was_training = model.training
    model.eval()
    try:
        before = _logits(model, idx)  # (1, T, V)
        hook = layers[layer].out.register_forward_pre_hook(zero_head)
        try:
            after = _logits(model, idx)  # (1, T, V)
        finally:
            hook.remove()
    finally:
        model.train(was_training)
    return Ablation(layer=layer, head=head, query=query, loss_before=_loss(before, idx, causal),
                    loss_after=_loss(after, idx, causal), top_before=_top(before[0, query], tokenizer),
                    top_after=_top(after[0, query], tokenizer))
