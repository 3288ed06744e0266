"""Self-checking exercises (lmlab.exercises): the nb01 checks on right and typical wrong answers, robustness
against whatever a learner passes, hints, solutions, progress and the grade file.

Everything here runs in-process and fast; notebooks and kernels are exercised in tests/test_course.py.
"""

from __future__ import annotations

import math
import sys
import threading
import time

import pytest
import torch

from lmlab.exercises import exercise_set
from lmlab.exercises import nb01 as ex
from lmlab.exercises.core import CheckFailed, compare_tensors, unwatched
from lmlab.exercises.nb01 import ref_bigram_probs, ref_entropy_rate, ref_interpolated_probs, ref_stationary
from exercise_helpers import fails_with, passes, solution_function


def counts_from_pairs(pairs, V):
    """count(a -> b) for a list of (a, b) pairs, written here so that the wrong answers call no check code."""
    counts = torch.zeros(V, V)
    for a, b in pairs:
        counts[a, b] += 1
    return counts


def counts_of(ids, V):
    seq = [int(i) for i in ids]
    return counts_from_pairs(list(zip(seq[:-1], seq[1:])), V)


# ---------------------------------------------------------------------------------------------------
# Right answers pass: the references and the worked solutions the learners are shown


@pytest.mark.parametrize(
    "exercise, answer",
    [
        (ex.q1, ref_bigram_probs),
        (ex.q2, ref_interpolated_probs),
        (ex.q3, math.exp),
        (ex.q4, ref_entropy_rate),
    ],
)
def test_reference_passes(exercise, answer):
    result = passes(exercise, answer)
    assert result.message.startswith(f"✓ {exercise.name}")


@pytest.mark.parametrize(
    "exercise, name",
    [(ex.q1, "bigram_probs"), (ex.q2, "interpolated_probs"), (ex.q3, "perplexity"), (ex.q4, "entropy_rate")],
)
def test_worked_solution_passes(exercise, name):
    result = exercise.evaluate(solution_function(exercise, name))
    assert result.passed, result.message


def test_loop_solution_with_float64_and_tensor_ids_passes():
    def bigram_probs(ids, vocab_size):
        ids = [int(i) for i in ids]
        P = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)
        for a, b in zip(ids[:-1], ids[1:]):
            P[a, b] += 1
        for a in range(vocab_size):
            total = P[a].sum()
            P[a] = P[a] / total if total > 0 else 1.0 / vocab_size
        return P

    assert ex.q1.evaluate(bigram_probs).passed


# ---------------------------------------------------------------------------------------------------
# Typical wrong answers get a specific message


def _colnorm(ids, V):
    c = counts_of(ids, V)
    return c / c.sum(0, keepdim=True).clamp_min(1)


def _rows_nan(ids, V):
    c = counts_of(ids, V)
    return c / c.sum(1, keepdim=True)


def _rows_zero(ids, V):
    c = counts_of(ids, V)
    return c / c.sum(1, keepdim=True).clamp_min(1)


def _from_pairs(pairs_fn):
    def fn(ids, V):
        seq = [int(i) for i in ids]
        c = counts_from_pairs(pairs_fn(seq), V)
        t = c.sum(1, keepdim=True)
        return torch.where(t > 0, c / t.clamp_min(1), torch.full_like(c, 1 / V))

    return fn


Q1_WRONG = {
    "columns": (_colnorm, "columns sum to 1 instead of your rows"),
    "self-pairs": (_from_pairs(lambda s: list(zip(s, s))), "paired with itself"),
    "skip-first": (_from_pairs(lambda s: list(zip(s[1:-1], s[2:]))), "first transition (ids[0] -> ids[1]) seems to be missing"),
    "nan-rows": (_rows_nan, "are NaN"),
    "zero-rows": (_rows_zero, "are all zeros"),
    "counts": (counts_of, "look like counts, not probabilities"),
    "int-counts": (lambda ids, V: counts_of(ids, V).long(), "look like counts, not probabilities"),
}


@pytest.mark.parametrize("case", sorted(Q1_WRONG))
def test_q1_typical_mistakes(case):
    fn, expected_text = Q1_WRONG[case]
    result = fails_with(ex.q1, fn)
    assert result.points == 0
    assert expected_text in result.message
    assert "input:" in result.message and "ids=" in result.message
    assert "ex.q1.hint()" in result.message


