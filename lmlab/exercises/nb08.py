"""Exercises for notebook 08, "Looking inside attention": attention rollout, and an induction score.

In the notebook::

    from lmlab.exercises import nb08 as ex

    def attention_rollout(maps): ...
    ex.q1.check(attention_rollout)   # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                     # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()                 # a worked solution with an explanation
    ex.progress()                    # which exercises passed so far

The functions the learner writes (checked on several inputs against the references below; L layers,
H heads, T tokens, S segment length):

- q1 ``attention_rollout(maps (L, H, T, T)) -> (T, T)``: attention rollout (Abnar & Zuidema, 2020): per
  layer the heads' mean plus the identity (the residual connection), rows renormalized, multiplied
  through the layers, ``R = A_{L-1} @ ... @ A_0``. The same numbers as ``lmlab.viz.attention_rollout``.
- q2 ``induction_score(attn (..., T, T), seg_len) -> (...)``: for a segment of ``seg_len`` tokens written
  twice (T = 2 S), the mean attention from each query i of the second copy (i = S .. 2S-1) to the
  position after the previous occurrence of its token, i - S + 1.

Tolerances: rtol 1e-4, atol 1e-5 (float32).
"""

from __future__ import annotations

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

__all__ = ["q1", "q2", "EXERCISES", "progress", "ref_attention_rollout", "ref_induction_score", "rollout_variant",
           "score_variant", "random_maps"]

RTOL, ATOL = 1e-4, 1e-5

# ----------------------------------------------------------------------------------------------------
# References


def rollout_variant(maps: torch.Tensor, *, residual: bool = True, renorm: bool = True, heads: str = "mean",
                    order: str = "left") -> torch.Tensor:
    """Rollout of (L, H, T, T) maps; the keyword arguments make the typical mistakes, for diagnosis."""
    T = maps.size(-1)
    eye = torch.eye(T, dtype=maps.dtype)
    R = eye
    for layer in maps:  # (H, T, T)
        A = layer.mean(0) if heads == "mean" else layer.sum(0)  # (T, T)
        if residual:
            A = A + eye
        if renorm:
            A = A / A.sum(-1, keepdim=True)
        R = A @ R if order == "left" else R @ A  # (T, T)
    return R


def ref_attention_rollout(maps: torch.Tensor) -> torch.Tensor:
    """Reference for q1 (the same as lmlab.viz.attention_rollout)."""
    return rollout_variant(maps)


def score_variant(attn: torch.Tensor, seg_len: int, *, offset: int = 1, first: int | None = None,
                  reduce: str = "mean", transpose: bool = False) -> torch.Tensor:
    """Induction score; the keyword arguments make the typical mistakes, for diagnosis."""
    if transpose:
        attn = attn.transpose(-1, -2)
    lo = seg_len if first is None else first
    q = torch.arange(lo, 2 * seg_len)  # queries
    keys = q - seg_len + offset
    ok = keys >= 0
    vals = attn[..., q[ok], keys[ok]]  # (..., n)
    return vals.mean(-1) if reduce == "mean" else vals.sum(-1)


def ref_induction_score(attn: torch.Tensor, seg_len: int) -> torch.Tensor:
    """Reference for q2: mean of attn[..., i, i - S + 1] over i = S .. 2S-1."""
    return score_variant(attn, seg_len)


