"""nb07 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch
from exercise_helpers import fails_with, passes, solution_function

from lmlab.exercises import nb07 as ex
from lmlab.exercises.nb07 import ref_distinct_n, ref_top_k_filter, ref_top_p_filter, top_p_variant


def test_reference_distinct_n_by_hand():
    assert ref_distinct_n([1, 2, 1, 2], 2) == pytest.approx(2 / 3)
    assert ref_distinct_n([5, 5, 5], 1) == pytest.approx(1 / 3)
    assert ref_distinct_n([7, 8], 3) == 0.0


def test_reference_top_p_keeps_crossing_token():
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    assert torch.isfinite(ref_top_p_filter(logits, 0.7)).tolist() == [False, True, True]
    assert torch.isfinite(ref_top_p_filter(logits, 0.4)).tolist() == [False, True, False]


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_top_k_filter), (ex.q2, ref_top_p_filter),
                                              (ex.q3, ref_distinct_n)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


@pytest.mark.parametrize("exercise, name", [(ex.q1, "top_k_filter"), (ex.q2, "top_p_filter"),
                                            (ex.q3, "distinct_n")])
def test_worked_solution_passes(exercise, name):
    result = exercise.evaluate(solution_function(exercise, name))
    assert result.passed, result.message


def test_q1_typical_mistakes():
    def keeps_k_plus_1(logits, k):
        kth = torch.topk(logits, min(k + 1, logits.size(-1)), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))

    def keeps_k_minus_1(logits, k):
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits <= kth, float("-inf"))

    def smallest(logits, k):
        kth = torch.topk(logits, k, dim=-1, largest=False).values[..., -1:]
        return logits.masked_fill(logits > kth, float("-inf"))

    def whole_tensor(logits, k):
        kth = torch.topk(logits.reshape(-1), k).values[-1]
        return logits.masked_fill(logits < kth, float("-inf"))

    def zeros(logits, k):
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, 0.0)

    def probabilities(logits, k):
        return torch.softmax(ref_top_k_filter(logits, k), dim=-1)

    fails_with(ex.q1, keeps_k_plus_1, "off-by-one")
    fails_with(ex.q1, keeps_k_minus_1, "must be kept")
    fails_with(ex.q1, smallest, "SMALLEST")
    fails_with(ex.q1, whole_tensor, "WHOLE tensor")
    fails_with(ex.q1, zeros, "set to 0")
    fails_with(ex.q1, probabilities, "probability distribution")


def test_q2_typical_mistakes():
    def unsorted_scatter(logits, p):  # decides in sorted order but forgets to map back
        sorted_logits, _ = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        return logits.masked_fill(probs.cumsum(-1) - probs >= p, float("-inf"))

    fails_with(ex.q2, lambda lg, p: top_p_variant(lg, p, include_crossing=False), "crosses p is removed")
    fails_with(ex.q2, lambda lg, p: top_p_variant(lg, p, sort=False), "vocabulary order")
    fails_with(ex.q2, unsorted_scatter, "scatter(-1, order")
    fails_with(ex.q2, lambda lg, p: ref_top_p_filter(lg, p).nan_to_num(neginf=0.0), "set to 0")
    fails_with(ex.q2, lambda lg, p: None, "forget a `return`")


def test_q3_typical_mistakes():
    def by_tokens(tokens, n):
        ngrams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        return len(set(ngrams)) / len(tokens) if ngrams else 0.0

    def missing_last(tokens, n):
        ngrams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n)]
        return len(set(ngrams)) / len(ngrams) if ngrams else 0.0

    def unigrams(tokens, n):
        return len(set(tokens)) / len(tokens)

    def count(tokens, n):
        return float(len({tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}))

    fails_with(ex.q3, by_tokens, "number of tokens")
    fails_with(ex.q3, missing_last, "last n-gram is missing")
    fails_with(ex.q3, unigrams, "distinct-1 whatever n is")
    fails_with(ex.q3, count, "number of distinct n-grams")


@pytest.mark.parametrize("exercise", [ex.q1, ex.q2, ex.q3])
def test_stub_not_solved(exercise):
    def stub(*args):
        raise NotImplementedError("write your solution here")

    fails_with(exercise, stub, "Not yet solved")