def _mix(bigram_of, unigram_of):
    """An interpolation built from a bigram table and a unigram vector, both computed here."""
    def fn(ids, V, lam):
        return lam * bigram_of(ids, V) + (1 - lam) * unigram_of([int(i) for i in ids], V)[None, :]

    return fn


def _unigram(seq, V):
    return torch.bincount(torch.tensor(seq), minlength=V).float() / len(seq)


def _bigram(ids, V):
    c = counts_of(ids, V)
    t = c.sum(1, keepdim=True)
    return torch.where(t > 0, c / t.clamp_min(1), torch.full_like(c, 1 / V))


Q2_WRONG = {
    "swapped": (lambda ids, V, lam: _mix(_bigram, _unigram)(ids, V, 1 - lam), "weights are swapped"),
    "unigram-of-next": (_mix(_bigram, lambda s, V: _unigram(s[1:], V)), "counts only ids[1:]"),
    "unigram-counts": (_mix(_bigram, lambda s, V: torch.bincount(torch.tensor(s), minlength=V).float()),
                       "counts, not probabilities"),
    "uniform": (_mix(_bigram, lambda s, V: torch.full((V,), 1 / V)), "uniform distribution 1/V"),
    "nan-rows": (_mix(lambda ids, V: counts_of(ids, V) / counts_of(ids, V).sum(1, keepdim=True), _unigram), "NaN"),
}


@pytest.mark.parametrize("case", sorted(Q2_WRONG))
def test_q2_typical_mistakes(case):
    fn, expected_text = Q2_WRONG[case]
    result = fails_with(ex.q2, fn, expected_text, "input:", "lam=")
    assert result.points == 0


def test_q2_is_q1_at_lam_one_and_the_unigram_at_lam_zero():
    ids = [0, 2, 1, 1, 2, 0, 0]
    assert torch.allclose(ref_interpolated_probs(ids, 3, 1.0).float(), ref_bigram_probs(ids, 3))
    assert torch.allclose(ref_interpolated_probs(ids, 3, 0.0).float(), torch.tensor([3 / 7, 2 / 7, 2 / 7]).expand(3, 3))


@pytest.mark.parametrize(
    "fn, expected_text",
    [
        (lambda ce: 2**ce, "This is 2 ** ce"),
        (lambda ce: 1 / ce, "This is 1 / ce"),
        (lambda ce: math.exp(-ce), "exp(-ce), the inverse"),
        (lambda ce: ce * 3.0 + 1.0, "Your perplexity is 5.15888, but it should be 4"),
    ],
)
def test_q3_typical_mistakes(fn, expected_text):
    result = ex.q3.evaluate(fn)
    assert not result.passed
    assert expected_text in result.message


def _rows_h(P):
    P = P.double()
    return -(P * P.log()).sum(1)


def _power_pi(P, steps):
    pi = torch.full((P.shape[0],), 1 / P.shape[0], dtype=torch.float64)
    for _ in range(steps):
        pi = pi @ P.double()
    return pi


Q4_WRONG = {
    "equal-weights": (lambda P: _rows_h(P).mean().item(), "equal weights"),
    "one-step": (lambda P: (_power_pi(P, 1) * _rows_h(P)).sum().item(), "ONE step"),
    "entropy-of-pi": (lambda P: -(_power_pi(P, 500) * _power_pi(P, 500).log()).sum().item(), "entropy of pi itself"),
    "bits": (lambda P: (_power_pi(P, 500) * _rows_h(P)).sum().item() / math.log(2), "bits"),
    "sign": (lambda P: -(_power_pi(P, 500) * _rows_h(P)).sum().item(), "sign is flipped"),
    "columns": (lambda P: (_power_pi(P, 500) * _rows_h(P.T)).sum().item(), "Rows and columns are swapped"),
}


@pytest.mark.parametrize("case", sorted(Q4_WRONG))
def test_q4_typical_mistakes(case):
    fn, expected_text = Q4_WRONG[case]
    fails_with(ex.q4, fn, expected_text, "input:")


