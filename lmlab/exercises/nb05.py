"""Exercises for notebook 05, "Self-attention": attention by hand, a sliding-window mask, splitting a fused qkv.

In the notebook::

    from lmlab.exercises import nb05 as ex

    def attention(q, k, v, mask=None): ...
    ex.q1.check(attention)      # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (checked on several inputs against the small references below, written
with plain torch; B batch, T time, C channels, nh heads, hs head size C // nh):

- q1 ``attention(q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v), mask=None)
  -> (out (..., T_q, d_v), weights (..., T_q, T_k))``: softmax(q k^T / sqrt(d_k)) v, with a boolean
  mask where True = may attend (the convention of ``lmlab.attention``).
- q2 ``sliding_window_mask(T, window) -> (T, T) bool``: True where query i may attend to key j, i.e.
  i - window < j <= i (local causal attention; window >= T gives the causal mask).
- q3 ``split_qkv(qkv (B, T, 3C), n_head) -> (q, k, v)`` each (B, nh, T, hs): the fused projection's output,
  [all of q | all of k | all of v], split into heads with one view and one permute.

Tolerances: rtol 1e-4, atol 1e-5 (float32).
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from lmlab.exercises.core import (
    CheckFailed,
    Exercise,
    ExerciseSet,
    call_safely,
    compare_tensors,
    diagnosing,
    tensors_close,
)
from lmlab.exercises.describe import type_name

__all__ = ["EXERCISES", "progress", "q1", "q2", "q3", "ref_attention", "ref_causal_mask", "ref_sliding_window_mask",
           "ref_split_qkv", "attention_variant", "attention_case"]

RTOL, ATOL = 1e-4, 1e-5

# ----------------------------------------------------------------------------------------------------
# References


def attention_variant(q, k, v, mask=None, *, scale="sqrt", softmax_dim=-1, invert_mask=False,
                      transpose_scores=False):
    """Attention with switches for the typical mistakes (the reference is the default)."""
    scores = q @ k.transpose(-2, -1)  # (..., T_q, T_k)
    if transpose_scores:
        if q.size(-2) != k.size(-2):
            raise ValueError("transposed scores have another shape when T_q != T_k: not this mistake")
        scores = scores.transpose(-2, -1)  # k q^T: key i scored against query j
    d_k = q.size(-1)
    scores = scores / {"sqrt": math.sqrt(d_k), "none": 1.0, "d_k": float(d_k)}[scale]
    if mask is not None:
        scores = scores.masked_fill(mask if invert_mask else ~mask, float("-inf"))
    weights = torch.softmax(scores, dim=softmax_dim)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def ref_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None):
    """Reference for q1: the same numbers as ``lmlab.attention.scaled_dot_product_attention``."""
    return attention_variant(q, k, v, mask)


def ref_causal_mask(T: int) -> torch.Tensor:
    """The causal mask: lower-triangular True, (T, T) (q2 with window >= T)."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def _close(a: torch.Tensor, b: Any) -> bool:
    return tensors_close(a, b, rtol=RTOL, atol=ATOL)


def _type_of(value: Any) -> str:
    return "None" if value is None else type_name(value)


# ----------------------------------------------------------------------------------------------------
# q1 attention


def attention_case(shape_q: tuple[int, ...], T_k: int, d_v: int, mask_kind: str | None, seed: int,
                   scale: float = 1.5) -> tuple[tuple[Any, ...], str]:
    """Random q (shape_q), k and v with T_k keys, a mask (None, "causal" or "padding"); and how to show them."""
    g = torch.Generator().manual_seed(seed)
    *lead, T_q, d_k = shape_q
    q = torch.randn(*shape_q, generator=g) * scale
    k = torch.randn(*lead, T_k, d_k, generator=g) * scale
    v = torch.randn(*lead, T_k, d_v, generator=g)
    if mask_kind is None:
        mask, what = None, "no mask"
    elif mask_kind == "causal":
        mask, what = ref_causal_mask(T_q), "causal mask (T, T)"
    else:  # padding: the last 2 keys of row 1 are padding; shape (B, 1, T_k)
        mask = torch.ones(lead[0], 1, T_k, dtype=torch.bool)
        mask[1, 0, -2:] = False
        what = f"padding mask of shape {tuple(mask.shape)}, the last 2 keys of row 1 masked"
    size = "" if scale == 1.5 else f", values scaled by {scale:g}"
    shown = f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} (random, seed {seed}{size}), {what}"
    return (q, k, v, mask), shown


