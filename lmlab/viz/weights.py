"""Attention weights from any model the course uses, as one plain tensor, and attention rollout.

``attention_weights(model, tokenizer, text)`` hides three kinds of model behind one function:

- an lmlab ``GPT`` (causal) or ``MaskedLM`` (bidirectional): ``model.attention_maps(idx)``;
- a Hugging Face model that returns attentions (``GPT2LMHeadModel``, ``BertForMaskedLM``, ...), called
  with ``output_attentions=True``; it must be built or loaded with ``attn_implementation="eager"``.

and two kinds of tokenizer: lmlab's (``encode`` / ``decode``) and Hugging Face's (callable, adds its
special tokens such as [CLS] and [SEP]).

Letters: L layers, H heads per layer, T tokens, P prompt tokens, N generated tokens.

Left out: batches (one text at a time), cross-attention of encoder-decoder models, gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "attention_weights", "attention_rollout", "token_strings", "GenerationTrace", "generation_attention",
    "is_causal", "context_limit", "encode_text", "generation_room",
]


# ---------------------------------------------------------------------------------------------------
# What kind of model / tokenizer is this?
# ---------------------------------------------------------------------------------------------------


def _is_hf_model(model: Any) -> bool:
    return type(model).__module__.startswith("transformers.") and hasattr(model, "config")


def _is_hf_tokenizer(tokenizer: Any) -> bool:
    return callable(tokenizer) and hasattr(tokenizer, "convert_ids_to_tokens")


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module (an lmlab GPT or MaskedLM, or a Hugging Face model), "
                        f"got {type(model).__name__}")
    if not (hasattr(model, "attention_maps") or _is_hf_model(model)):
        raise TypeError(f"{type(model).__name__} gives no attention weights: use an lmlab GPT or MaskedLM "
                        "(they have attention_maps) or a Hugging Face transformers model")


def is_causal(model: nn.Module) -> bool:
    """True if each token sees only earlier tokens (GPT-style), so the model can generate text."""
    _check_model(model)
    if _is_hf_model(model):
        return bool(model.can_generate()) or bool(getattr(model.config, "is_decoder", False))
    from lmlab.models.masked import MaskedLM

    return not isinstance(model, MaskedLM)


def context_limit(model: nn.Module) -> int | None:
    """The longest sequence the model takes (its position table), or None if unknown."""
    _check_model(model)
    config = model.config
    for name in ("block_size", "n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def generation_room(model: nn.Module, n_tokens: int, max_tokens: int | None = None) -> int:
    """How many tokens can still be added to a text of ``n_tokens`` (the context size and ``max_tokens``
    are the limits); 0 when the text fills the context."""
    limits = [x for x in (context_limit(model), max_tokens) if x is not None]
    return max(0, min(limits) - n_tokens) if limits else 10**9


# ---------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text``: lmlab tokenizers' ``encode``, or a Hugging Face tokenizer with its special tokens."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if _is_hf_tokenizer(tokenizer):
        return [int(i) for i in tokenizer(text)["input_ids"]]  # with the model's special tokens
    if not hasattr(tokenizer, "encode") or not hasattr(tokenizer, "decode"):
        raise TypeError(f"tokenizer must have encode(str) and decode(ids) (CharTokenizer, BPETokenizer) or be a "
                        f"Hugging Face tokenizer, got {type(tokenizer).__name__}")
    return [int(i) for i in tokenizer.encode(text)]


def token_strings(tokenizer: Any, ids: list[int]) -> list[str]:
    """The text of each token on its own, for labels.

    A byte-level BPE token can hold part of a UTF-8 character; decoded alone it would be "\\ufffd".
    Such tokens are shown as their bytes instead, e.g. ``\\xe2\\x82`` (lmlab's BPETokenizer), or as the
    tokenizer's own token string, e.g. "âĤ" (a Hugging Face byte-level tokenizer).

    Example: CharTokenizer of "hello", ids [1, 2, 2] -> ["h", "l", "l"]
    """
    out = []
    vocab = None if _is_hf_tokenizer(tokenizer) else getattr(tokenizer, "vocab", None)  # BPETokenizer: {id: bytes}
    for i in ids:
        piece = tokenizer.decode([int(i)])
        if "\ufffd" in piece and isinstance(vocab, dict) and isinstance(vocab.get(int(i)), bytes):
            piece = "".join(f"\\x{b:02x}" for b in vocab[int(i)])
        elif "\ufffd" in piece and _is_hf_tokenizer(tokenizer):
            piece = str(tokenizer.convert_ids_to_tokens(int(i)))
        out.append(piece)
    return out


# ---------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def _weights_for_ids(model: nn.Module, ids: list[int]) -> Tensor:
    """(L, H, T, T) float32 on the CPU for one sequence of token ids."""
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    was_training = model.training
    model.eval()  # no dropout on the weights we show
    try:
        if _is_hf_model(model):
            out = model(input_ids=idx, attention_mask=torch.ones_like(idx), output_attentions=True)
            maps = getattr(out, "attentions", None)
            n_layer = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
            if not maps or any(m is None for m in maps) or (n_layer is not None and len(maps) != n_layer):
                raise ValueError(
                    f"{type(model).__name__} returned no attention weights; its attention implementation is "
                    f"{getattr(model.config, '_attn_implementation', '?')!r}. Build or load it with "
                    "attn_implementation='eager' (e.g. from_pretrained(path, attn_implementation='eager'))"
                )
            w = torch.stack([m[0] for m in maps])  # L x (1, H, T, T) -> (L, H, T, T)
        else:
            w = model.attention_maps(idx)[:, 0]  # (L, 1, H, T, T) -> (L, H, T, T)
    finally:
        model.train(was_training)
    return w.detach().float().cpu()


def _check_length(n: int, max_tokens: int | None, model: nn.Module) -> None:
    if n == 0:
        raise ValueError("the text gives no tokens; type at least one character")
    limit = context_limit(model)
    if max_tokens is not None and n > max_tokens:
        raise ValueError(f"the text is {n} tokens long, more than max_tokens={max_tokens}; "
                         f"shorten it to at most {max_tokens} tokens or raise max_tokens")
    if limit is not None and n > limit:
        raise ValueError(f"the text is {n} tokens long but {type(model).__name__} takes at most {limit} tokens "
                         f"(its context size); shorten the text")


def attention_weights(model: nn.Module, tokenizer: Any, text: str, *,
                      max_tokens: int | None = None) -> tuple[list[str], Tensor]:
    """Tokenize ``text`` with the model's tokenizer and return every layer's and head's attention.

    ``weights[l, h, i, j]`` is how much token i (the query, a row) attends to token j (a key, a
    column) in head h of layer l. Each row sums to 1; a causal model gives 0 above the diagonal.

    Raises ValueError if the text is empty, longer than ``max_tokens`` or longer than the model's
    context, or if a Hugging Face model returns no attentions (use ``attn_implementation="eager"``).

    Shape: -> tokens (T strings), weights (L, H, T, T) float32 on the CPU

    Example:
        >>> tokens, w = attention_weights(gpt, CharTokenizer.from_text("hello"), "hello")
        >>> tokens, w.shape      # a GPT with 2 layers of 4 heads
        (['h', 'e', 'l', 'l', 'o'], torch.Size([2, 4, 5, 5]))
    """
    _check_model(model)
    ids = encode_text(tokenizer, text)
    _check_length(len(ids), max_tokens, model)
    return token_strings(tokenizer, ids), _weights_for_ids(model, ids)


def attention_rollout(weights: Tensor, *, add_residual: bool = True) -> Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token draws on each input token.

    Per layer: average the heads, add the identity for the residual connection, renormalize rows
    (so A = (W_mean + I) / 2), then multiply through the layers: R = A_{L-1} @ ... @ A_1 @ A_0.
    Row i of R spreads token i's top-layer representation over the input tokens; rows sum to 1.
    It ignores the MLPs and the values' sizes: a rough picture, not an exact attribution.

    Shape: weights (L, H, T, T) -> (T, T)

    Example (L=2, H=1, T=2):
        W_0 = [[1, 0], [.5, .5]] -> A_0 = [[1, 0], [.25, .75]]
        W_1 = [[1, 0], [.2, .8]] -> A_1 = [[1, 0], [.1, .9]]
        R = A_1 @ A_0 = [[1, 0], [.325, .675]]
    """
    if not isinstance(weights, Tensor):
        raise TypeError(f"weights must be a tensor (L, H, T, T), got {type(weights).__name__}")
    if weights.dim() != 4 or weights.size(-1) != weights.size(-2):
        raise ValueError(f"weights must have shape (L, H, T, T), got {tuple(weights.shape)}")
    T = weights.size(-1)
    eye = torch.eye(T, dtype=weights.dtype, device=weights.device)  # (T, T)
    rollout = eye
    for layer in weights:  # (H, T, T)
        a = layer.mean(dim=0)  # (H, T, T) -> (T, T)
        if add_residual:
            a = a + eye
        a = a / a.sum(dim=-1, keepdim=True)  # rows sum to 1 again
        rollout = a @ rollout  # (T, T) x (T, T) -> (T, T)
    return rollout


# ---------------------------------------------------------------------------------------------------
# Attention during generation
# ---------------------------------------------------------------------------------------------------


@dataclass
class GenerationTrace:
    """A greedy continuation and the attention that produced each new token.

    ``tokens`` holds the prompt's P tokens and then the N generated ones; ``weights`` (L, H, P+N, P+N)
    is the attention over the whole sequence. In a causal model row q is exactly what position q
    attended to when it was the newest position, so the new token of step s (1..N), at position
    P+s-1, was chosen from row ``query_of(s) = P+s-2``, over keys 0..P+s-2.
    """

    tokens: list[str]
    weights: Tensor
    prompt_len: int

    @property
    def steps(self) -> int:
        return len(self.tokens) - self.prompt_len

    def query_of(self, step: int) -> int:
        """Position whose attention chose the token of ``step`` (1-based)."""
        if not 1 <= step <= self.steps:
            raise ValueError(f"step must be in 1..{self.steps}, got {step}")
        return self.prompt_len + step - 2

    def step_weights(self, step: int) -> Tensor:
        """Shape: -> (L, H, P+step-1): attention over the context when the token of ``step`` was chosen."""
        q = self.query_of(step)
        return self.weights[:, :, q, : q + 1]


@torch.no_grad()
def generation_attention(model: nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int, *,
                         max_tokens: int | None = None) -> GenerationTrace:
    """Continue ``prompt`` greedily by ``max_new_tokens`` tokens and keep the attention of every step.

    lmlab models generate with ``lmlab.generate.generate(do_sample=False)``; Hugging Face models with a
    plain greedy loop. One forward pass over the result then gives all steps' attention (a causal
    model's row q does not depend on later tokens). Fewer tokens are generated if the model's context
    (or ``max_tokens``) would overflow.

    Shape: -> GenerationTrace with weights (L, H, P+N, P+N)
    """
    _check_model(model)
    if not is_causal(model):
        raise ValueError(f"{type(model).__name__} is bidirectional (every token sees every other), so it does not "
                         "generate left to right; use a causal model such as lmlab's GPT")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    ids = encode_text(tokenizer, prompt)
    _check_length(len(ids), max_tokens, model)
    n_new = min(max_new_tokens, generation_room(model, len(ids), max_tokens))
    if n_new < 1:
        raise ValueError(f"the prompt ({len(ids)} tokens) fills the model's context; shorten it to generate")
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, P)
    was_training = model.training
    model.eval()
    try:
        if _is_hf_model(model):
            for _ in range(n_new):
                logits = model(input_ids=idx).logits  # (1, T, V)
                idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)  # (1, T + 1)
        else:
            from lmlab.generate import generate

            idx = generate(model, idx, n_new, do_sample=False)  # (1, P + N)
    finally:
        model.train(was_training)
    all_ids = [int(i) for i in idx[0].tolist()]
    return GenerationTrace(tokens=token_strings(tokenizer, all_ids), weights=_weights_for_ids(model, all_ids),
                           prompt_len=len(ids))
