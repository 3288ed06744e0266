"""Exercises for notebook 01, "Language models and maximum likelihood": bigram MLE, cross-entropy, perplexity.

In the notebook::

    from lmlab.exercises import nb01 as ex

    def bigram_probs(ids, vocab_size): ...
    ex.q1.check(bigram_probs)   # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (checked on several inputs, edge cases included, against the small
references below, written with plain torch; V is the vocabulary size):

- q1 ``bigram_probs(ids: list[int] | LongTensor, vocab_size: int) -> Tensor (V, V)``:
  ``P[a, b] = count(a -> b) / count(a -> ·)``; a row whose context `a` is never followed by anything is
  uniform, ``1 / V``.
- q2 ``cross_entropy(probs: Tensor (V, V), ids: list[int] | LongTensor) -> float``: the average negative
  log-likelihood, in nats, of the ``len(ids) - 1`` transitions of `ids` under `probs`.
- q3 ``perplexity(ce_nats: float) -> float``: ``exp(ce_nats)``.
- q4 ``add_k_probs(ids, vocab_size: int, k: float) -> Tensor (V, V)``: add-k smoothing,
  ``(count(a -> b) + k) / (count(a -> ·) + k V)``.

Tolerances: rtol 1e-4 for float32 probabilities and losses.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lmlab.exercises.core import (
    CheckFailed,
    Exercise,
    ExerciseSet,
    as_number,
    call_safely,
    compare_numbers,
    compare_tensors,
    require_callable,
)

__all__ = ["q1", "q2", "q3", "q4", "EXERCISES", "progress"]

RTOL, ATOL = 1e-4, 1e-6

# ----------------------------------------------------------------------------------------------------
# References (V: vocabulary size)


def _as_list(ids: Any) -> list[int]:
    return [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]


def _counts(pairs: list[tuple[int, int]], vocab_size: int) -> torch.Tensor:
    counts = torch.zeros(vocab_size, vocab_size)  # (V, V)
    for a, b in pairs:
        counts[a, b] += 1
    return counts


def _pairs(ids: Any) -> list[tuple[int, int]]:
    seq = _as_list(ids)
    return list(zip(seq[:-1], seq[1:]))


def _normalize_rows(counts: torch.Tensor) -> torch.Tensor:
    """Rows divided by their totals; empty rows uniform."""
    V = counts.shape[1]
    totals = counts.sum(dim=1, keepdim=True)  # (V, 1)
    return torch.where(totals > 0, counts / totals.clamp_min(1e-30), torch.full_like(counts, 1.0 / V))


def ref_bigram_probs(ids: Any, vocab_size: int) -> torch.Tensor:
    """Reference for q1. Example: ids=[0, 1, 0], V=2 -> [[0, 1], [1, 0]]."""
    return _normalize_rows(_counts(_pairs(ids), vocab_size))


def ref_cross_entropy(probs: torch.Tensor, ids: Any) -> float:
    """Reference for q2: mean over transitions of -ln probs[a, b]."""
    seq = torch.as_tensor(_as_list(ids))
    return float(-torch.log(probs[seq[:-1], seq[1:]].double()).mean())


def ref_add_k_probs(ids: Any, vocab_size: int, k: float) -> torch.Tensor:
    """Reference for q4."""
    counts = _counts(_pairs(ids), vocab_size)  # (V, V)
    return (counts + k) / (counts.sum(dim=1, keepdim=True) + k * vocab_size)


# ----------------------------------------------------------------------------------------------------
# Helpers shared by the checkers


def _show_ids(ids: Any) -> str:
    if isinstance(ids, torch.Tensor):
        return f"torch.tensor({ids.tolist()})"
    return repr(ids)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=RTOL, atol=1e-5))


def _check_matrix_type(got: Any, V: int, name: str, shown: str, counts: torch.Tensor | None = None) -> torch.Tensor:
    """A (V, V) floating tensor, or a kind CheckFailed about the type, shape or dtype."""
    if isinstance(got, (list, tuple)):
        raise CheckFailed(
            f"`{name}` returned a {type(got).__name__}; it should return a torch.Tensor of shape ({V}, {V}). "
            f"Build it with torch.zeros(...) and tensor operations, or wrap your result in torch.tensor(...).",
            input=shown,
        )
    if isinstance(got, torch.Tensor) and got.shape == (V, V) and not got.is_floating_point():
        if counts is not None and torch.equal(got.double(), counts.double()):
            raise CheckFailed(
                "These look like counts, not probabilities: divide each row by its total (as floats), "
                "counts / counts.sum(dim=1, keepdim=True), so that every row sums to 1.",
                input=shown,
                got=got,
            )
        raise CheckFailed(
            f"`{name}` returned an integer tensor ({got.dtype}). Probabilities are fractions: use a float "
            f"tensor, e.g. torch.zeros(V, V) (float32 by default), or convert counts with .float() before dividing.",
            input=shown,
            got=got,
        )
    if not isinstance(got, torch.Tensor):
        extra = " Did you forget a `return` statement?" if got is None else ""
        raise CheckFailed(
            f"`{name}` should return a torch.Tensor of shape ({V}, {V}), but it returned "
            f"{'None' if got is None else 'a ' + type(got).__name__}.{extra}",
            input=shown,
            got=got,
        )
    if tuple(got.shape) != (V, V):
        raise CheckFailed(
            f"`{name}` returned a tensor of shape {tuple(got.shape)}; it should have shape (V, V) = ({V}, {V}): "
            f"one row per context token a, one column per next token b.",
            input=shown,
            got=got,
        )
    if not got.is_floating_point():
        raise CheckFailed(f"`{name}` returned a {got.dtype} tensor; it should be a float tensor.", input=shown, got=got)
    return got.detach().cpu().double()


def _diagnose_probs(got: torch.Tensor, expected: torch.Tensor, ids: Any, V: int, name: str, shown: str) -> None:
    """Recognise the typical mistakes of a bigram probability table; raise CheckFailed about the first found."""
    counts = _counts(_pairs(ids), V).double()
    seen = counts.sum(dim=1) > 0  # (V,) contexts followed by at least one token
    unseen = ~seen
    fail = lambda msg: CheckFailed(msg, input=shown, expected=expected, got=got.float())  # noqa: E731

    if _close(got, counts) and not _close(counts, expected):
        raise fail("These look like counts, not probabilities: divide each row by its total, "
                   "counts / counts.sum(dim=1, keepdim=True), so that every row sums to 1.")
    seen_ok = _close(got[seen], expected[seen].double())
    if seen_ok and unseen.any():
        bad_rows = [int(i) for i in unseen.nonzero().flatten()]
        rows = got[unseen]
        if torch.isnan(rows).any():
            raise fail(f"Rows {bad_rows} are NaN: those tokens are never followed by anything, so their row "
                       f"is 0/0. The question asks for a uniform row there: every entry 1/V = 1/{V}.")
        if (rows == 0).all():
            raise fail(f"Rows {bad_rows} are all zeros: those tokens are never followed by anything. "
                       f"A row must still be a probability distribution: make it uniform, 1/V = 1/{V} each.")
        raise fail(f"Rows for contexts that are never followed by anything ({bad_rows}) should be "
                   f"uniform, 1/V = 1/{V} each; the other rows are right.")
    if torch.isnan(got).any():
        raise fail("Your table contains NaN (not a number), probably from 0/0 when a row total is zero. "
                   "Handle empty rows separately: make them uniform, 1/V.")
    row_sums = got.sum(dim=1)
    col_sums = got.sum(dim=0)
    col_seen = counts.sum(dim=0) > 0
    if not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-4) and torch.allclose(
        col_sums[col_seen], torch.ones_like(col_sums[col_seen]), atol=1e-4
    ):
        raise fail("Your columns sum to 1 instead of your rows. P[a, b] is the probability of b after a, so "
                   "each row a must sum to 1: normalize over dim=1 (counts.sum(dim=1, keepdim=True)).")
    seq = _as_list(ids)
    mistakes = [
        (list(zip(seq, seq)), "Each token is paired with itself (like zip(ids, ids)). A bigram pairs a token "
         "with the NEXT one: zip(ids[:-1], ids[1:])."),
        (list(zip(seq[1:-1], seq[2:])), "The first transition (ids[0] -> ids[1]) seems to be missing. "
         "Pair every token with the next one, starting at the first: zip(ids[:-1], ids[1:])."),
        (list(zip(seq[:-2], seq[1:-1])), "The last transition (ids[-2] -> ids[-1]) seems to be missing. "
         "Pair every token with the next one: zip(ids[:-1], ids[1:]) has len(ids) - 1 pairs."),
        (list(zip(seq, seq[1:] + seq[:1])), "There is an extra transition from the last token back to the "
         "first. There are only len(ids) - 1 transitions: zip(ids[:-1], ids[1:])."),
    ]
    for pairs, message in mistakes:
        cand_counts = _counts(pairs, V).double()
        cand_seen = cand_counts.sum(dim=1) > 0
        cand = _normalize_rows(cand_counts)
        if cand_seen.any() and not _close(cand, expected) and _close(got[cand_seen], cand[cand_seen]):
            raise fail(message)
    if not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-4):
        a = int((row_sums - 1).abs().argmax())
        raise fail(f"Every row of the table should sum to 1 (it is a distribution over the next token), "
                   f"but row {a} sums to {float(row_sums[a]):.4g}.")


# ----------------------------------------------------------------------------------------------------
# q1 bigram_probs

_Q1_CASES: list[tuple[Any, int]] = [
    ([0, 1, 2, 0, 1, 1], 3),  # every token is a context
    ([0, 1, 0, 1, 0], 4),  # tokens 2 and 3 never appear: uniform rows
    ([2, 0, 0, 1, 3], 4),  # 3 appears only at the end: its row is uniform too
    (torch.randint(0, 5, (60,), generator=torch.Generator().manual_seed(1)), 5),  # a LongTensor
    ([1], 3),  # a single token: no transitions at all
]


def _check_bigram_probs(fn: Any, timeout: float) -> None:
    require_callable(fn, "bigram_probs")
    for ids, V in _Q1_CASES:
        shown = f"ids={_show_ids(ids)}, vocab_size={V}"
        arg = ids.clone() if isinstance(ids, torch.Tensor) else list(ids)
        got = call_safely(fn, arg, V, timeout=timeout, show_input=shown)
        expected = ref_bigram_probs(ids, V)
        got64 = _check_matrix_type(got, V, "bigram_probs", shown, counts=_counts(_pairs(ids), V))
        if _close(got64, expected):
            continue
        _diagnose_probs(got64, expected, ids, V, "bigram_probs", shown)
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="The result of `bigram_probs`", show_input=shown)


q1 = Exercise(
    name="q1",
    title="bigram_probs(ids, vocab_size)",
    points=2,
    prompt=(
        "Write `bigram_probs(ids, vocab_size)` that returns the maximum-likelihood bigram table P, a float "
        "tensor of shape (V, V) with P[a, b] = count(a -> b) / count(a -> ·): how often token b follows "
        "token a, divided by how often a is followed by anything. `ids` is a list of ints or a LongTensor. "
        "A row whose token a is never followed by anything (it does not occur, or only at the very end) "
        "is uniform: every entry 1/V."
    ),
    checker=_check_bigram_probs,
    hints=[
        "Count first, divide second. A sequence of n tokens has n - 1 transitions: (ids[0], ids[1]), "
        "(ids[1], ids[2]), ...",
        "Make counts = torch.zeros(V, V) and add 1 to counts[a, b] for each a, b in zip(ids[:-1], ids[1:]). "
        "Row a holds everything that followed a, so divide by row totals: counts.sum(dim=1, keepdim=True).",
        "totals = counts.sum(dim=1, keepdim=True); return torch.where(totals > 0, counts / totals.clamp_min(1), "
        "torch.full_like(counts, 1 / vocab_size)). clamp_min(1) avoids 0/0 in rows that torch.where then replaces.",
    ],
    solution_code='''\
def bigram_probs(ids, vocab_size):
    ids = torch.as_tensor(ids)
    counts = torch.zeros(vocab_size, vocab_size)            # (V, V)
    counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), accumulate=True)
    totals = counts.sum(dim=1, keepdim=True)                # (V, 1)
    uniform = torch.full_like(counts, 1.0 / vocab_size)     # (V, V)
    return torch.where(totals > 0, counts / totals.clamp_min(1), uniform)
''',
    explanation=(
        "The maximum-likelihood estimate of a categorical distribution is the relative frequency, and a "
        "bigram model is one categorical distribution per context a: row a. index_put_ with accumulate=True "
        "adds 1 at (a, b) for every transition, including repeated pairs (counts[a, b] += 1 in a Python loop "
        "is the same, only slower). Dividing by the row total makes each row sum to 1. A context that is "
        "never followed by anything has no data, so MLE is undefined (0/0); we choose the uniform "
        "distribution, the one that assumes nothing."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 cross_entropy


def _softmax_table(V: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(V, V, generator=g), dim=1)  # (V, V), rows sum to 1


_Q2_CASES: list[tuple[torch.Tensor, Any]] = [
    (_softmax_table(4, 0), [0, 1, 2, 3, 3, 1, 0, 2, 1]),  # 8 transitions
    (_softmax_table(3, 1), torch.tensor([2, 2, 0, 1, 0])),  # a LongTensor, 4 transitions
    (torch.full((4, 4), 0.25), [3, 0, 2, 1, 1, 2]),  # uniform table: the answer is ln 4
    (_softmax_table(5, 2), [4, 1]),  # a single transition
]


def _check_cross_entropy(fn: Any, timeout: float) -> None:
    require_callable(fn, "cross_entropy")
    for probs, ids in _Q2_CASES:
        n = len(ids) - 1  # transitions
        table = "uniform 1/4" if bool((probs == 0.25).all()) else f"a {tuple(probs.shape)} table"
        shown = f"probs={table}, ids={_show_ids(ids)}"
        arg = ids.clone() if isinstance(ids, torch.Tensor) else list(ids)
        got = as_number(call_safely(fn, probs.clone(), arg, timeout=timeout, show_input=shown),
                        "cross_entropy", show_input=shown)
        expected = ref_cross_entropy(probs, ids)
        if math.isclose(got, expected, rel_tol=RTOL, abs_tol=ATOL):
            continue
        near = lambda value: math.isclose(got, value, rel_tol=RTOL, abs_tol=ATOL)  # noqa: E731
        fail = lambda msg: CheckFailed(msg, input=shown, expected=expected, got=got)  # noqa: E731
        if near(expected / math.log(2)):
            raise fail("This looks like bits (log base 2); the question asks for nats: use the natural log, "
                       "torch.log (bits = nats / ln 2).")
        if near(expected / math.log(10)):
            raise fail("This looks like log base 10; the question asks for nats: use the natural log, torch.log.")
        if near(-expected):
            raise fail("The sign is flipped: cross-entropy is the NEGATIVE mean log-probability "
                       "(log-probabilities are <= 0, so the loss is >= 0).")
        if n > 1 and near(expected * n):
            raise fail(f"This is the sum over the {n} transitions; the question asks for the mean "
                       f"(divide by the number of transitions, len(ids) - 1 = {n}).")
        if n > 1 and near(-expected * n):
            raise fail("This is the sum of log-probabilities: negate it and divide by the number of transitions.")
        if near(expected * n / (n + 1)):
            raise fail(f"You divided by len(ids) = {n + 1}, but a sequence of {n + 1} tokens has only "
                       f"{n} transitions: divide by len(ids) - 1.")
        if n > 1 and near(expected * n / (n - 1)):
            raise fail(f"You divided by {n - 1}, but there are {n} transitions (len(ids) - 1).")
        compare_numbers(expected, got, rtol=RTOL, atol=ATOL, name="Your cross-entropy", show_input=shown)


q2 = Exercise(
    name="q2",
    title="cross_entropy(probs, ids)",
    points=2,
    prompt=(
        "Write `cross_entropy(probs, ids)` that returns, as a float, the average negative log-likelihood in "
        "nats (natural log) of the transitions of `ids` under the bigram table `probs` (shape (V, V), rows "
        "sum to 1): -(1 / (n - 1)) * sum over t of ln probs[ids[t], ids[t + 1]], for the n - 1 transitions "
        "of a sequence of n tokens."
    ),
    checker=_check_cross_entropy,
    hints=[
        "Each transition a -> b has probability probs[a, b] under the model. Take the log of each, average, "
        "and put a minus sign in front.",
        "Index all transitions at once: ids = torch.as_tensor(ids); p = probs[ids[:-1], ids[1:]] is a vector "
        "of len(ids) - 1 probabilities.",
        "return -torch.log(probs[ids[:-1], ids[1:]]).mean().item()  (torch.log is the natural log: nats).",
    ],
    solution_code='''\
def cross_entropy(probs, ids):
    ids = torch.as_tensor(ids)
    p = probs[ids[:-1], ids[1:]]            # (n - 1,) probability of each transition
    return -torch.log(p).mean().item()      # nats: natural log
''',
    explanation=(
        "The likelihood of the sequence (given its first token) is the product of its transition "
        "probabilities; its log is a sum, and dividing by the number of transitions gives a per-token number "
        "that does not grow with the length of the text. The minus sign makes it a loss to minimise "
        "(>= 0). With the natural log the unit is nats; dividing by ln 2 gives bits."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 perplexity

_Q3_CASES = [math.log(4), 2.5, 1.0, 0.0]  # ln 4 -> 4 (uniform over 4 tokens); 0 -> 1 (a perfect model)


def _check_perplexity(fn: Any, timeout: float) -> None:
    require_callable(fn, "perplexity")
    for ce in _Q3_CASES:
        shown = f"ce_nats={ce:.6g}"
        got = as_number(call_safely(fn, ce, timeout=timeout, show_input=shown), "perplexity", show_input=shown)
        expected = math.exp(ce)
        if math.isclose(got, expected, rel_tol=RTOL, abs_tol=ATOL):
            continue
        near = lambda value: math.isclose(got, value, rel_tol=RTOL, abs_tol=ATOL)  # noqa: E731
        fail = lambda msg: CheckFailed(msg, input=shown, expected=expected, got=got)  # noqa: E731
        if near(2.0**ce):
            raise fail("This is 2 ** ce, but the cross-entropy is in nats (natural log), so the perplexity is "
                       "e ** ce: use math.exp(ce_nats). (2 ** ce is right only for a cross-entropy in bits.)")
        if near(10.0**ce):
            raise fail("This is 10 ** ce; the cross-entropy is in nats, so use math.exp(ce_nats).")
        if near(math.exp(-ce)):
            raise fail("This is exp(-ce), the inverse: perplexity is exp(+ce), at least 1.")
        if ce != 0 and near(1.0 / ce):
            raise fail("This is 1 / ce; perplexity is exp(ce): the exponential undoes the log in the loss.")
        if ce > 0 and near(math.log(ce)):
            raise fail("This is log(ce); perplexity is exp(ce), the exponential, not the log.")
        if near(ce):
            raise fail("This returns its input unchanged; perplexity is exp(ce_nats).")
        compare_numbers(expected, got, rtol=RTOL, atol=ATOL, name="Your perplexity", show_input=shown)


q3 = Exercise(
    name="q3",
    title="perplexity(ce_nats)",
    points=1,
    prompt=(
        "Write `perplexity(ce_nats)` that turns a cross-entropy in nats (a float) into a perplexity, as a float. "
        "A model that is uniform over V tokens has cross-entropy ln V and perplexity V."
    ),
    checker=_check_perplexity,
    hints=[
        "Perplexity is 'the effective number of equally likely choices'. Uniform over 4 tokens: ce = ln 4, "
        "perplexity 4. Which function maps ln 4 to 4?",
        "The exponential undoes the natural log. In bits you would use 2 ** ce_bits; in nats use e ** ce_nats.",
        "return math.exp(ce_nats)",
    ],
    solution_code='''\
import math

def perplexity(ce_nats):
    return math.exp(ce_nats)     # = 2 ** (ce_nats / math.log(2)), the same number from bits
''',
    explanation=(
        "Cross-entropy is an average of -ln p; exponentiating it gives the inverse geometric mean of the "
        "probabilities the model gave to what came next. A uniform model over V tokens has perplexity V, so "
        "perplexity reads as an effective branching factor; a perfect model has perplexity 1. The base must "
        "match the log: exp for nats, 2 ** for bits (bits per character = nats / ln 2)."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q4 add_k_probs

_Q4_CASES: list[tuple[Any, int, float]] = [
    ([0, 1, 2, 0, 1, 1], 3, 1.0),
    ([0, 1, 0, 1, 0], 4, 0.5),  # unseen rows become uniform by themselves
    (torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(3)), 5, 0.1),
    ([2, 0, 0, 1, 3], 4, 0.0),  # k = 0 is plain MLE on the rows that have data
]


def _check_add_k_probs(fn: Any, timeout: float) -> None:
    require_callable(fn, "add_k_probs")
    for ids, V, k in _Q4_CASES:
        shown = f"ids={_show_ids(ids)}, vocab_size={V}, k={k:g}"
        arg = ids.clone() if isinstance(ids, torch.Tensor) else list(ids)
        got = call_safely(fn, arg, V, k, timeout=timeout, show_input=shown)
        got64 = _check_matrix_type(got, V, "add_k_probs", shown)
        expected = ref_add_k_probs(ids, V, k)
        counts = _counts(_pairs(ids), V).double()
        seen = counts.sum(dim=1) > 0
        if k == 0:
            # 0/0 rows are undefined with k = 0: only the rows with data must match plain MLE.
            if _close(got64[seen], expected[seen].double()):
                continue
            raise CheckFailed(
                "With k = 0, add-k smoothing is plain maximum likelihood: on the rows that have data it must "
                "equal bigram_probs (q1). (Rows with no data are 0/0 here; any value is accepted.)",
                input=shown, expected=expected, got=got.float(),
            )
        if _close(got64, expected):
            continue
        fail = lambda msg: CheckFailed(msg, input=shown, expected=expected, got=got.float())  # noqa: E731
        totals = counts.sum(dim=1, keepdim=True)
        if _close(got64, (counts + k) / (totals + k)):
            raise fail("The denominator adds k, but k was added to each of the V entries of the row: add k * V "
                       "(vocab_size * k) so that each row still sums to 1.")
        if _close(got64, counts + k):
            raise fail("These are the smoothed counts, count + k; divide each row by its total, "
                       "row total + k * V, to get probabilities.")
        if _close(got64, _normalize_rows(counts)):
            raise fail("This is the unsmoothed MLE table (q1): add k to every count before normalizing.")
        if _close(got64, (counts + k) / (counts.sum(dim=0, keepdim=True) + k * V)):
            raise fail("Your columns sum to 1 instead of your rows: divide by the ROW totals, "
                       "counts.sum(dim=1, keepdim=True) + k * V.")
        _diagnose_probs(got64, expected, ids, V, "add_k_probs", shown)
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="The result of `add_k_probs`", show_input=shown)


q4 = Exercise(
    name="q4",
    title="add_k_probs(ids, vocab_size, k)",
    points=2,
    prompt=(
        "Write `add_k_probs(ids, vocab_size, k)` that returns the add-k smoothed bigram table, a float tensor "
        "of shape (V, V): P[a, b] = (count(a -> b) + k) / (count(a -> ·) + k V). Pretend every pair was seen "
        "k extra times. With k = 0 it must equal bigram_probs on the rows that have data."
    ),
    checker=_check_add_k_probs,
    hints=[
        "Start from the same count table as in q1. Smoothing changes the counts, not the way you normalize.",
        "Add k to every entry of the count table (all V * V of them, seen or not), then divide each row by its "
        "new total.",
        "counts = counts + k; return counts / counts.sum(dim=1, keepdim=True)  — the row total is then the old "
        "total + k * V.",
    ],
    solution_code='''\
def add_k_probs(ids, vocab_size, k):
    ids = torch.as_tensor(ids)
    counts = torch.zeros(vocab_size, vocab_size)                     # (V, V)
    counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), accumulate=True)
    smoothed = counts + k                                            # (V, V)
    return smoothed / smoothed.sum(dim=1, keepdim=True)              # row total: count(a -> ·) + k V
''',
    explanation=(
        "MLE gives probability 0 to every pair it has not seen, so any new text containing one has infinite "
        "cross-entropy. Adding k pseudo-counts to every cell keeps all probabilities positive. Each row gets k "
        "added V times, so its total grows by k V, which keeps rows summing to 1. Rows with no data become "
        "uniform automatically. k = 1 is Laplace smoothing; smaller k trusts the data more, and k = 0 is MLE."
    ),
)

EXERCISES = ExerciseSet("nb01", "01 · Language models and MLE", [q1, q2, q3, q4])


def progress() -> None:
    """Print which exercises of notebook 01 passed in this session."""
    EXERCISES.progress()
