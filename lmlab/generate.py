"""Generating text from a language model: greedy decoding, sampling and beam search.

A language model gives logits for the next token; generation turns them into a token, appends it and
repeats. The ways to pick the token, each a few lines below:

- greedy (``do_sample=False``): the most likely token, ``argmax``;
- sampling (``do_sample=True``): draw from ``softmax(logits / temperature)``, optionally only among
  the ``top_k`` most likely tokens (``top_k_filter``) or the smallest set of most likely tokens whose
  probability reaches ``top_p`` (``top_p_filter``, "nucleus sampling", Holtzman et al., 2019);
- beam search (``num_beams > 1``): keep the ``num_beams`` most likely partial sequences, scored by
  their summed log-probability; a finished sequence's score is divided by its length**length_penalty.
  It follows Hugging Face transformers' ``generate(num_beams=..., do_sample=False)`` step for step
  (same candidates, same length penalty, same ``early_stopping`` rules), so both give the same tokens.

Models: anything with ``forward(idx) -> (logits, loss)``. Models with a KV cache (``GPT``, ``LSTMLM``:
``decode_step(idx, cache=None) -> (logits, cache)`` and ``reorder_cache(cache, index)``) run only the
newest token through the network at each step. A model whose config has a ``block_size`` sees at most
its last ``block_size`` tokens: once the sequence is longer, the context is cropped to the last
``block_size`` tokens and the cache is rebuilt from them at every step (positions restart at 0, just
as ``forward`` on the cropped context), so such steps cost a full forward pass, like nanoGPT's loop.

Letters: B batch, T prompt length, V vocab size, K beams (num_beams), N rows run through the model
(B, or B * K in beam search).

Left out: repetition penalties, min-p/typical sampling, stop strings, sampling inside beam search,
returning more than the best beam, and batches of prompts with different lengths (no padding: every
row of ``idx`` is a full prompt of length T).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["apply_temperature", "top_k_filter", "top_p_filter", "generate", "generate_text"]


# ----------------------------------------------------------------------------------------------------
# Logit filters: pure functions on the last dimension, shown one by one in the notebook.


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide the logits by ``temperature``: below 1 sharpens the distribution, above 1 flattens it.

    Shape: logits (..., V) -> (..., V)

    Example: apply_temperature(torch.tensor([2.0, 0.0]), 2.0) -> tensor([1., 0.])
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0, got {temperature}; for the most likely token (temperature -> 0) "
            "use greedy decoding: do_sample=False"
        )
    if temperature == float("inf"):
        raise ValueError("temperature must be finite, got inf; a large value (e.g. 100) samples almost uniformly")
    return logits / temperature


def _check_top_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"top_k must be a positive int (how many tokens to keep), got {k!r} ({type(k).__name__})")
    if k <= 0:
        raise ValueError(f"top_k must be >= 1, got {k}; use top_k=None to keep every token")


def _check_top_p(p: Any) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"top_p must be a number in (0, 1], got {p!r} ({type(p).__name__})")
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (a probability mass to keep), got {p}; "
                         "top_p=1.0 or None keeps every token")


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row and set the others to -inf.

    Tokens tied with the k-th largest logit are kept too (as transformers' ``TopKLogitsWarper`` does),
    so a row can keep more than ``k``. ``k`` larger than V keeps everything.

    Shape: logits (..., V) -> (..., V)

    Example: top_k_filter(torch.tensor([1.0, 3.0, 2.0, 0.0]), 2) -> tensor([-inf, 3., 2., -inf])
    """
    _check_top_k(k)
    k = min(k, logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))  # (..., V)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches ``p``.

    Sort the probabilities in ascending order and drop tokens from the unlikely end while the dropped
    mass stays <= 1 - p; the most likely token is always kept. This is transformers'
    ``TopPLogitsWarper`` rule, including how ties are broken (by the same ``torch.sort``).

    Shape: logits (..., V) -> (..., V)

    Example: probabilities [0.5, 0.3, 0.2] with p=0.7 keep [0.5, 0.3] (mass 0.8 >= 0.7);
    with p=0.4 they keep [0.5] only.
    """
    _check_top_p(p)
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=False)  # (..., V), ascending
    tail_mass = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (..., V) mass of this token and all less likely
    drop_sorted = tail_mass <= 1.0 - p  # (..., V)
    drop_sorted[..., -1] = False  # always keep the most likely token
    drop = drop_sorted.scatter(-1, sorted_idx, drop_sorted)  # back to vocabulary order, (..., V)
    return logits.masked_fill(drop, float("-inf"))  # (..., V)


# ----------------------------------------------------------------------------------------------------
# Running the model one step at a time.


def _model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer (None for a model without tensors)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return None


def _block_size(model: nn.Module) -> int | None:
    """The longest context the model accepts, from ``model.config.block_size`` (None: unlimited)."""
    return getattr(getattr(model, "config", None), "block_size", None)


class _NextTokenLogits:
    """Logits for the token after each row of a sequence that grows by one token per call.

    Keeps the model's KV cache between calls when the model has ``decode_step`` and ``use_cache``:
    the cache always holds the sequence minus its newest token, which is the only one run. When the
    cache is empty, or full (``block_size`` tokens), it is rebuilt from the last ``block_size`` tokens.
    Models without ``decode_step`` run ``forward`` on the (cropped) whole sequence at every call.
    """

    def __init__(self, model: nn.Module, use_cache: bool):
        self.model = model
        self.block_size = _block_size(model)
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


# ----------------------------------------------------------------------------------------------------
# generate


def _check_generate_args(
    model: nn.Module, idx: Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
    top_p: float | None, num_beams: int, do_sample: bool, eos_id: int | None,
    generator: torch.Generator | None, length_penalty: float, early_stopping: bool | str,
) -> None:
    """Raise TypeError/ValueError, saying what to do, for every argument generate cannot use."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module language model, got {type(model).__name__}")
    if not isinstance(idx, Tensor):
        raise TypeError(f"idx must be a torch.Tensor of token ids shaped (B, T), got {type(idx).__name__}; "
                        "use torch.tensor([ids], dtype=torch.long)")
    if idx.dim() != 2:
        hint = "add a batch dimension with idx[None]" if idx.dim() == 1 else "reshape it to (B, T)"
        raise ValueError(f"idx must be 2-D (B, T), got shape {tuple(idx.shape)}; {hint}")
    if idx.dtype != torch.long:
        raise TypeError(f"idx has dtype {str(idx.dtype).removeprefix('torch.')}; token ids must be torch.long, "
                        "e.g. idx.long()")
    if idx.size(0) == 0:
        raise ValueError("idx has batch size 0; pass at least one prompt")
    if idx.size(1) == 0:
        raise ValueError("the prompt is empty (T == 0): the model needs at least one token to condition on; "
                         "start from a BOS/end-of-text token or a newline, e.g. torch.tensor([[tok.encode('\\n')[0]]])")
    device = _model_device(model)
    if device is not None and idx.device != device:
        raise ValueError(f"idx is on {idx.device} but the model is on {device}; move it with idx.to('{device}')")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens must be an int, got {type(max_new_tokens).__name__}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if isinstance(num_beams, bool) or not isinstance(num_beams, int):
        raise TypeError(f"num_beams must be an int, got {type(num_beams).__name__}")
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1 (1 = no beam search), got {num_beams}")
    if top_k is not None:
        _check_top_k(top_k)
    if top_p is not None:
        _check_top_p(top_p)
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


