"""Generating text from a language model: greedy decoding, sampling and beam search.

A language model gives logits for the next token; generation turns them into a token, appends it and
repeats. The ways to pick the token:

- greedy (``do_sample=False``): the most likely token, ``argmax``;
- sampling (``do_sample=True``): draw from ``softmax(logits / temperature)``, optionally only among
  the ``top_k`` most likely tokens (``top_k_filter``) or the smallest set of most likely tokens whose
  probability reaches ``top_p`` (``top_p_filter``, "nucleus sampling", Holtzman et al., 2019);
- beam search (``num_beams > 1``): keep the ``num_beams`` most likely partial sequences, scored by
  their summed log-probability; a finished sequence's score is divided by its length**length_penalty.
  It follows Hugging Face transformers' ``generate(num_beams=..., do_sample=False)`` step for step
  (same candidates, same length penalty, same ``early_stopping`` rules), so both give the same tokens.

Where to read: the filters and the sampling loop in ``lmlab.sampling``, beam search in
``lmlab.beam_search``, running the model one token at a time (KV cache, cropping) in ``lmlab.decoding``.
``generate`` below checks its arguments and picks one of them.

Models: anything with ``forward(idx) -> (logits, loss)``; models with a KV cache (``GPT``, ``LSTMLM``) run
only the newest token through the network at each step, and contexts longer than the model's
``block_size`` are cropped (``lmlab.decoding`` says how). On a GPU a small batch is bound by kernel launches
(a 124M GPT launches a few hundred kernels per token): ``compile=True`` runs a GPT's steps on a static cache
and replays each one as a CUDA graph (``lmlab.decoding.StaticNextTokenLogits``); the tokens are the same.

Letters: B batch, T prompt length, V vocab size.

Left out: repetition penalties, min-p/typical sampling, stop strings, sampling inside beam search,
returning more than the best beam, and batches of prompts with different lengths (no padding: every
row of ``idx`` is a full prompt of length T).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from lmlab.beam_search import beam_search
from lmlab.checks import check_idx
from lmlab.decoding import NextTokenLogits, StaticNextTokenLogits, model_device
from lmlab.sampling import (
    apply_temperature,
    check_top_k,
    check_top_p,
    greedy_or_sample,
    pick_next,
    top_k_filter,
    top_p_filter,
)

__all__ = ["apply_temperature", "top_k_filter", "top_p_filter", "generate", "generate_text"]


def generate(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_beams: int = 1,
    do_sample: bool = True,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    use_cache: bool = True,
    static_cache: bool = False,
    compile: bool = False,
) -> Tensor:
    """Continue each prompt in ``idx`` by up to ``max_new_tokens`` tokens.

    Args:
        model: a language model, ``forward(idx) -> (logits, loss)``; its KV cache is used when it has
            ``decode_step`` / ``reorder_cache`` and ``use_cache`` is True.
        idx: the prompts, (B, T) int64 token ids on the model's device, T >= 1.
        max_new_tokens: how many tokens to add at most.
        temperature, top_k, top_p: shape the sampling distribution (``apply_temperature``,
            ``top_k_filter``, ``top_p_filter``, applied in that order); ignored by greedy decoding and
            beam search.
        num_beams: > 1 runs beam search, which is deterministic: ``do_sample`` is then ignored.
        do_sample: draw tokens (True) or take the most likely one (False, greedy).
        eos_id: end-of-sequence token: a row that produces it is finished and padded with ``eos_id``;
            generation stops early once every row is finished.
        generator: a seeded ``torch.Generator`` on idx's device makes sampling reproducible.
        length_penalty, early_stopping: beam search only, with transformers' meaning and defaults.
        use_cache: use the model's KV cache (same tokens, less compute); False reruns the whole
            (cropped) context each step.
        static_cache: a GPT's ``StaticKVCache`` (allocated once, same shapes at every step) instead of the growing
            one; greedy decoding and sampling only. Slower on a CPU (attention reads all block_size slots).
        compile: static cache, and the one-token step compiled with ``torch.compile(mode="reduce-overhead")``:
            CUDA graphs on a GPU, worth it there when generating many tokens for a small batch. The first call
            compiles (tens of seconds); later calls for the same model reuse the step and the cache. Same tokens
            as without (greedy), up to floating-point rounding.

    Contexts longer than the model's ``block_size`` are cropped to the last ``block_size`` tokens
    (the cache is then rebuilt each step). The model runs in eval mode under ``torch.no_grad()``; its
    training flag is restored afterwards.

    Shape: idx (B, T) -> (B, T + n), n <= max_new_tokens (n < max_new_tokens only with eos_id)

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> out = generate(model, torch.tensor([[0]]), 20, top_k=10, generator=g)   # (1, 21)
        >>> out = generate(model, torch.tensor([[0]]), 20, do_sample=False)         # greedy
        >>> out = generate(model, torch.tensor([[0]]), 20, num_beams=4, eos_id=0)   # beam search
    """
    _check_generate_args(model, idx, max_new_tokens, temperature, top_k, top_p, num_beams, do_sample, eos_id,
                         generator, length_penalty, early_stopping)
    _check_static(model, num_beams, use_cache, static_cache or compile)
    if max_new_tokens == 0:
        return idx.clone()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if static_cache or compile:
                next_logits = StaticNextTokenLogits(model, compile)
            else:
                next_logits = NextTokenLogits(model, use_cache)
            if num_beams > 1:
                return beam_search(next_logits, idx, max_new_tokens, num_beams, eos_id, length_penalty,
                                   early_stopping)

            def pick(logits: Tensor) -> Tensor:
                return pick_next(logits, do_sample, temperature, top_k, top_p, generator)

            return greedy_or_sample(next_logits, idx, max_new_tokens, eos_id, pick)
    finally:
        model.train(was_training)


def generate_text(model: nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int, **kw: Any) -> str:
    """Encode ``prompt``, ``generate`` a continuation, and decode prompt and continuation together.

    ``tokenizer`` needs ``encode(str) -> list[int]`` and ``decode(list[int]) -> str`` (``CharTokenizer``,
    ``BPETokenizer``). Keyword arguments go to ``generate``. With ``eos_id``, the text stops before the
    first generated EOS token.

    Example:
        >>> generate_text(model, tok, "ROMEO:", 100, top_k=10, generator=torch.Generator().manual_seed(0))
        'ROMEO:\\nWhat ...'
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}; for token ids call generate()")
    ids = list(tokenizer.encode(prompt))
    if not ids:
        raise ValueError("the prompt encodes to no tokens; give at least one character, e.g. prompt='\\n'")
    device = model_device(model)
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    new = generate(model, idx, max_new_tokens, **kw)[0, len(ids):].tolist()
    eos_id = kw.get("eos_id")
    if eos_id is not None and eos_id in new:
        new = new[:new.index(eos_id)]
    return tokenizer.decode(ids + new)