_Q1_CASES = [  # (q shape, T_k, d_v, mask, seed[, scale])
    ((3, 4), 3, 4, None, 0),  # no batch dims, square scores
    ((2, 5, 8), 5, 8, None, 1),
    ((2, 3, 6), 7, 5, None, 2),  # 3 queries over 7 keys, d_v != d_k
    ((2, 2, 5, 4), 5, 4, "causal", 3),  # batch and heads
    ((2, 4, 8), 6, 3, "padding", 4),
    ((2, 4, 8), 4, 3, "causal", 5, 30.0),  # large scores (about 1000): exp() alone overflows
]


def _q1_hidden(rng: random.Random) -> list[tuple[Any, ...]]:
    B, T_q, T_k, d = rng.randint(2, 3), rng.randint(1, 6), rng.randint(2, 8), rng.randint(2, 9)
    T = rng.randint(2, 6)
    return [((B, T_q, d), T_k, rng.randint(1, 6), None, rng.randrange(2**31)),
            ((B, 2, T, d), T, d, "causal", rng.randrange(2**31), 40.0),
            ((B, T_q, d), T_k + 2, d, "padding", rng.randrange(2**31))]


def _check_attention(fn: Any, timeout: float, cases: list[tuple[Any, ...]]) -> None:
    for case in cases:
        (q, k, v, mask), shown = attention_case(*case)
        args = [q.clone(), k.clone(), v.clone()] + ([] if mask is None else [mask.clone()])
        got = call_safely(fn, *args, timeout=timeout, show_input=shown)
        out_exp, w_exp = ref_attention(q, k, v, mask)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            extra = " Did you forget a `return` statement?" if got is None else ""
            raise CheckFailed(f"`attention` should return a tuple (out, weights) of two tensors, shaped "
                              f"{tuple(out_exp.shape)} and {tuple(w_exp.shape)}, but it returned {_type_of(got)}."
                              f"{extra}", input=shown)
        out_got, w_got = got
        if _close(out_exp, out_got) and _close(w_exp, w_got):
            continue
        with diagnosing():
            _diagnose_attention((q, k, v, mask), out_got, w_got, CheckFailed.at(input=shown, expected=w_exp, got=w_got))
        compare_tensors(w_exp, w_got, rtol=RTOL, atol=ATOL, name="Your weights", show_input=shown)
        compare_tensors(out_exp, out_got, rtol=RTOL, atol=ATOL, name="Your out", show_input=shown)


_TYPICAL = [
    (dict(scale="none"), "The scores are not scaled: divide q @ k^T by sqrt(d_k), with d_k = q.size(-1). "
     "Without it the scores grow with d_k and the softmax saturates."),
    (dict(scale="d_k"), "The scores are divided by d_k; the scale is 1 / sqrt(d_k) "
     "(math.sqrt(q.size(-1))), which keeps the scores at variance 1."),
    (dict(softmax_dim=-2), "The softmax runs over the queries (dim -2), so the columns sum to 1. Each "
     "query's row must be a distribution over the keys: torch.softmax(scores, dim=-1)."),
    (dict(transpose_scores=True), "The scores are transposed (k @ q^T instead of q @ k^T): row i must "
     "score query i against every key, scores = q @ k.transpose(-2, -1)."),
]