def _pick_next(logits: Tensor, do_sample: bool, temperature: float, top_k: int | None, top_p: float | None,
               generator: torch.Generator | None) -> Tensor:
    """Choose one token per row: argmax (greedy) or a draw from the filtered distribution.

    Shape: logits (B, V) -> (B,)
    """
    if not do_sample:
        return logits.argmax(dim=-1)  # (B,)
    logits = apply_temperature(logits, temperature)  # same order as transformers: temperature, top-k, top-p
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = F.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)


def _greedy_or_sample(next_logits: _NextTokenLogits, idx: Tensor, max_new_tokens: int, eos_id: int | None,
                      pick: Any) -> Tensor:
    """One token per row per step; rows that produced ``eos_id`` are padded with it until all are done."""
    seq = idx  # (B, T)
    finished = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)  # (B,)
    for _ in range(max_new_tokens):
        next_id = pick(next_logits(seq))  # (B, V) -> (B,)
        if eos_id is not None:
            next_id = next_id.masked_fill(finished, eos_id)  # finished rows: padding
            finished |= next_id == eos_id
        seq = torch.cat([seq, next_id[:, None]], dim=1)  # (B, L + 1)
        if eos_id is not None and bool(finished.all()):
            break
    return seq


def _beam_search(next_logits: _NextTokenLogits, idx: Tensor, max_new_tokens: int, K: int, eos_id: int | None,
                 length_penalty: float, early_stopping: bool | str) -> Tensor:
    """Beam search with transformers' rules; returns the best finished sequence of each row.

    Each step, for every batch row: extend each of the K running beams by every token, score each
    candidate by its summed log-probability, and look at the 2K best (2K so that K remain even if K
    of them end in ``eos_id``). Candidates ranked in the top K that end (EOS, or the last step) join
    the row's finished hypotheses with score ``sum_logprob / generated_len**length_penalty``, which
    keep the K best; the K best candidates that do not end are the next running beams. A row is done
    once it has K finished hypotheses and (``early_stopping=True``) always, or (False) when the best
    running beam, scored at its current length, cannot beat the worst of them ("never": scored at
    the longest possible length when length_penalty > 0).

    Shape: idx (B, T) -> (B, T + n) with n <= max_new_tokens; shorter results padded with eos_id
    """
    B, T = idx.shape
    seq = idx.repeat_interleave(K, dim=0)  # (B*K, T): beam k of row b is row b*K + k
    # Only beam 0 is live at the start, or all K identical beams would pick the same tokens.
    beam_scores = torch.full((B, K), -1e9, device=idx.device)  # (B, K) summed log-probs
    beam_scores[:, 0] = 0.0
    finished: list[list[tuple[float, Tensor]]] = [[] for _ in range(B)]  # per row: (score, generated ids)
    done = [False] * B
    for step in range(max_new_tokens):
        gen_len = step + 1  # generated tokens, counting the one chosen now
        last_step = step == max_new_tokens - 1
        logprobs = F.log_softmax(next_logits(seq), dim=-1)  # (B*K, V)
        V = logprobs.size(-1)
        cand = (logprobs.view(B, K, V) + beam_scores[:, :, None]).view(B, K * V)  # (B, K*V)
        cand_scores, cand_flat = torch.topk(cand, 2 * K, dim=-1)  # (B, 2K), best first
        cand_beam, cand_tok = cand_flat // V, cand_flat % V  # (B, 2K) which beam, which token

        next_rows, next_toks, next_scores = [], [], []
        for b in range(B):
            keep: list[tuple[int, int, float]] = []
            for rank in range(2 * K):
                beam, tok, score = int(cand_beam[b, rank]), int(cand_tok[b, rank]), float(cand_scores[b, rank])
                if last_step or tok == eos_id:
                    full = len(finished[b]) == K
                    if rank < K and not done[b] and not (full and early_stopping is True):
                        ids = torch.cat([seq[b * K + beam, T:], torch.tensor([tok], device=seq.device)])
                        finished[b].append((score / gen_len**length_penalty, ids))
                        finished[b].sort(key=lambda h: h[0], reverse=True)
                        del finished[b][K:]
                elif len(keep) < K:
                    keep.append((beam, tok, score))
            if last_step:
                continue
            next_rows += [b * K + beam for beam, _, _ in keep]
            next_toks += [tok for _, tok, _ in keep]
            next_scores += [score for _, _, score in keep]
            # Can this row still improve? (transformers' early-stopping heuristic)
            if len(finished[b]) == K and not done[b]:
                if early_stopping is True:
                    done[b] = True
                else:
                    length = max_new_tokens if (early_stopping == "never" and length_penalty > 0) else gen_len
                    best_possible = keep[0][2] / length**length_penalty
                    done[b] = best_possible <= finished[b][-1][0]
        if last_step or all(done):
            break
        rows = torch.tensor(next_rows, device=seq.device)  # (B*K,)
        next_logits.reorder(rows)
        seq = torch.cat([seq[rows], torch.tensor(next_toks, device=seq.device)[:, None]], dim=1)  # (B*K, L + 1)
        beam_scores = torch.tensor(next_scores, device=seq.device).view(B, K)  # (B, K)

    best = [finished[b][0][1] for b in range(B)]  # B x (n_b,)
    n = max(len(ids) for ids in best)
    pad = eos_id if eos_id is not None else -1  # -1 cannot happen: without EOS every result has length n
    out = torch.full((B, T + n), pad, dtype=torch.long, device=idx.device)  # (B, T + n)
    out[:, :T] = idx
    for b, ids in enumerate(best):
        out[b, T:T + len(ids)] = ids
    return out


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
    if max_new_tokens == 0:
        return idx.clone()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            next_logits = _NextTokenLogits(model, use_cache)
            if num_beams > 1:
                return _beam_search(next_logits, idx, max_new_tokens, num_beams, eos_id, length_penalty,
                                    early_stopping)

            def pick(logits: Tensor) -> Tensor:
                return _pick_next(logits, do_sample, temperature, top_k, top_p, generator)

            return _greedy_or_sample(next_logits, idx, max_new_tokens, eos_id, pick)
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
    device = _model_device(model)
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    new = generate(model, idx, max_new_tokens, **kw)[0, len(ids):].tolist()
    eos_id = kw.get("eos_id")
    if eos_id is not None and eos_id in new:
        new = new[:new.index(eos_id)]
    return tokenizer.decode(ids + new)