def test_q4_reference_is_the_markov_sources_entropy_rate():
    from lmlab.data import MarkovSource

    src = MarkovSource("abcde", order=1, seed=3)
    assert ref_entropy_rate(src.transition_matrix) == pytest.approx(src.entropy_rate(), rel=1e-9)
    pi = ref_stationary(src.transition_matrix)
    assert torch.allclose(pi, src.stationary, atol=1e-10)
    two = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    assert ref_stationary(two).tolist() == pytest.approx([5 / 6, 1 / 6])


def test_q4_calling_the_sources_method_earns_nothing():
    from lmlab.data import MarkovSource

    def entropy_rate(P):
        src = MarkovSource("ab", order=1)
        src.transition_matrix = P.double()
        src.stationary = src._stationary()
        return src.entropy_rate()

    result = ex.q4.evaluate(entropy_rate)
    assert not result.passed and "MarkovSource.entropy_rate" in result.message


# ---------------------------------------------------------------------------------------------------
# Robustness: whatever the learner passes, the check explains instead of crashing


@pytest.mark.parametrize(
    "answer, expected_text",
    [
        (None, "received None instead of your function `bigram_probs`"),
        ("bigram_probs", "received a str ('bigram_probs')"),
        (42, "received an int (42)"),
        (torch.ones(3, 3), "received a torch.Tensor (shape (3, 3), torch.float32). Did you pass the result"),
    ],
)
def test_wrong_kind_of_object(answer, expected_text):
    result = ex.q1.evaluate(answer)
    assert not result.passed
    assert expected_text in result.message


def test_not_yet_solved_stub_and_ellipsis():
    def bigram_probs(ids, vocab_size):
        raise NotImplementedError("Exercise q1: write your solution here")

    stub = ex.q1.evaluate(bigram_probs)
    assert not stub.passed
    assert "Not yet solved: replace the `raise NotImplementedError(...)` in `bigram_probs`" in stub.message
    assert "Traceback" not in stub.message
    assert "Not yet solved" in ex.q3.evaluate(...).message


def test_exception_in_learner_code_is_reported_with_input_and_their_frames_only():
    def helper(ids):
        return torch.zeros(2)[len(ids) + 5]  # raises IndexError inside torch

    def bigram_probs(ids, vocab_size):
        return helper(ids)

    result = ex.q1.evaluate(bigram_probs)
    assert not result.passed
    assert "`bigram_probs` raised IndexError: index" in result.message
    assert "input:    ids=[0, 1, 2, 0, 1, 1], vocab_size=3" in result.message
    assert "in bigram_probs" in result.message and "in helper" in result.message
    assert "return torch.zeros(2)[len(ids) + 5]" in result.message
    assert "core.py" not in result.message and "site-packages" not in result.message


@pytest.mark.parametrize(
    "fn, expected_text",
    [
        (lambda ids, V: torch.zeros(V), "returned a tensor of shape (3,); it should have shape (V, V) = (3, 3)"),
        (lambda ids, V: [[1 / V] * V] * V, "returned a list; it should return a torch.Tensor of shape (3, 3)"),
        (lambda ids, V: None, "returned None. Did you forget a `return` statement?"),
        (lambda ids, V: torch.full((V, V), float("nan")), "NaN"),
    ],
)
def test_wrong_return_values(fn, expected_text):
    result = ex.q1.evaluate(fn)
    assert not result.passed
    assert expected_text in result.message


@pytest.mark.parametrize(
    "value, expected_text",
    [
        ("1.2", "returned a str; it should return a single number"),
        (torch.ones(3), "returned a tensor of shape (3,); it should return a single number"),
        (float("nan"), "is NaN"),
        (None, "returned None"),
    ],
)
def test_q4_wrong_return_types(value, expected_text):
    result = ex.q4.evaluate(lambda P: value)
    assert not result.passed
    assert expected_text in result.message


def test_q4_accepts_a_zero_dim_tensor():
    passes(ex.q4, lambda P: torch.tensor(ref_entropy_rate(P)))


def test_a_hanging_function_is_stopped_after_the_time_limit():
    def bigram_probs(ids, vocab_size):
        while True:
            pass

    start = time.monotonic()
    result = ex.q1.evaluate(bigram_probs, timeout=1.0)
    elapsed = time.monotonic() - start
    assert not result.passed
    assert "`bigram_probs` did not finish within 1 s" in result.message
    assert "keeps running" not in result.message  # on the main thread it is really interrupted
    assert elapsed < 5