def random_maps(shape: tuple[int, ...], seed: int, causal: bool = True) -> torch.Tensor:
    """Random attention maps: rows are probability distributions (over keys <= query if causal)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(*shape, generator=g) * 2
    if causal:
        T = shape[-1]
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1)


# ----------------------------------------------------------------------------------------------------
# q1 attention_rollout

_Q1_CASES = [((2, 3, 5, 5), 0, True), ((1, 2, 4, 4), 1, True), ((3, 2, 6, 6), 2, False), ((4, 1, 3, 3), 3, True)]


def _q1_hidden(rng: random.Random) -> list[tuple[tuple[int, int, int, int], int, bool]]:
    return [((rng.randint(1, 4), rng.randint(1, 4), T, T), rng.randrange(2**31), causal)
            for T, causal in ((rng.randint(2, 8), True), (rng.randint(2, 8), False))]


def _check_rollout(fn: Any, timeout: float, cases: list[tuple[tuple[int, int, int, int], int, bool]]) -> None:
    for shape, seed, causal in cases:
        maps = random_maps(shape, seed, causal)
        L, H, T, _ = shape
        shown = f"maps: random {'causal ' if causal else ''}attention, shape (L={L}, H={H}, T={T}, T={T})"
        got = call_safely(fn, maps.clone(), timeout=timeout, show_input=shown)
        expected = ref_attention_rollout(maps)
        if tensors_close(got, expected, rtol=RTOL, atol=ATOL):
            continue
        with diagnosing():
            _diagnose_rollout(got, maps, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your rollout", show_input=shown)


def _diagnose_rollout(got: Any, maps: torch.Tensor, fail: Any) -> None:
    L, H = maps.shape[:2]

    def close(y: torch.Tensor) -> bool:
        return tensors_close(got, y, rtol=RTOL, atol=ATOL)

    if close(rollout_variant(maps, residual=False)):
        raise fail("The identity for the residual connection is missing: each layer's output is its input "
                   "PLUS the attention output, so use A = mean_h(W) + I (then renormalize the rows).")
    if close(rollout_variant(maps, renorm=False)):
        raise fail("The rows are not renormalized after adding the identity: each row of mean_h(W) + I "
                   "sums to 2; divide by A.sum(-1, keepdim=True) so that rows are distributions again.")
    if L > 1 and close(rollout_variant(maps, order="right")):
        raise fail("The layers are multiplied in the wrong order: the later layer acts on the result of "
                   "the earlier one, R = A_l @ R (new layer on the left), not R @ A_l.")
    if H > 1 and close(rollout_variant(maps, heads="sum")):
        raise fail("The heads are summed: average them (layer.mean(0)), so that the heads' matrix still "
                   "has rows summing to 1 and weighs as much as the identity.")
    if L > 1 and close(rollout_variant(maps[-1:])):
        raise fail("Only the last layer is used: multiply the matrices of ALL layers, from layer 0 up.")


q1 = Exercise(
    name="q1",
    title="attention_rollout(maps)",
    points=2,
    prompt=(
        "Write `attention_rollout(maps)` for attention maps of shape (L, H, T, T) (layer, head, query, key; "
        "rows sum to 1) that returns the (T, T) attention rollout: for each layer from 0 up, average the heads, "
        "add the identity matrix (the residual connection), renormalize each row to sum to 1, and multiply it "
        "onto the product so far: R = A_{L-1} @ ... @ A_1 @ A_0."
    ),
    checker=_check_rollout,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    forbidden=("lmlab.viz.attention_rollout",),
    hints=[
        "Start from R = torch.eye(T) and loop over the layers: for layer in maps (each (H, T, T)).",
        "A = layer.mean(0) + torch.eye(T); A = A / A.sum(-1, keepdim=True). The new layer goes on the left.",
        "R = A @ R inside the loop; return R after it.",
    ],
    solution_code='''\
def attention_rollout(maps):
    T = maps.size(-1)
    R = torch.eye(T)
    for layer in maps:                          # (H, T, T), from layer 0 up
        A = layer.mean(0) + torch.eye(T)        # heads averaged, plus the residual
        A = A / A.sum(-1, keepdim=True)         # rows are distributions again
        R = A @ R                               # the later layer mixes what the earlier ones made
    return R
''',
    explanation=(
        "Row i of a layer's attention says how position i mixes the positions below it. Through the residual "
        "connection a position also keeps its own vector, which the identity models (half and half after "
        "renormalizing). Composing the layers multiplies these mixing matrices, later layers on the left, so "
        "row i of R spreads the top layer's position i over the input tokens. Rollout ignores the MLPs and how "
        "large the value vectors are: a rough map, not an exact attribution."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 induction_score

_Q2_CASES = [((8, 8), 4, 0), ((2, 3, 16, 16), 8, 1), ((4, 12, 12), 6, 2), ((32, 32), 16, 3)]


def _q2_hidden(rng: random.Random) -> list[tuple[tuple[int, ...], int, int]]:
    S = rng.randint(2, 10)
    return [((2 * S, 2 * S), S, rng.randrange(2**31)), ((rng.randint(1, 3), rng.randint(1, 4), 2 * S, 2 * S), S,
                                                        rng.randrange(2**31))]


def _check_induction(fn: Any, timeout: float, cases: list[tuple[tuple[int, ...], int, int]]) -> None:
    for shape, S, seed in cases:
        attn = random_maps(shape, seed)
        shown = f"attn: random causal attention of shape {shape}, seg_len={S}"
        got = call_safely(fn, attn.clone(), S, timeout=timeout, show_input=shown)
        expected = ref_induction_score(attn, S)
        if isinstance(got, (int, float)) and not isinstance(got, bool) and expected.dim() == 0:
            got = torch.tensor(float(got))
        if tensors_close(got, expected, rtol=RTOL, atol=ATOL):
            continue
        with diagnosing():
            _diagnose_induction(got, attn, S, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your score", show_input=shown)


def _diagnose_induction(got: Any, attn: torch.Tensor, S: int, fail: Any) -> None:
    def close(y: torch.Tensor) -> bool:
        return tensors_close(got, y, rtol=RTOL, atol=ATOL)

    if close(score_variant(attn, S, offset=0)):
        raise fail("Off by one: this is the attention on the previous occurrence of the same token "
                   "(position i - seg_len, a 'duplicate-token' head). An induction head looks at the token "
                   "AFTER it, position i - seg_len + 1, because that is the token that comes next.")
    if close(score_variant(attn, S, first=1)) or close(score_variant(attn, S, first=0)):
        raise fail("Queries of the first copy are included. Only the second copy (i = seg_len .. "
                   "2*seg_len - 1) has a previous occurrence to look back to.")
    if close(score_variant(attn, S, reduce="sum")):
        raise fail("This is the sum over the seg_len queries; the score is their mean (between 0 and 1).")
    if close(score_variant(attn, S, transpose=True)):
        raise fail("Rows and columns are swapped: attn[..., i, j] is how much query i (row) attends to key "
                   "j (column), so index attn[..., i, i - seg_len + 1].")


q2 = Exercise(
    name="q2",
    title="induction_score(attn, seg_len)",
    points=1,
    prompt=(
        "Write `induction_score(attn, seg_len)`. `attn` holds attention maps of shape (..., T, T) (query rows, "
        "key columns) on a sequence made of a segment of seg_len tokens written twice, T = 2 * seg_len. Return, "
        "with shape (...), the mean over the queries of the second copy, i = seg_len .. 2*seg_len - 1, of the "
        "attention on position i - seg_len + 1 (the token after the previous occurrence of token i)."
    ),
    checker=_check_induction,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "For one head (a T x T matrix) this is the mean of attn[i, i - seg_len + 1] for i from seg_len to "
        "2 * seg_len - 1: seg_len numbers on a diagonal below the main one.",
        "Index all of them at once with two index tensors: q = torch.arange(seg_len, 2 * seg_len) and "
        "q - seg_len + 1; attn[..., q, keys] keeps the leading dimensions.",
        "q = torch.arange(seg_len, 2 * seg_len); return attn[..., q, q - seg_len + 1].mean(-1)",
    ],
    solution_code='''\
def induction_score(attn, seg_len):
    q = torch.arange(seg_len, 2 * seg_len)            # queries of the second copy
    return attn[..., q, q - seg_len + 1].mean(-1)     # (..., seg_len) -> (...)
''',
    explanation=(
        "In the second copy token i equals token i - seg_len, and the token that follows it next is at "
        "i - seg_len + 1. A head that puts its weight there can copy that token's identity into position i, "
        "which is exactly what predicting token i + 1 needs. The entries form the diagonal seg_len - 1 places "
        "below the main one, restricted to the second half; averaging them gives 1 for a perfect induction head "
        "and about 1/(i + 1) per query for uniform causal attention."
    ),
)

EXERCISES = ExerciseSet("nb08", "08 · Looking inside attention", [q1, q2])
progress = EXERCISES.progress