def _diagnose_attention(inputs: tuple[Any, ...], out_got: Any, w_got: Any, fail: Any) -> None:
    q, k, v, mask = inputs
    out_exp, w_exp = ref_attention(q, k, v, mask)
    if _close(w_exp, out_got) and _close(out_exp, w_got):
        raise fail("out and weights are swapped: return (out, weights), in that order.")
    if not (isinstance(w_got, torch.Tensor) and w_got.shape == w_exp.shape and w_got.is_floating_point()):
        return
    if bool(torch.isnan(w_got).any()) and not bool(torch.isnan(w_exp).any()) and bool((q.abs() > 10).any()):
        raise fail("Your weights contain NaN where the scores are large: exp() of a large score overflows to "
                   "inf, and inf / inf is NaN. Subtract each row's maximum before exp(), or use torch.softmax.")
    for kwargs, msg in _TYPICAL:
        if _close(attention_variant(q, k, v, mask, **kwargs)[1], w_got):
            raise fail(msg)
    if mask is not None:
        w_inv = attention_variant(q, k, v, mask, invert_mask=True)[1]
        if bool((torch.isnan(w_inv) | torch.isclose(w_inv, w_got, rtol=RTOL, atol=ATOL)).all()):
            raise fail("The mask is inverted. In lmlab True means 'may attend', so the positions to block "
                       "are ~mask: scores.masked_fill(~mask, float('-inf')). (nn.MultiheadAttention uses "
                       "the opposite convention.)")
        if bool((w_got[~mask.expand_as(w_got)] != 0).any()):
            raise fail("Some masked-out positions get a nonzero weight. Set their scores to -inf before "
                       "the softmax: scores.masked_fill(~mask, float('-inf')).")
    sums = w_got.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise fail("The rows of weights do not sum to 1: apply the softmax over the last dim (the keys).")