def test_time_limit_off_the_main_thread_abandons_the_worker_and_says_so():
    release = threading.Event()

    def perplexity(ce):
        release.wait(30)
        return math.exp(ce)

    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", ex.q3.evaluate(perplexity, timeout=0.5)))
    t.start()
    t.join(10)
    release.set()
    assert "did not finish within 0.5 s" in box["r"].message
    assert "keeps running in the background" in box["r"].message


def test_printing_megabytes_is_captured_and_truncated():
    def bigram_probs(ids, vocab_size):
        print("x" * 1_000_000)
        return ref_bigram_probs(ids, vocab_size)

    stdout = sys.stdout
    with unwatched():
        result = ex.q1.evaluate(bigram_probs)
    assert sys.stdout is stdout
    assert result.passed
    printed = len(ex.q1.cases) * 1_000_001  # one line per case: a million x and a newline
    assert f"Your code printed {printed:,} characters during the check; the first 500 are shown" in result.message
    assert len(result.message) < 1500


def test_check_prints_deterministic_feedback_and_returns_none(capsys):
    assert ex.q3.check(lambda ce: 2**ce) is None
    first = capsys.readouterr().out
    ex.q3.check(lambda ce: 2**ce)
    assert capsys.readouterr().out == first
    assert first.startswith("✗ q3 · perplexity(ce_nats): not yet right.\n")
    assert "0x" not in first  # no memory addresses


# ---------------------------------------------------------------------------------------------------
# Hints, solutions, progress


def test_hint_ladder(capsys):
    for n in (1, 2, 3):
        ex.q2.hint()
        out = capsys.readouterr().out
        assert out.startswith(f"Hint {n} of 3 for q2: {ex.q2.hints[n - 1]}")
    ex.q2.hint()
    assert "No more hints for q2" in capsys.readouterr().out
    ex.q2.hint(2)
    assert capsys.readouterr().out.startswith("Hint 2 of 3 for q2:")
    ex.q2.hint(7)
    assert "q2 has hints 1 to 3" in capsys.readouterr().out
    for exercise in ex.EXERCISES:
        assert len(exercise.hints) == 3


def test_solution_shows_code_and_explanation(capsys):
    ex.q4.solution()
    out = capsys.readouterr().out
    assert out.startswith("Worked solution for q4: entropy_rate(P)")
    assert "    def entropy_rate(P):" in out
    assert "\nWhy: The entropy rate is the average uncertainty" in out


def test_progress(capsys):
    with unwatched():
        ex.q1.check(ref_bigram_probs)
    ex.q2.check(lambda ids, V, lam: torch.zeros(V, V))
    capsys.readouterr()
    ex.progress()
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "01 · Language models and MLE: 1 of 4 exercises passed, 2/7 points."
    assert "✓ q1" in out and "✗ q2" in out and "· q3" in out and "not checked yet" in out
    assert exercise_set("nb01") is ex.EXERCISES


# ---------------------------------------------------------------------------------------------------
# The comparison helper


def test_compare_tensors_explains_shape_dtype_nan_and_values():
    e = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    with pytest.raises(CheckFailed, match=r"has shape \(2,\), but it should have shape \(2, 2\)"):
        compare_tensors(e, torch.ones(2))
    with pytest.raises(CheckFailed, match="dtype torch.int64, but a floating-point tensor is expected"):
        compare_tensors(e, torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(CheckFailed, match=r"1 NaN value\(s\).*first at \[1, 0\]"):
        compare_tensors(e, torch.tensor([[0.5, 0.5], [float("nan"), 0.75]]))
    with pytest.raises(CheckFailed) as info:
        compare_tensors(e, torch.tensor([[0.5, 0.5], [0.25, 0.70]]), show_input="x=1")
    text = info.value.explain()
    assert "1 of 4 values off; the largest difference is 0.05 at [1, 1]: expected 0.75, got 0.7" in text
    assert "input:    x=1" in text
    compare_tensors(e, e.double() * (1 + 1e-6))  # within rtol: no error
