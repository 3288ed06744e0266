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
- q3 ``duplicate_token_score(attn (..., T, T), ids (T,)) -> (...)``: the score of a *duplicate-token*
  head (a variant of the notebook's prefix-matching score): for each query whose token occurred before,
  the total weight on the earlier keys holding the same token; the mean over those queries.

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

__all__ = ["q1", "q2", "q3", "EXERCISES", "progress", "ref_attention_rollout", "ref_induction_score",
           "ref_duplicate_token_score", "rollout_variant", "score_variant", "duplicate_variant", "random_maps"]

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


def duplicate_variant(attn: torch.Tensor, ids: torch.Tensor, *, include_self: bool = False, prefix: bool = False,
                      all_queries: bool = False, reduce: str = "mean", transpose: bool = False) -> torch.Tensor:
    """Duplicate-token score; the keyword arguments make the typical mistakes, for diagnosis."""
    if transpose:
        attn = attn.transpose(-1, -2)
    T = ids.numel()
    pos = torch.arange(T)
    same = ids[None, :] == ids[:, None]  # [i, j]: token j equals token i
    earlier = pos[None, :] < pos[:, None]  # [i, j]: j < i
    queries = (same & earlier).any(-1) if not all_queries else torch.ones(T, dtype=torch.bool)  # (T,)
    if prefix:  # the induction (prefix-matching) score instead: token j - 1 equals token i
        same = torch.zeros_like(same)
        same[:, 1:] = ids[None, :-1] == ids[:, None]
    match = same & (pos[None, :] <= pos[:, None] if include_self else earlier)  # (T, T)
    per_query = (attn * match).sum(-1)[..., queries]  # (..., n)
    return per_query.mean(-1) if reduce == "mean" else per_query.sum(-1)


def ref_duplicate_token_score(attn: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Reference for q3: weight on earlier keys with the query's token, averaged over queries that have one."""
    return duplicate_variant(attn, ids)


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

# ----------------------------------------------------------------------------------------------------
# q3 duplicate_token_score (a variant: not shown in the notebook)

_Q3_CASES = [((6, 6), 3, 0), ((2, 10, 10), 4, 1), ((2, 2, 12, 12), 5, 2), ((16, 16), 6, 3)]


def _q3_hidden(rng: random.Random) -> list[tuple[tuple[int, ...], int, int]]:
    T = rng.randint(4, 14)
    return [((T, T), rng.randint(2, 5), rng.randrange(2**31)),
            ((rng.randint(1, 3), rng.randint(1, 4), T, T), rng.randint(2, 5), rng.randrange(2**31))]


def _ids(T: int, vocab: int, seed: int) -> torch.Tensor:
    """Token ids with repeats (a small vocabulary); position 1 repeats position 0, so some query qualifies."""
    ids = torch.randint(0, vocab, (T,), generator=torch.Generator().manual_seed(seed + 7))
    ids[1] = ids[0]
    return ids


def _check_duplicate(fn: Any, timeout: float, cases: list[tuple[tuple[int, ...], int, int]]) -> None:
    for shape, vocab, seed in cases:
        attn, ids = random_maps(shape, seed), _ids(shape[-1], vocab, seed)
        shown = f"attn: random causal attention of shape {shape}, ids={ids.tolist()}"
        got = call_safely(fn, attn.clone(), ids.clone(), timeout=timeout, show_input=shown)
        expected = ref_duplicate_token_score(attn, ids)
        if isinstance(got, (int, float)) and not isinstance(got, bool) and expected.dim() == 0:
            got = torch.tensor(float(got))
        if tensors_close(got, expected, rtol=RTOL, atol=ATOL):
            continue
        with diagnosing():
            _diagnose_duplicate(got, attn, ids, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your score", show_input=shown)


def _diagnose_duplicate(got: Any, attn: torch.Tensor, ids: torch.Tensor, fail: Any) -> None:
    def close(y: torch.Tensor) -> bool:
        return tensors_close(got, y, rtol=RTOL, atol=ATOL)

    if close(duplicate_variant(attn, ids, include_self=True)):
        raise fail("The query's own position is counted: a token always equals itself, so keep only EARLIER "
                   "keys, j < i (a head that looks at itself is not finding a duplicate).")
    if close(duplicate_variant(attn, ids, prefix=True)):
        raise fail("This is the induction (prefix-matching) score: keys whose PREVIOUS token equals the query's. "
                   "A duplicate-token head looks at the earlier copies of the query's token itself: ids[j] == ids[i].")
    if close(duplicate_variant(attn, ids, all_queries=True)):
        raise fail("Every query is averaged, also those whose token never occurred before (they score 0 whatever "
                   "the head does). Average only over the queries that have an earlier copy.")
    if close(duplicate_variant(attn, ids, reduce="sum")):
        raise fail("This is the sum over the qualifying queries; the score is their mean (between 0 and 1).")
    if close(duplicate_variant(attn, ids, transpose=True)):
        raise fail("Rows and columns are swapped: attn[..., i, j] is how much query i (row) attends to key j "
                   "(column).")


q3 = Exercise(
    name="q3",
    title="duplicate_token_score(attn, ids)",
    points=2,
    prompt=(
        "Write `duplicate_token_score(attn, ids)`. `attn` holds causal attention maps of shape (..., T, T) "
        "(query rows, key columns) on a sequence of token ids `ids` of shape (T,). A duplicate-token head "
        "(Wang et al., 2022) looks from a token back to its earlier copies. For every query i whose token "
        "occurred before (some j < i with ids[j] == ids[i]), take the total weight on those earlier keys; return "
        "the mean over these queries, with shape (...)."
    ),
    checker=_check_duplicate,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    hints=[
        "Build a (T, T) boolean matrix match[i, j] = (ids[j] == ids[i]) and (j < i): broadcasting "
        "ids[None, :] == ids[:, None] gives the first part, torch.ones(T, T).tril(-1) the second.",
        "(attn * match).sum(-1) is each query's weight on its earlier copies, shape (..., T). The queries that "
        "count are those with at least one match: match.any(-1).",
        "per_query = (attn * match).sum(-1); return per_query[..., match.any(-1)].mean(-1)",
    ],
    solution_code='''\
def duplicate_token_score(attn, ids):
    T = ids.numel()
    earlier = torch.ones(T, T, dtype=torch.bool).tril(-1)       # [i, j]: j < i
    match = (ids[None, :] == ids[:, None]) & earlier           # earlier copies of token i
    per_query = (attn * match).sum(-1)                         # (..., T)
    return per_query[..., match.any(-1)].mean(-1)              # queries with an earlier copy
''',
    explanation=(
        "The induction circuit of the notebook matches a query with keys whose PREVIOUS token is the same; a "
        "duplicate-token head matches the token itself. Both are content-based: the mask depends on the ids, not "
        "on positions. Queries without an earlier copy are left out, since no head could score on them; keeping "
        "them would lower the score of a perfect head. In circuits found in GPT-2 small, such heads tell later "
        "layers that a token is a repeat."
    ),
)

EXERCISES = ExerciseSet("nb08", "08 · Looking inside attention", [q1, q2, q3])
progress = EXERCISES.progress
