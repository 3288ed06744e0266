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
- q2 ``interpolated_probs(ids, vocab_size: int, lam: float) -> Tensor (V, V)``: linear interpolation of the
  bigram table with the unigram distribution, ``lam * P_bigram[a, b] + (1 - lam) * p_unigram[b]``, where
  ``P_bigram`` is q1's table and ``p_unigram[b] = count(b) / len(ids)`` counts every token of ``ids``.
- q3 ``perplexity(ce_nats: float) -> float``: ``exp(ce_nats)``.
- q4 ``entropy_rate(P: Tensor (V, V)) -> float``: the entropy rate, in nats per token, of the Markov chain with
  transition table ``P`` (all entries > 0): ``sum_a pi(a) sum_b -P[a, b] ln P[a, b]`` with ``pi`` the
  stationary distribution (``pi P = pi``, ``sum pi = 1``).

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
    as_ids,
    bigram_counts,
    check_table_type,
    count_table,
    diagnose_probs,
    ref_bigram_probs,
    ref_entropy_rate,
    ref_interpolated_probs,
    ref_stationary,
    show_ids,
    tables_close,
    transitions,
)

__all__ = ["q1", "q2", "q3", "q4", "EXERCISES", "progress", "ref_bigram_probs", "ref_interpolated_probs",
           "ref_stationary", "ref_entropy_rate", "bigram_counts"]

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
# q2 interpolated_probs

_Q2_CASES: list[tuple[Any, int, float]] = [
    ([0, 1, 2, 0, 1, 1], 3, 0.5),
    ([0, 1, 0, 1, 0], 4, 0.7),  # tokens 2 and 3 never appear: their columns get 0 from the unigram too
    ([2, 0, 0, 1, 3, 0], 4, 0.25),  # 3 is followed by 0 once; the unigram of 0 is 3/6
    (torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(3)), 5, 0.9),
    ([1, 2, 1, 0, 2, 2, 1], 3, 1.0),  # lam = 1: q1's table
    ([1, 2, 1, 0, 2, 2, 1], 3, 0.0),  # lam = 0: every row is the unigram distribution
]


def _q2_hidden(rng: random.Random) -> list[tuple[Any, int, float]]:
    cases = []
    for _ in range(3):
        V = rng.randint(3, 7)
        cases.append((_random_ids(rng, V, rng.randint(5, 40), rng.random() < 0.5), V, rng.choice([0.2, 0.55, 0.85])))
    return cases


def _diagnose_interpolated(got64: torch.Tensor, ids: Any, V: int, lam: float, fail: Any) -> None:
    bigram = ref_bigram_probs(ids, V).double()
    seq = as_ids(ids)
    counts = torch.bincount(torch.tensor(seq), minlength=V).double()
    if 0 < lam < 1 and tables_close(got64, ref_interpolated_probs(ids, V, 1 - lam)):
        raise fail("The weights are swapped: lam multiplies the bigram table and (1 - lam) the unigram "
                   "distribution, so that lam = 1 gives back q1's table.")
    for name, part in (("ids[1:]", counts - torch.bincount(torch.tensor(seq[:1]), minlength=V)),
                       ("ids[:-1]", counts - torch.bincount(torch.tensor(seq[-1:]), minlength=V))):
        if lam < 1 and tables_close(got64, lam * bigram + (1 - lam) * part / part.sum()):
            raise fail(f"Your unigram distribution counts only {name}; the question counts every token of ids: "
                       f"p_unigram[b] = count(b) / len(ids).")
    if lam < 1 and tables_close(got64, lam * bigram + (1 - lam) * counts):
        raise fail("The unigram part is counts, not probabilities: divide by len(ids) so that it sums to 1 "
                   "(then every row of the result sums to 1).")
    if lam < 1 and tables_close(got64, lam * bigram + (1 - lam) / V):
        raise fail("This mixes the bigram table with the uniform distribution 1/V. Interpolation here uses the "
                   "unigram distribution, count(b) / len(ids): frequent tokens get more.")
    if torch.isnan(got64).any():
        raise fail("Your table contains NaN: a row of the bigram table with no data is 0/0. Make such rows "
                   "uniform (as in q1) before mixing.")


def _check_interpolated_probs(fn: Any, timeout: float, cases: list[tuple[Any, int, float]]) -> None:
    for ids, V, lam in cases:
        shown = f"ids={show_ids(ids)}, vocab_size={V}, lam={lam:g}"
        arg = ids.clone() if isinstance(ids, torch.Tensor) else list(ids)
        got = call_safely(fn, arg, V, lam, timeout=timeout, show_input=shown)
        got64 = check_table_type(got, V, "interpolated_probs", shown)
        expected = ref_interpolated_probs(ids, V, lam)
        if tables_close(got64, expected):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got.float())
        with diagnosing():
            _diagnose_interpolated(got64, ids, V, lam, fail)
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="The result of `interpolated_probs`",
                        show_input=shown)


