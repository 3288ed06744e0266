"""Exercises for notebook 07, "Decoding": the top-k and top-p (nucleus) filters, and distinct-n.

In the notebook::

    from lmlab.exercises import nb07 as ex

    def top_k_filter(logits, k): ...
    ex.q1.check(top_k_filter)   # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (checked on several inputs against references; V vocabulary size):

- q1 ``top_k_filter(logits (..., V), k) -> (..., V)``: the k largest logits of each row kept, the others
  set to -inf (as ``lmlab.generate.top_k_filter``; the inputs have no ties).
- q2 ``top_p_filter(logits (..., V), p) -> (..., V)``: the smallest set of most likely tokens whose
  probability reaches p kept (the token that crosses p included), the others -inf
  (as ``lmlab.generate.top_p_filter``; the inputs keep away from exact boundaries).
- q3 ``distinct_n(tokens: list[int], n) -> float``: distinct n-grams / all n-grams (0.0 when
  ``len(tokens) < n``).
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
    as_number,
    call_safely,
    compare_tensors,
    diagnosing,
)
from lmlab.generate import top_k_filter as _lmlab_top_k
from lmlab.generate import top_p_filter as _lmlab_top_p

__all__ = ["EXERCISES", "progress", "q1", "q2", "q3", "ref_distinct_n", "ref_top_k_filter", "ref_top_p_filter",
           "top_p_variant"]

# ----------------------------------------------------------------------------------------------------
# References


def ref_top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Reference for q1: ``lmlab.generate.top_k_filter``."""
    return _lmlab_top_k(logits, k)