def _check_generate_args(
    model: nn.Module, idx: Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
    top_p: float | None, num_beams: int, do_sample: bool, eos_id: int | None,
    generator: torch.Generator | None, length_penalty: float, early_stopping: bool | str,
) -> None:
    """Raise TypeError/ValueError, saying what to do, for every argument generate cannot use."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module language model, got {type(model).__name__}")
    check_idx(idx, device=model_device(model), dtypes=(torch.long,))  # (B, T) token ids on the model's device
    if idx.size(0) == 0:
        raise ValueError("idx has batch size 0; pass at least one prompt")
    if idx.size(1) == 0:
        raise ValueError("the prompt is empty (T == 0): the model needs at least one token to condition on; "
                         "start from a BOS/end-of-text token or a newline, e.g. torch.tensor([[tok.encode('\\n')[0]]])")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens must be an int, got {type(max_new_tokens).__name__}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if isinstance(num_beams, bool) or not isinstance(num_beams, int):
        raise TypeError(f"num_beams must be an int, got {type(num_beams).__name__}")
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1 (1 = no beam search), got {num_beams}")
    if top_k is not None:
        check_top_k(top_k)
    if top_p is not None:
        check_top_p(top_p)
    if do_sample and num_beams == 1:
        apply_temperature(torch.zeros(1), temperature)  # raises for temperature <= 0, with the hint
    if eos_id is not None:
        if isinstance(eos_id, bool) or not isinstance(eos_id, int):
            raise TypeError(f"eos_id must be an int token id or None, got {eos_id!r}")
        if eos_id < 0:
            raise ValueError(f"eos_id must be a token id >= 0, got {eos_id}")
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
        if isinstance(vocab_size, int) and eos_id >= vocab_size:
            raise ValueError(f"eos_id={eos_id} is not a token of this model (vocab_size={vocab_size}), so it would "
                             "never be generated; use the tokenizer's end-of-text id")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if do_sample and num_beams == 1 and generator.device.type != idx.device.type:
            raise ValueError(f"the generator is on {generator.device} but idx is on {idx.device}; "
                             f"create it with torch.Generator(device='{idx.device}')")
    if not isinstance(length_penalty, (int, float)) or isinstance(length_penalty, bool):
        raise TypeError(f"length_penalty must be a number, got {type(length_penalty).__name__}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")


def _check_static(model: nn.Module, num_beams: int, use_cache: bool, static: bool) -> None:
    """Raise ValueError when ``static_cache``/``compile`` cannot be used with this model or these settings."""
    if not static:
        return
    if not hasattr(model, "decode_static"):
        raise ValueError(f"static_cache and compile need a model with a static KV cache (lmlab's GPT); "
                         f"{type(model).__name__} has none: leave them False")
    if num_beams > 1:
        raise ValueError("static_cache and compile work with greedy decoding and sampling, not beam search "
                         "(num_beams > 1): leave them False for beam search")
    if not use_cache:
        raise ValueError("use_cache=False asks for no KV cache but static_cache/compile use one; choose one of them")