q2 = Exercise(
    name="q2",
    title="interpolated_probs(ids, vocab_size, lam)",
    points=2,
    prompt=(
        "Add-k smoothing (section 5) gives every unseen pair the same small probability. Interpolation gives "
        "it what a simpler model predicts instead. Write `interpolated_probs(ids, vocab_size, lam)` that returns "
        "a float tensor of shape (V, V): P[a, b] = lam * P_bigram[a, b] + (1 - lam) * p_unigram[b], where "
        "P_bigram is the MLE bigram table of q1 (rows with no data uniform) and p_unigram[b] = count(b) / "
        "len(ids) counts every token of `ids`. `lam` is between 0 and 1; every row must sum to 1."
    ),
    checker=_check_interpolated_probs,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    forbidden=("lmlab.models.ngram.NGramLM.fit", "lmlab.exercises.nb01_tables.ref_interpolated_probs"),
    hints=[
        "Two tables, then a weighted sum. The bigram table is q1's answer; the unigram distribution is one "
        "vector of V probabilities, the same for every context a.",
        "unigram = torch.bincount(torch.as_tensor(ids), minlength=vocab_size) / len(ids) has shape (V,). Adding "
        "a (V,) vector to a (V, V) table adds it to every row (broadcasting).",
        "return lam * bigram + (1 - lam) * unigram[None, :]  — each row is a mixture of two distributions, so it "
        "still sums to 1.",
    ],
    solution_code='''\
def interpolated_probs(ids, vocab_size, lam):
    ids = torch.as_tensor(ids)
    counts = torch.zeros(vocab_size, vocab_size)                     # (V, V) bigram counts
    counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), accumulate=True)
    totals = counts.sum(dim=1, keepdim=True)                         # (V, 1)
    bigram = torch.where(totals > 0, counts / totals.clamp_min(1), torch.full_like(counts, 1 / vocab_size))
    unigram = torch.bincount(ids, minlength=vocab_size) / len(ids)   # (V,) every token counted once
    return lam * bigram + (1 - lam) * unigram[None, :]               # (V, V): each row a mixture
''',
    explanation=(
        "A mixture of two distributions is a distribution: lam * (a row summing to 1) + (1 - lam) * (a vector "
        "summing to 1) sums to lam + 1 - lam = 1. Where the bigram saw nothing (a pair never seen), the unigram "
        "still gives the next token its overall frequency, so common tokens stay likely after any context, "
        "which add-k cannot do: it gives every unseen pair the same k / (c(a) + kV). This is Jelinek-Mercer "
        "interpolation; in practice lam is chosen on validation text (like k), and with more levels (trigram, "
        "bigram, unigram) the weights can depend on how often the context was seen."
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
# q4 entropy_rate


def _chain(V: int, seed: int, concentration: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (-torch.log(torch.rand(V, V, generator=g, dtype=torch.float64))) ** (1 / concentration)  # (V, V) > 0
    return x / x.sum(dim=1, keepdim=True)


_Q4_CASES: list[torch.Tensor] = [
    torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=torch.float64),  # pi = (5/6, 1/6): not uniform
    torch.full((4, 4), 0.25, dtype=torch.float64),  # every row uniform: ln 4
    _chain(3, 0),
    _chain(5, 1, concentration=0.3),  # peaked rows, a far from uniform pi
    _chain(4, 2).float(),  # float32 input
]


def _q4_hidden(rng: random.Random) -> list[torch.Tensor]:
    return [_chain(rng.randint(2, 7), rng.randrange(2**31), rng.choice([0.3, 1.0, 3.0])) for _ in range(3)]


def _row_entropies(P: torch.Tensor) -> torch.Tensor:
    return -(P * P.log()).sum(dim=1)  # (V,) entropy of each row in nats


def _diagnose_entropy_rate(got: float, P: torch.Tensor, expected: float, fail: Any) -> None:
    near = number_near(got, rtol=1e-4, atol=1e-6)
    H_rows, pi = _row_entropies(P), ref_stationary(P)
    if near(expected / math.log(2)):
        raise fail("This looks like bits (log base 2); the question asks for nats: use the natural log.")
    if near(-expected):
        raise fail("The sign is flipped: an entropy is -sum p ln p, which is >= 0.")
    if near(H_rows.mean()):
        raise fail("You averaged the rows' entropies with equal weights. Weight row a by pi(a), how often the "
                   "chain is in state a: the stationary distribution, with pi P = pi.")
    one_step = P.sum(dim=0) / P.shape[0]  # pi after one step from uniform: a start, not the answer
    if near((one_step * H_rows).sum()):
        raise fail("Your pi is the distribution after ONE step from the uniform start (the column means). The "
                   "stationary distribution is where repeated steps end: repeat pi = pi @ P until it stops "
                   "changing, or solve pi P = pi.")
    if near(-(pi * pi.log()).sum()):
        raise fail("This is the entropy of pi itself, H(pi). The entropy RATE is the uncertainty of the NEXT "
                   "token given the current one: sum_a pi(a) * H(P[a]), the row entropies weighted by pi.")
    right = _row_entropies(P.T)  # columns taken as rows
    if near((ref_stationary(P.T / P.T.sum(1, keepdim=True)) * right).sum()) or near((pi * right).sum()):
        raise fail("Rows and columns are swapped: P[a, b] = p(b | a), so row a is the distribution after a; "
                   "its entropy is -(P[a] * P[a].log()).sum().")


def _check_entropy_rate(fn: Any, timeout: float, cases: list[torch.Tensor]) -> None:
    for P in cases:
        V = P.shape[0]
        shown = f"P = a ({V}, {V}) {str(P.dtype).replace('torch.', '')} table: {[[round(x, 4) for x in r] for r in P.tolist()]}"
        got = as_number(call_safely(fn, P.clone(), timeout=timeout, show_input=shown), "entropy_rate",
                        show_input=shown)
        expected = ref_entropy_rate(P)
        if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        with diagnosing():
            _diagnose_entropy_rate(got, P.double(), expected, fail)
        compare_numbers(expected, got, rtol=1e-4, atol=1e-6, name="Your entropy rate", show_input=shown)


q4 = Exercise(
    name="q4",
    title="entropy_rate(P)",
    points=2,
    prompt=(
        "Section 3 used `src.entropy_rate()`, the floor no model beats in expectation. Compute it yourself from "
        "the transition table alone. Write `entropy_rate(P)` that returns, as a float in nats, the entropy rate "
        "of the Markov chain with transition table P (shape (V, V), P[a, b] = p(b | a), every entry > 0): "
        "H = sum over a of pi(a) * sum over b of -P[a, b] ln P[a, b], where pi is the stationary distribution: "
        "the probability vector with pi P = pi (how often, in the long run, the chain is in state a)."
    ),
    checker=_check_entropy_rate,
    cases=_Q4_CASES,
    hidden=_q4_hidden,
    forbidden=("lmlab.data.synthetic.MarkovSource.entropy_rate", "lmlab.exercises.nb01_tables.ref_entropy_rate",
               "lmlab.exercises.nb01_tables.ref_stationary"),
    hints=[
        "Two parts: the entropy of each row (a vector of V numbers), and the weights pi. The entropy of row a is "
        "-(P[a] * P[a].log()).sum(); all rows at once: -(P * P.log()).sum(dim=1).",
        "pi is a fixed point: start from the uniform vector and apply pi = pi @ P (one step of the chain) until it "
        "stops changing; a few hundred steps are plenty here. (Or: pi is the left eigenvector of P for "
        "eigenvalue 1.) Work in float64.",
        "P = P.double(); pi = torch.full((V,), 1 / V, dtype=torch.float64); repeat pi = pi @ P; pi = pi / pi.sum(); "
        "then "
        "return (pi * -(P * P.log()).sum(dim=1)).sum().item()",
    ],
    solution_code='''\
def entropy_rate(P):
    P = P.double()
    V = P.shape[0]
    pi = torch.full((V,), 1.0 / V, dtype=torch.float64)   # any start works: the chain forgets it
    for _ in range(10_000):
        new = pi @ P                                      # one step of the chain
        new = new / new.sum()                             # keep it a distribution (rounding)
        if (new - pi).abs().sum() < 1e-14:
            break
        pi = new
    row_entropy = -(P * P.log()).sum(dim=1)               # (V,) H(next | current = a)
    return (pi * row_entropy).sum().item()                # nats per token
''',
    explanation=(
        "The entropy rate is the average uncertainty of the next token given the current one. Given a, the "
        "next token is drawn from row a, with entropy H(P[a]); in a long text the chain is in state a a share "
        "pi(a) of the time, so the average is sum_a pi(a) H(P[a]). pi is the stationary distribution: if the "
        "current token has distribution pi, so does the next one, pi P = pi. Repeating pi <- pi P converges to "
        "it from any start when every entry of P is positive (the Perron-Frobenius theorem). Averaging the rows "
        "with equal weights is a common mistake: rows of frequent states count more."
    ),
)

EXERCISES = ExerciseSet("nb01", "01 · Language models and MLE", [q1, q2, q3, q4])
progress = EXERCISES.progress
