"""Exercises for notebook 05, "Self-attention": attention by hand, the causal mask, and splitting heads.

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
- q2 ``causal_mask(T) -> (T, T) bool``: True where query i may attend to key j, i.e. j <= i.
- q3 ``split_heads(x (B, T, C), n_head) -> (B, nh, T, hs)``: head h takes channels h*hs:(h+1)*hs.

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

__all__ = ["EXERCISES", "progress", "q1", "q2", "q3", "ref_attention", "ref_causal_mask", "ref_split_heads",
           "attention_variant", "attention_case"]

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
    """Reference for q2: lower-triangular True, (T, T)."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def ref_split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """Reference for q3: (B, T, C) -> (B, nh, T, hs)."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


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
# q2 causal_mask


def _check_causal_mask(fn: Any, timeout: float, cases: list[int]) -> None:
    for T in cases:
        shown = f"T={T}"
        got = call_safely(fn, T, timeout=timeout, show_input=shown)
        expected = ref_causal_mask(T)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype != torch.bool:
            if bool(((got != 0) == expected).all()):
                raise CheckFailed(f"The pattern is right but the dtype is {got.dtype}; the mask must be boolean "
                                  "(True = may attend): torch.ones(T, T, dtype=torch.bool).tril() or .bool().",
                                  input=shown, expected=expected, got=got)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == torch.bool:
            if torch.equal(got, expected):
                continue
            fail = CheckFailed.at(input=shown, expected=expected, got=got)
            if torch.equal(got, ~expected):
                raise fail("The mask is inverted: True marks the blocked (future) positions, which is "
                           "nn.MultiheadAttention's convention. In lmlab True = may attend: query i (row i) may see "
                           "keys j <= i, a lower-triangular mask (tril).")
            if torch.equal(got, expected.T):
                raise fail("The mask is upper-triangular (triu): row i is query i and it may see keys j <= i, "
                           "so the True values are on and below the diagonal: .tril().")
            if torch.equal(got, expected.tril(-1)):
                raise fail("The diagonal is False: a token may attend to itself (j = i). Use .tril() "
                           "(diagonal=0), not .tril(-1).")
        compare_tensors(expected, got, name="Your mask", show_input=shown, exact_dtype=True)


q2 = Exercise(
    name="q2",
    title="causal_mask(T)",
    points=1,
    prompt=(
        "Write `causal_mask(T)` that returns a (T, T) boolean tensor, True where query i (row) may attend to "
        "key j (column): j <= i, so a token sees itself and the past but not the future."
    ),
    checker=_check_causal_mask,
    cases=[4, 6, 1],
    hidden=lambda rng: [rng.randint(2, 12) for _ in range(2)],
    forbidden=("lmlab.attention.causal_mask",),
    hints=[
        "Draw it for T = 3: row 0 has one True, row 1 two, row 2 three. Which triangle is that?",
        "torch.tril keeps the lower triangle, including the diagonal. Start from a (T, T) tensor of True.",
        "return torch.ones(T, T, dtype=torch.bool).tril()",
    ],
    solution_code='''\
import torch

def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril()   # row i: True for keys 0..i
''',
    explanation=(
        "A language model predicts token t + 1 from tokens 0..t, so during training query t must not see the "
        "keys after it; otherwise it could read the answer. Row i of the mask is query i, column j key j, and "
        "j <= i is the lower triangle with its diagonal. Boolean with True = may attend is lmlab's convention "
        "(and F.scaled_dot_product_attention's); nn.MultiheadAttention wants the inverse, ~mask."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 split_heads


_Q3_CASES = [(2, 3, 8, 2), (1, 5, 12, 3), (2, 4, 6, 6), (3, 2, 8, 1)]  # (B, T, C, nh)


def _q3_hidden(rng: random.Random) -> list[tuple[int, int, int, int]]:
    cases = []
    for _ in range(2):
        nh = rng.randint(2, 4)
        cases.append((rng.randint(1, 3), rng.randint(2, 5), nh * rng.randint(1, 4), nh))
    return cases


def _check_split_heads(fn: Any, timeout: float, cases: list[tuple[int, int, int, int]]) -> None:
    for B, T, C, nh in cases:
        hs = C // nh
        x = torch.arange(B * T * C, dtype=torch.float32).view(B, T, C)  # readable values: channel + C * (t + T * b)
        shown = f"x = torch.arange({B * T * C}.).view({B}, {T}, {C}), n_head={nh} (head size {hs})"
        got = call_safely(fn, x.clone(), nh, timeout=timeout, show_input=shown)
        expected = ref_split_heads(x, nh)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and _close(expected, got):
            continue
        fail = CheckFailed.at(input=shown, expected=f"shape {tuple(expected.shape)}", got=got)
        with diagnosing():
            if got.shape == (B, T, nh, hs):
                raise fail("The shape is (B, T, nh, hs): after the view, move the heads next to the batch with "
                           ".transpose(1, 2) to get (B, nh, T, hs).")
            if got.shape == expected.shape and nh > 1 and T > 1 and _close(x.view(B, nh, T, hs), got):
                raise fail("A view straight to (B, nh, T, hs) has the right shape but cuts the memory in the wrong "
                           "place: 'head 0' then holds all channels of the first tokens. View as (B, T, nh, hs) "
                           "first (split each token's channels), then transpose(1, 2).")
            if got.shape == expected.shape and nh > 1 and _close(x.view(B, T, hs, nh).permute(0, 3, 1, 2), got):
                raise fail("The heads take interleaved channels (view(B, T, hs, nh)): head h must take the "
                           "contiguous channels h*hs:(h+1)*hs, i.e. view(B, T, nh, hs).")
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your result", show_input=shown)


q3 = Exercise(
    name="q3",
    title="split_heads(x, n_head)",
    points=1,
    prompt=(
        "Write `split_heads(x, n_head)` that turns x of shape (B, T, C) into (B, nh, T, hs) with hs = C // nh: "
        "head h gets channels h*hs to (h+1)*hs - 1 of every token, and the heads sit next to the batch dim so "
        "that attention treats them as separate batches."
    ),
    checker=_check_split_heads,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    hints=[
        "Two steps: first split each token's C channels into nh groups of hs, then reorder the dimensions.",
        "x.view(B, T, n_head, C // n_head) has shape (B, T, nh, hs). Which two dims must swap?",
        "return x.view(B, T, n_head, C // n_head).transpose(1, 2)",
    ],
    solution_code='''\
def split_heads(x, n_head):
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)   # (B, T, nh, hs) -> (B, nh, T, hs)
''',
    explanation=(
        "In memory x is laid out token after token, each token's C channels contiguous. view(B, T, nh, hs) "
        "splits every token's channels into nh contiguous groups without moving data, and transpose(1, 2) then "
        "makes the head the second dim. A direct view(B, nh, T, hs) has the right shape but reads the flat "
        "memory in the wrong order, so one 'head' would hold all the channels of the first few tokens. The "
        "inverse (merging heads) is y.transpose(1, 2).reshape(B, T, C): reshape, because after a transpose the "
        "tensor is no longer contiguous and view would fail."
    ),
)

EXERCISES = ExerciseSet("nb05", "05 · Self-attention", [q1, q2, q3])
progress = EXERCISES.progress