def ref_top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Reference for q2: ``lmlab.generate.top_p_filter``."""
    return _lmlab_top_p(logits, p)


def ref_distinct_n(tokens: list[int], n: int) -> float:
    """Reference for q3. Example: ref_distinct_n([1, 2, 1, 2], 2) -> 2 / 3 ((1, 2) twice, (2, 1) once)."""
    ngrams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(ngrams)) / len(ngrams) if ngrams else 0.0


def _same_kept(expected: torch.Tensor, got: Any) -> bool:
    """Same shape, -inf in the same places, and the kept logits unchanged."""
    if not (isinstance(got, torch.Tensor) and got.shape == expected.shape and got.is_floating_point()):
        return False
    g = got.detach().cpu()
    kept = torch.isfinite(expected)
    return bool(torch.equal(torch.isneginf(g), ~kept) and torch.allclose(g[kept], expected[kept], atol=1e-6))


def _kept_mask(got: torch.Tensor) -> torch.Tensor:
    return ~torch.isneginf(got.detach().cpu())


def _common_filter_failures(name: str, expected: torch.Tensor, got: Any, logits: torch.Tensor, shown: str) -> None:
    """Failures shared by both filters: not a tensor, wrong shape, 0 instead of -inf, probabilities returned."""
    fail = CheckFailed.at(input=shown, expected=expected, got=got)
    if got is None:
        raise CheckFailed(f"`{name}` returned None. Did you forget a `return` statement?", input=shown)
    if not isinstance(got, torch.Tensor):
        compare_tensors(expected, got, name="Your result", show_input=shown)
    if got.shape != expected.shape:
        raise fail(f"The result has shape {tuple(got.shape)}, but it should have the shape of the logits, "
                   f"{tuple(expected.shape)}: filter along the last dim (dim=-1) and keep every row.")
    g = got.detach().cpu()
    kept = torch.isfinite(expected)
    sums = g.sum(-1)
    if bool((g >= 0).all()) and torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise fail("The result is a probability distribution. The filter returns logits: leave the kept logits "
                   "unchanged and set the others to float('-inf'); generate applies the softmax afterwards.")
    if not torch.isneginf(g).any() and bool((g[~kept] == 0).all()) and (~kept).any():
        raise fail("The removed tokens are set to 0, but a logit of 0 still has probability e^0 / Z > 0. "
                   "Set them to float('-inf'), whose probability after the softmax is exactly 0.")
    if torch.equal(_kept_mask(g), kept) and not torch.allclose(g[kept], logits[kept], atol=1e-6):
        probs = torch.softmax(expected, dim=-1)
        if torch.allclose(g[kept], probs[kept], atol=1e-5) or torch.allclose(
                g[kept], torch.softmax(logits, -1)[kept], atol=1e-5):
            raise fail("The kept entries are probabilities. The filter returns logits: leave the kept logits "
                       "unchanged and set the others to -inf; generate applies the softmax afterwards.")
        raise fail("The right tokens are kept but their logits were changed; return the kept logits unchanged.")


# ----------------------------------------------------------------------------------------------------
# q1 top_k_filter


def _logits_case(shape: tuple[int, ...], seed: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


_Q1_CASES = [((7,), 3, 0), ((4, 10), 1, 1), ((3, 12), 5, 2), ((2, 3, 9), 4, 3), ((6,), 6, 4)]  # (shape, k, seed)


def _q1_hidden(rng: random.Random) -> list[tuple[tuple[int, ...], int, int]]:
    shapes = [(rng.randint(3, 20),), (rng.randint(1, 4), rng.randint(3, 20))]
    return [(shape, rng.randint(1, shape[-1]), rng.randrange(2**31)) for shape in shapes]


def _check_top_k(fn: Any, timeout: float, cases: list[tuple[tuple[int, ...], int, int]]) -> None:
    for shape, k, seed in cases:
        logits = _logits_case(shape, seed)
        shown = f"logits: random {shape} (seed {seed}), k={k}"
        got = call_safely(fn, logits.clone(), k, timeout=timeout, show_input=shown)
        expected = ref_top_k_filter(logits, k)
        if _same_kept(expected, got):
            continue
        with diagnosing():
            _common_filter_failures("top_k_filter", expected, got, logits, shown)
            _diagnose_top_k(got, expected, logits, k, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_tensors(expected, got, name="Your result", show_input=shown)


def _diagnose_top_k(got: torch.Tensor, expected: torch.Tensor, logits: torch.Tensor, k: int, fail: Any) -> None:
    shape = tuple(logits.shape)
    n_kept = _kept_mask(got).sum(-1)
    V = shape[-1]
    if k < V and bool((n_kept == k + 1).all()):
        raise fail(f"Each row keeps {k + 1} tokens instead of k={k}: an off-by-one. The threshold is the k-th "
                   "largest logit, torch.topk(logits, k).values[..., -1:], and tokens below it are removed "
                   "(logits < kth), so exactly k remain.")
    if k > 1 and bool((n_kept == k - 1).all()):
        raise fail(f"Each row keeps {k - 1} tokens instead of k={k}: the k-th largest logit itself must be kept. "
                   "Remove only the logits strictly below it (logits < kth, not <=).")
    smallest = torch.topk(logits, k, dim=-1, largest=False).values[..., -1:]
    if torch.equal(_kept_mask(got), logits <= smallest):
        raise fail("The k SMALLEST logits are kept. torch.topk returns the largest by default; keep the tokens "
                   "whose logit is >= the k-th largest.")
    if len(shape) > 1:
        flat_kth = torch.topk(logits.reshape(-1), k).values[-1]
        if torch.equal(_kept_mask(got), logits >= flat_kth):
            raise fail("The k largest logits of the WHOLE tensor are kept, not of each row. Work along the "
                       "last dim: torch.topk(logits, k, dim=-1).values[..., -1:] (keep the last dim for "
                       "broadcasting).")


q1 = Exercise(
    name="q1",
    title="top_k_filter(logits, k)",
    points=1,
    prompt=(
        "Write `top_k_filter(logits, k)` that keeps the k largest logits along the last dim (each row of a "
        "batch separately) and sets all the others to float('-inf'). The kept logits stay unchanged; the "
        "result has the shape of `logits`."
    ),
    checker=_check_top_k,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    forbidden=("lmlab.generate.top_k_filter",),
    hints=[
        "Find the k-th largest logit of each row; everything strictly below it goes.",
        "torch.topk(logits, k, dim=-1).values is sorted from the largest; its last column [..., -1:] is the k-th "
        "largest, with the last dim kept so it broadcasts against logits.",
        "kth = torch.topk(logits, k, dim=-1).values[..., -1:]; "
        "return logits.masked_fill(logits < kth, float('-inf'))",
    ],
    solution_code='''\
import torch

def top_k_filter(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]       # (..., 1) the k-th largest logit
    return logits.masked_fill(logits < kth, float("-inf"))     # (..., V) the rest can never be sampled
''',
    explanation=(
        "A logit of -inf has probability exp(-inf) / Z = 0 after the softmax, so only the k kept tokens can be "
        "sampled, and their probabilities are renormalised automatically. Comparing with the k-th largest value "
        "(strictly less is removed) keeps exactly k tokens when there are no ties; with ties at the boundary "
        "lmlab and transformers keep all the tied tokens. top-k ignores how sure the model is: k = 10 keeps 10 "
        "tokens whether the model is certain of one or hesitates between 40."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 top_p_filter


def _hand_case(probs: list[float]) -> torch.Tensor:
    return torch.log(torch.tensor(probs))


_Q2_CASES = [  # (logits, p, shown)
    (_hand_case([0.2, 0.5, 0.3]), 0.7, "probabilities [0.2, 0.5, 0.3], p=0.7"),
    (_hand_case([0.2, 0.5, 0.3]), 0.4, "probabilities [0.2, 0.5, 0.3], p=0.4"),
    (_hand_case([0.05, 0.1, 0.6, 0.25]), 0.9, "probabilities [0.05, 0.1, 0.6, 0.25], p=0.9"),
    (_logits_case((4, 20), 5), 0.9, "logits: random (4, 20) (seed 5), p=0.9"),
    (_logits_case((3, 30), 6, 1.0), 0.5, "logits: random (3, 30) (seed 6), p=0.5"),
    (_logits_case((2, 3, 15), 7), 0.75, "logits: random (2, 3, 15) (seed 7), p=0.75"),
    (_logits_case((3, 12), 8, 60.0), 0.9, "logits: random (3, 12) (seed 8) times 60, p=0.9"),  # exp() overflows
]


def top_p_variant(logits: torch.Tensor, p: float, *, include_crossing: bool = True, sort: bool = True,
                   scatter: bool = True) -> torch.Tensor:
    """top-p with switches for the typical mistakes (the defaults give the reference)."""
    if sort:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    else:
        sorted_logits, order = logits, torch.arange(logits.size(-1)).expand_as(logits)
    probs = torch.softmax(sorted_logits, dim=-1)
    cum = probs.cumsum(-1)
    drop_sorted = (cum - probs >= p) if include_crossing else (cum > p)
    drop = drop_sorted.scatter(-1, order, drop_sorted) if scatter else drop_sorted
    return logits.masked_fill(drop, float("-inf"))


def _q2_hidden(rng: random.Random) -> list[tuple[torch.Tensor, float, str]]:
    cases = []
    while len(cases) < 3:
        shape, seed, p = (rng.randint(1, 4), rng.randint(4, 30)), rng.randrange(2**31), rng.choice([0.3, 0.6, 0.9])
        scale = 60.0 if len(cases) == 2 else rng.choice([1.0, 2.0, 4.0])
        logits = _logits_case(shape, seed, scale)
        probs = torch.softmax(torch.sort(logits, dim=-1, descending=True).values.double(), dim=-1)
        if bool(((probs.cumsum(-1) - probs - p).abs() > 1e-3).all()):  # keep away from the boundary p
            cases.append((logits, p, f"logits: random {shape} (seed {seed}) times {scale:g}, p={p}"))
    return cases


def _check_top_p(fn: Any, timeout: float, cases: list[tuple[torch.Tensor, float, str]]) -> None:
    for logits, p, shown in cases:
        got = call_safely(fn, logits.clone(), p, timeout=timeout, show_input=shown)
        expected = ref_top_p_filter(logits, p)
        if _same_kept(expected, got):
            continue
        with diagnosing():
            _common_filter_failures("top_p_filter", expected, got, logits, shown)
            _diagnose_top_p(got, expected, logits, p, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_tensors(expected, got, name="Your result", show_input=shown)


def _diagnose_top_p(got: torch.Tensor, expected: torch.Tensor, logits: torch.Tensor, p: float, fail: Any) -> None:
    kept = _kept_mask(got)
    if torch.equal(kept, torch.isfinite(top_p_variant(logits, p, include_crossing=False))):
        raise fail("The token that crosses p is removed, so the kept mass is below p (and with a small p "
                   "nothing, not even the most likely token, may be left). Keep a token when the mass of "
                   "the MORE likely tokens before it is still < p: drop where cumsum - probs >= p.")
    if torch.equal(kept, torch.isfinite(top_p_variant(logits, p, scatter=False))):
        raise fail("The decision made in sorted order is applied to the logits in vocabulary order. Map it "
                   "back with the sort indices first: drop = drop_sorted.scatter(-1, order, drop_sorted).")
    if torch.equal(kept, torch.isfinite(top_p_variant(logits, p, sort=False))):
        raise fail("The cumulative sum runs over the tokens in vocabulary order. Sort the probabilities in "
                   "descending order first (torch.sort(..., descending=True)), decide in that order, then "
                   "scatter the decision back to the vocabulary order.")
    exp_kept = torch.isfinite(expected)
    if bool((kept.sum(-1) == exp_kept.sum(-1)).all()) and not torch.equal(kept, exp_kept):
        raise fail("The right NUMBER of tokens is kept, but not the right tokens: after deciding in sorted "
                   "order, map the decision back with the sort indices, e.g. "
                   "drop_sorted.scatter(-1, order, drop_sorted).")


q2 = Exercise(
    name="q2",
    title="top_p_filter(logits, p)",
    points=2,
    prompt=(
        "Write `top_p_filter(logits, p)` (nucleus filtering) that keeps, along the last dim, the smallest set of "
        "most likely tokens whose total probability reaches p, and sets the other logits to float('-inf'). A "
        "token is kept when the probability of the tokens more likely than it is still below p, so the token "
        "that crosses p is kept (and the most likely token always is). Kept logits stay unchanged."
    ),
    checker=_check_top_p,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    forbidden=("lmlab.generate.top_p_filter",),
    hints=[
        "Work in sorted order: torch.sort(logits, dim=-1, descending=True) gives the sorted logits and the "
        "indices `order` that undo the sort.",
        "probs = softmax(sorted logits); the mass before token i is probs.cumsum(-1) - probs. Drop where that "
        "is >= p.",
        "drop = drop_sorted.scatter(-1, order, drop_sorted) puts the decision back in vocabulary order; then "
        "return logits.masked_fill(drop, float('-inf')).",
    ],
    solution_code='''\
import torch

def top_p_filter(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)   # most likely first
    probs = torch.softmax(sorted_logits, dim=-1)
    drop_sorted = probs.cumsum(dim=-1) - probs >= p      # mass of the more likely tokens already reaches p
    drop = drop_sorted.scatter(-1, order, drop_sorted)   # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))
''',
    explanation=(
        "The nucleus is the smallest head of the sorted distribution with mass >= p. Token i belongs to it "
        "exactly when the tokens before it have not yet reached p (cumsum - probs < p), which always includes "
        "the first token and the one that crosses p. Dropping where cumsum > p instead removes the crossing "
        "token and keeps less than p. Unlike top-k, the number of kept tokens adapts to the model's "
        "confidence: one or two when it is sure, many when it hesitates."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 distinct_n


_Q3_CASES = [([1, 2, 2, 1, 2], 2), ([1, 2, 1, 2], 2), ([5, 5, 5, 5, 5], 1), ([1, 2, 3, 1, 2, 3, 1], 3),
             ([3, 1, 4, 1, 5, 9, 2, 6], 2),
             ([7, 8], 3), ([4, 4, 2, 4, 4, 2, 4, 4], 2), ([1, 2, 3], 3)]


def _q3_hidden(rng: random.Random) -> list[tuple[list[int], int]]:
    return [([rng.randrange(3) for _ in range(rng.randint(3, 20))], rng.randint(1, 3)) for _ in range(3)]


def _check_distinct_n(fn: Any, timeout: float, cases: list[tuple[list[int], int]]) -> None:
    for tokens, n in cases:
        shown = f"tokens={tokens}, n={n}"
        raw = call_safely(fn, list(tokens), n, timeout=timeout, show_input=shown)
        got = as_number(raw, "distinct_n", show_input=shown)
        expected = ref_distinct_n(tokens, n)
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        N = len(tokens) - n + 1
        if N > 0:
            distinct = len({tuple(tokens[i:i + n]) for i in range(N)})
            if math.isclose(got, distinct / len(tokens)):
                raise fail(f"You divide by the number of tokens ({len(tokens)}); divide by the number of n-grams, "
                           f"len(tokens) - n + 1 = {N}.")
            if math.isclose(got, float(distinct)):
                raise fail("This is the number of distinct n-grams; distinct-n divides it by the number of n-grams.")
            if N > 1:
                short = {tuple(tokens[i:i + n]) for i in range(N - 1)}
                if math.isclose(got, len(short) / (N - 1)) or math.isclose(got, len(short) / N):
                    raise fail(f"The last n-gram is missing: there are len(tokens) - n + 1 = {N} n-grams, "
                               "range(len(tokens) - n + 1), not range(len(tokens) - n).")
        if n > 1 and tokens and math.isclose(got, len(set(tokens)) / len(tokens)):
            raise fail("This is distinct-1 whatever n is: count n-grams, tuple(tokens[i:i + n]), not single tokens.")
        if N <= 0:
            raise fail(f"With fewer than n = {n} tokens there are no n-grams; return 0.0.")
        raise fail(f"distinct_n should be {expected:.4g} here: {len({tuple(tokens[i:i + n]) for i in range(N)})} "
                   f"distinct n-grams out of {N}.")


q3 = Exercise(
    name="q3",
    title="distinct_n(tokens, n)",
    points=1,
    prompt=(
        "Write `distinct_n(tokens, n)` for a list of token ids: the number of different n-grams (runs of n "
        "consecutive tokens) divided by the number of n-grams, len(tokens) - n + 1. Return 0.0 when there are "
        "fewer than n tokens."
    ),
    checker=_check_distinct_n,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    hints=[
        "List the n-grams as tuples (lists cannot go in a set): tuple(tokens[i:i + n]).",
        "i runs over range(len(tokens) - n + 1); len(set(ngrams)) counts the different ones.",
        "ngrams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]; "
        "return len(set(ngrams)) / len(ngrams) if ngrams else 0.0",
    ],
    solution_code='''\
def distinct_n(tokens, n):
    ngrams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(ngrams)) / len(ngrams) if ngrams else 0.0
''',
    explanation=(
        "A sequence of N tokens has N - n + 1 n-grams (windows of length n). distinct-n is 1 when no n-gram "
        "repeats and near 0 for a loop such as greedy decoding produces. It measures diversity only: random "
        "characters score 1 too, so it is read together with a quality measure such as the mean log-probability."
    ),
)

EXERCISES = ExerciseSet("nb07", "07 · Decoding", [q1, q2, q3])
progress = EXERCISES.progress
