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
import random
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
    diagnosing,
    number_near,
)

from lmlab.exercises.nb01_tables import (
    bigram_counts,
    check_table_type,
    count_table,
    diagnose_add_k,
    diagnose_probs,
    ref_add_k_probs,
    ref_bigram_probs,
    ref_cross_entropy,
    show_ids,
    tables_close,
    transitions,
)

__all__ = ["q1", "q2", "q3", "q4", "EXERCISES", "progress", "ref_bigram_probs", "ref_cross_entropy",
           "ref_add_k_probs", "bigram_counts"]

RTOL, ATOL = 1e-4, 1e-6

# ----------------------------------------------------------------------------------------------------
# q1 bigram_probs

_Q1_CASES: list[tuple[Any, int]] = [
    ([0, 1, 2, 0, 1, 1], 3),  # every token is a context
    ([0, 1, 0, 1, 0], 4),  # tokens 2 and 3 never appear: uniform rows
    ([2, 0, 0, 1, 3], 4),  # 3 appears only at the end: its row is uniform too
    (torch.randint(0, 5, (60,), generator=torch.Generator().manual_seed(1)), 5),  # a LongTensor
    ([1], 3),  # a single token: no transitions at all
    ([0, 1, 0, 2, 0, 1, 1], 3),  # row 0 is 2/3, 1/3: a ratio that is not a whole number of halves
]


def _random_ids(rng: random.Random, V: int, n: int, as_tensor: bool) -> Any:
    ids = [rng.randrange(V - 1) for _ in range(n)]  # the last id never occurs: its row is uniform
    return torch.tensor(ids) if as_tensor else ids


def _q1_hidden(rng: random.Random) -> list[tuple[Any, int]]:
    sizes = [(rng.randint(3, 7), rng.randint(8, 40)) for _ in range(3)] + [(rng.randint(2, 4), 1)]
    return [(_random_ids(rng, V, n, rng.random() < 0.5), V) for V, n in sizes]


def _check_bigram_probs(fn: Any, timeout: float, cases: list[tuple[Any, int]]) -> None:
    for ids, V in cases:
        shown = f"ids={show_ids(ids)}, vocab_size={V}"
        arg = ids.clone() if isinstance(ids, torch.Tensor) else list(ids)
        got = call_safely(fn, arg, V, timeout=timeout, show_input=shown)
        expected = ref_bigram_probs(ids, V)
        got64 = check_table_type(got, V, "bigram_probs", shown, counts=count_table(transitions(ids), V))
        if tables_close(got64, expected):
            continue
        with diagnosing():
            diagnose_probs(got64, expected, ids, V, "bigram_probs", shown)
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
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    forbidden=("lmlab.models.ngram.NGramLM.fit",),
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


def _q2_hidden(rng: random.Random) -> list[tuple[torch.Tensor, Any]]:
    cases = []
    for _ in range(3):
        V = rng.randint(2, 6)
        ids = [rng.randrange(V) for _ in range(rng.randint(2, 30))]
        cases.append((_softmax_table(V, rng.randrange(2**31)), torch.tensor(ids) if rng.random() < 0.5 else ids))
    return cases


def _check_cross_entropy(fn: Any, timeout: float, cases: list[tuple[torch.Tensor, Any]]) -> None:
    for probs, ids in cases:
        n = len(ids) - 1  # transitions
        table = "uniform 1/4" if bool((probs == 0.25).all()) else f"a {tuple(probs.shape)} table"
        shown = f"probs={table}, ids={show_ids(ids)}"
        arg = ids.clone() if isinstance(ids, torch.Tensor) else list(ids)
        got = as_number(call_safely(fn, probs.clone(), arg, timeout=timeout, show_input=shown),
                        "cross_entropy", show_input=shown)
        expected = ref_cross_entropy(probs, ids)
        if math.isclose(got, expected, rel_tol=RTOL, abs_tol=ATOL):
            continue
        near = number_near(got, rtol=RTOL, atol=ATOL)
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
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
    cases=_Q2_CASES,
    hidden=_q2_hidden,
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


def _q3_hidden(rng: random.Random) -> list[float]:
    return [round(rng.uniform(0.05, 6.0), 4) for _ in range(3)]


def _check_perplexity(fn: Any, timeout: float, cases: list[float]) -> None:
    for ce in cases:
        shown = f"ce_nats={ce:.6g}"
        got = as_number(call_safely(fn, ce, timeout=timeout, show_input=shown), "perplexity", show_input=shown)
        expected = math.exp(ce)
        if math.isclose(got, expected, rel_tol=RTOL, abs_tol=ATOL):
            continue
        near = number_near(got, rtol=RTOL, atol=ATOL)
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
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
    cases=_Q3_CASES,
    hidden=_q3_hidden,
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


def _q4_hidden(rng: random.Random) -> list[tuple[Any, int, float]]:
    cases = []
    for _ in range(3):
        V = rng.randint(3, 7)
        cases.append((_random_ids(rng, V, rng.randint(5, 40), rng.random() < 0.5), V, rng.choice([0.05, 0.3, 0.7, 1.5])))
    return cases


def _check_add_k_probs(fn: Any, timeout: float, cases: list[tuple[Any, int, float]]) -> None:
    for ids, V, k in cases:
        shown = f"ids={show_ids(ids)}, vocab_size={V}, k={k:g}"
        arg = ids.clone() if isinstance(ids, torch.Tensor) else list(ids)
        got = call_safely(fn, arg, V, k, timeout=timeout, show_input=shown)
        got64 = check_table_type(got, V, "add_k_probs", shown)
        expected = ref_add_k_probs(ids, V, k)
        counts = count_table(transitions(ids), V).double()
        seen = counts.sum(dim=1) > 0
        if k == 0:
            # 0/0 rows are undefined with k = 0: only the rows with data must match plain MLE.
            if tables_close(got64[seen], expected[seen].double()):
                continue
            raise CheckFailed(
                "With k = 0, add-k smoothing is plain maximum likelihood: on the rows that have data it must "
                "equal bigram_probs (q1). (Rows with no data are 0/0 here; any value is accepted.)",
                input=shown, expected=expected, got=got.float(),
            )
        if tables_close(got64, expected):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got.float())
        with diagnosing():
            diagnose_add_k(got64, counts, k, V, fail)
            diagnose_probs(got64, expected, ids, V, "add_k_probs", shown)
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
    cases=_Q4_CASES,
    hidden=_q4_hidden,
    forbidden=("lmlab.models.ngram.NGramLM.fit",),
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
progress = EXERCISES.progress