q1 = Exercise(
    name="q1",
    title="attention(q, k, v, mask=None)",
    points=2,
    prompt=(
        "Write `attention(q, k, v, mask=None)` that returns (out, weights) with weights = softmax(q k^T / "
        "sqrt(d_k)) over the keys and out = weights @ v. q is (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, "
        "d_v), with any leading batch/head dims. mask, if given, is boolean and broadcasts to (..., T_q, T_k); "
        "True = may attend: blocked positions get weight 0."
    ),
    checker=_check_attention,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    forbidden=("lmlab.attention.scaled_dot_product_attention",),
    hints=[
        "Scores first: q @ k.transpose(-2, -1) has shape (..., T_q, T_k); transpose the last two dims of k only, "
        "so batch and head dims stay in place. Divide by math.sqrt(q.size(-1)).",
        "Blocked positions must get probability 0: set their scores to -inf before the softmax. With True = may "
        "attend, the blocked ones are ~mask: scores.masked_fill(~mask, float('-inf')).",
        "weights = torch.softmax(scores, dim=-1) (each query's row over the keys); return weights @ v, weights",
    ],
    solution_code='''\
import math
import torch

def attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))   # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))      # True = may attend
    weights = torch.softmax(scores, dim=-1)                    # each row sums to 1
    return weights @ v, weights                                # (..., T_q, d_v), (..., T_q, T_k)
''',
    explanation=(
        "Row i of q @ k^T holds the dot products of query i with every key: how well they match. Dividing by "
        "sqrt(d_k) keeps these scores at variance about 1 whatever the head size, so the softmax does not "
        "saturate into a one-hot row. The softmax over the last dim turns each row into a distribution over the "
        "keys, and weights @ v averages the values with it. A mask sets the scores of blocked pairs to -inf, "
        "whose exponential is exactly 0, so the other weights of the row still sum to 1. transpose(-2, -1) "
        "(not .T or transpose(0, 1)) leaves the batch and head dimensions alone."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 sliding_window_mask


def ref_sliding_window_mask(T: int, window: int) -> torch.Tensor:
    """Reference for q2: True where i - window < j <= i, (T, T). Example: T=3, window=2 ->
    [[T, F, F], [T, T, F], [F, T, T]]."""
    i = torch.arange(T)[:, None]  # (T, 1) queries
    j = torch.arange(T)[None, :]  # (1, T) keys
    return (j <= i) & (j > i - window)


def _check_sliding_window(fn: Any, timeout: float, cases: list[tuple[int, int]]) -> None:
    for T, w in cases:
        shown = f"T={T}, window={w}"
        got = call_safely(fn, T, w, timeout=timeout, show_input=shown)
        expected = ref_sliding_window_mask(T, w)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == torch.bool:
            if torch.equal(got, expected):
                continue
            with diagnosing():
                _diagnose_window(got, T, w, CheckFailed.at(input=shown, expected=expected, got=got))
        elif isinstance(got, torch.Tensor) and got.shape == expected.shape and bool(((got != 0) == expected).all()):
            raise CheckFailed(f"The pattern is right but the dtype is {got.dtype}; the mask must be boolean "
                              "(True = may attend): compare with <, <=, or call .bool().",
                              input=shown, expected=expected, got=got)
        compare_tensors(expected, got, name="Your mask", show_input=shown, exact_dtype=True)


def _diagnose_window(got: torch.Tensor, T: int, w: int, fail: Any) -> None:
    expected = ref_sliding_window_mask(T, w)
    if torch.equal(got, ~expected):
        raise fail("Your mask is inverted: it is True at the blocked positions, which is nn.MultiheadAttention's "
                   "convention. In lmlab True = may attend.")
    if torch.equal(got, expected.T):
        raise fail("Your mask is upper-triangular: its True values lie on and above the diagonal, so query i "
                   "(row i) would see keys j >= i, the future. A causal mask is lower-triangular: key j is allowed "
                   "when i - window < j <= i.")
    if w < T and torch.equal(got, ref_causal_mask(T)):
        raise fail(f"Your mask is the plain causal mask: every query sees all earlier keys. With window={w} "
                   f"query i sees only the {w} keys i - {w - 1}, ..., i (itself included).")
    for other, what in ((w + 1, "one key too many"), (w - 1, "one key too few")):
        if other >= 1 and torch.equal(got, ref_sliding_window_mask(T, other)):
            raise fail(f"Your mask lets each query see {other} keys instead of window={w} ({what}): query i sees "
                       f"keys i - window < j <= i, which is window keys counting itself.")
    if torch.equal(got, expected & ~torch.eye(T, dtype=torch.bool)):
        raise fail("Your mask blocks the diagonal: a token may attend to itself (j = i).")


q2 = Exercise(
    name="q2",
    title="sliding_window_mask(T, window)",
    points=1,
    prompt=(
        "Sliding-window (local) attention, as in Longformer and Mistral: each token sees only the last `window` "
        "tokens, itself included. Write `sliding_window_mask(T, window)` that returns a (T, T) boolean tensor, "
        "True where query i (row) may attend to key j (column): i - window < j <= i. With window >= T it is the "
        "causal mask."
    ),
    checker=_check_sliding_window,
    cases=[(4, 2), (6, 3), (5, 1), (5, 5), (3, 10), (1, 1)],
    hidden=lambda rng: [(T, rng.randint(1, T + 2)) for T in (rng.randint(3, 12), rng.randint(3, 12))],
    forbidden=("lmlab.attention.causal_mask",),
    hints=[
        "Draw it for T = 5, window = 2: row i has True at columns i - 1 and i (only column 0 in row 0). It is a "
        "band along the diagonal, below it.",
        "Compare index grids: i = torch.arange(T)[:, None] (queries, a column) and j = torch.arange(T)[None, :] "
        "(keys, a row) broadcast to (T, T).",
        "return (j <= i) & (j > i - window)",
    ],
    solution_code='''\
import torch

def sliding_window_mask(T, window):
    i = torch.arange(T)[:, None]           # (T, 1): the query of each row
    j = torch.arange(T)[None, :]           # (1, T): the key of each column
    return (j <= i) & (j > i - window)     # causal, and at most window - 1 steps back
''',
    explanation=(
        "Broadcasting a column of query positions against a row of key positions gives every (i, j) pair at "
        "once; the two comparisons keep the past (j <= i) and cut it at window keys (j > i - window). Each row "
        "then has at most `window` True values, so the cost of attention grows as T * window instead of T^2. "
        "Information from further back still arrives, one window per layer: after L layers a token can draw on "
        "about L * window earlier tokens. The equivalent with triangles is "
        "torch.ones(T, T, dtype=torch.bool).tril() & ~torch.ones(T, T, dtype=torch.bool).tril(-window)."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 split_qkv


def ref_split_qkv(qkv: torch.Tensor, n_head: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference for q3: (B, T, 3C) -> q, k, v each (B, nh, T, hs), qkv = [all of q | all of k | all of v]."""
    B, T, C3 = qkv.shape
    hs = C3 // 3 // n_head
    q, k, v = qkv.view(B, T, 3, n_head, hs).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
    return q, k, v


_Q3_CASES = [(2, 3, 8, 2), (1, 5, 12, 3), (2, 4, 6, 6), (3, 2, 8, 1)]  # (B, T, C, nh)


def _q3_hidden(rng: random.Random) -> list[tuple[int, int, int, int]]:
    cases = []
    for _ in range(2):
        nh = rng.randint(2, 4)
        cases.append((rng.randint(1, 3), rng.randint(2, 5), nh * rng.randint(1, 4), nh))
    return cases


def _qkv_case(B: int, T: int, C: int) -> torch.Tensor:
    return torch.arange(B * T * 3 * C, dtype=torch.float32).view(B, T, 3 * C)  # readable: value = its flat index


def _check_split_qkv(fn: Any, timeout: float, cases: list[tuple[int, int, int, int]]) -> None:
    for B, T, C, nh in cases:
        qkv = _qkv_case(B, T, C)
        shown = f"qkv = torch.arange({B * T * 3 * C}.).view({B}, {T}, {3 * C}) (C={C}), n_head={nh}"
        got = call_safely(fn, qkv.clone(), nh, timeout=timeout, show_input=shown)
        expected = ref_split_qkv(qkv, nh)
        if not (isinstance(got, (tuple, list)) and len(got) == 3):
            extra = " Did you forget a `return` statement?" if got is None else ""
            raise CheckFailed(f"`split_qkv` should return a tuple (q, k, v) of three tensors of shape "
                              f"{tuple(expected[0].shape)}, but it returned {_type_of(got)}.{extra}", input=shown)
        if all(_close(e, g) for e, g in zip(expected, got)):
            continue
        with diagnosing():
            _diagnose_split_qkv(qkv, nh, got, CheckFailed.at(input=shown, expected=f"shape {tuple(expected[0].shape)}",
                                                             got=got[0]))
        for name, e, g in zip("qkv", expected, got):
            compare_tensors(e, g, rtol=RTOL, atol=ATOL, name=f"Your {name}", show_input=shown)


def _diagnose_split_qkv(qkv: torch.Tensor, nh: int, got: Any, fail: Any) -> None:
    B, T, C3 = qkv.shape
    C, hs = C3 // 3, C3 // 3 // nh
    q, k, v = ref_split_qkv(qkv, nh)
    shapes = [tuple(g.shape) if isinstance(g, torch.Tensor) else None for g in got]
    if shapes == [(B, T, nh, hs)] * 3:
        raise fail("Your q, k, v have shape (B, T, nh, hs): the heads must sit next to the batch dim, "
                   "(B, nh, T, hs), so that attention treats them as separate batches. Permute the dims.")
    if shapes == [(B, T, C)] * 3:
        raise fail("Your q, k, v are still (B, T, C): split each into n_head heads of size hs = C // n_head, "
                   "shape (B, nh, T, hs).")
    if shapes != [tuple(q.shape)] * 3:
        return
    for name, perm in (("k, q, v", (k, q, v)), ("v, k, q", (v, k, q)), ("q, v, k", (q, v, k))):
        if all(_close(e, g) for e, g in zip(perm, got)):
            raise fail(f"The three tensors come back in the order {name}; return (q, k, v): the first C channels "
                       "of qkv are q, the next C are k, the last C are v.")
    per_head = qkv.view(B, T, nh, 3, hs).permute(3, 0, 2, 1, 4)  # the per-head interleaved layout
    if all(_close(e, g) for e, g in zip(per_head, got)):
        raise fail("Your split reads qkv as (B, T, nh, 3, hs), per head q, k, v side by side. Here qkv holds all "
                   "of q, then all of k, then all of v (what nn.Linear(C, 3 * C) followed by .split(C) means), "
                   "so view it as (B, T, 3, nh, hs).")
    if nh > 1 and T > 1 and _close(qkv.view(B, T, 3, nh, hs).permute(2, 0, 1, 3, 4).reshape(3, B, nh, T, hs)[0],
                                   got[0]):
        raise fail("The shape is right but the numbers are not: reshaping (B, T, nh, hs) straight to "
                   "(B, nh, T, hs) cuts the memory in the wrong place. Use permute (or transpose) to move the dims.")


q3 = Exercise(
    name="q3",
    title="split_qkv(qkv, n_head)",
    points=2,
    prompt=(
        "The fused projection x @ W_qkv.T gives one tensor qkv of shape (B, T, 3C): channels 0..C-1 are q, "
        "C..2C-1 are k, 2C..3C-1 are v. Write `split_qkv(qkv, n_head)` that returns (q, k, v), each of shape "
        "(B, nh, T, hs) with hs = C // n_head, head h holding channels h*hs to (h+1)*hs - 1 of q (of k, of v). "
        "Try to do it with one view and one permute, without splitting qkv first."
    ),
    checker=_check_split_qkv,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    hints=[
        "Name the dimensions the 3C channels hold, from the slowest to the fastest: which of q/k/v (3), which head "
        "(nh), which channel of the head (hs). So view qkv as (B, T, 3, nh, hs).",
        "You want (3, B, nh, T, hs): permute moves every dim at once. Dim 2 (q/k/v) goes first, then B (0), then "
        "the heads (3), then T (1), then hs (4).",
        "B, T, C3 = qkv.shape; hs = C3 // 3 // n_head; "
        "q, k, v = qkv.view(B, T, 3, n_head, hs).permute(2, 0, 3, 1, 4); return q, k, v",
    ],
    solution_code='''\
def split_qkv(qkv, n_head):
    B, T, C3 = qkv.shape
    hs = C3 // 3 // n_head
    qkv = qkv.view(B, T, 3, n_head, hs)          # channels: which of q/k/v, which head, which channel
    q, k, v = qkv.permute(2, 0, 3, 1, 4)         # (3, B, nh, T, hs); iterating unpacks dim 0
    return q, k, v
''',
    explanation=(
        "A view only relabels memory, so the new dims must follow the order in which the channels are laid out: "
        "the 3C channels of a token are [q | k | v], each of them [head 0 | head 1 | ...], each head hs channels, "
        "hence (B, T, 3, nh, hs). permute then reorders all five dims in one call, which transpose (two at a "
        "time) would need several calls for; the result is not contiguous, which attention does not mind. "
        "Unpacking a tensor iterates over its first dim, giving q, k and v. Some codebases (Megatron) store qkv "
        "per head instead, (B, T, nh, 3, hs): the same code with another view, so read how the weights were "
        "laid out before splitting."
    ),
)

EXERCISES = ExerciseSet("nb05", "05 · Self-attention", [q1, q2, q3])
progress = EXERCISES.progress
