"""nb07 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch
from exercise_helpers import fails_with, passes, solution_function

from lmlab.exercises import nb07 as ex
from lmlab.exercises.nb07 import (min_p_variant, penalty_variant, ref_min_p_filter, ref_repetition_penalty,
                                  ref_top_k_filter)


def test_reference_min_p_by_hand():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isfinite(ref_min_p_filter(logits, 0.2)).tolist() == [True, True, True, False]  # 0.2 * 0.5 = 0.1
    assert torch.isfinite(ref_min_p_filter(logits, 0.7)).tolist() == [True, False, False, False]
    sure = torch.log(torch.tensor([0.9, 0.06, 0.04]))
    assert torch.isfinite(ref_min_p_filter(sure, 0.05)).tolist() == [True, True, False]  # threshold 0.045


def test_reference_penalty_lowers_seen_tokens_only():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    out = ref_repetition_penalty(logits, [0, 1, 1], 2.0)
    assert out.tolist() == [1.0, -2.0, 0.5, 3.0]
    assert logits.tolist() == [2.0, -1.0, 0.5, 3.0]  # the input is left alone
    probs_before, probs_after = torch.softmax(logits, 0), torch.softmax(out, 0)
    assert probs_after[0] < probs_before[0] and probs_after[1] < probs_before[1]


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_top_k_filter), (ex.q2, ref_min_p_filter),
                                              (ex.q3, ref_repetition_penalty)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


@pytest.mark.parametrize("exercise, name", [(ex.q1, "top_k_filter"), (ex.q2, "min_p_filter"),
                                            (ex.q3, "repetition_penalty")])
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
    fails_with(ex.q2, lambda lg, m: min_p_variant(lg, m, "absolute"), "scales it by the most likely")
    fails_with(ex.q2, lambda lg, m: min_p_variant(lg, m, "global max"), "per row")
    fails_with(ex.q2, lambda lg, m: min_p_variant(lg, m, "logits"), "Compare probabilities")
    fails_with(ex.q2, lambda lg, m: ref_min_p_filter(lg, m).nan_to_num(neginf=0.0), "set to 0")
    fails_with(ex.q2, lambda lg, m: torch.softmax(ref_min_p_filter(lg, m), -1), "probability distribution")
    fails_with(ex.q2, lambda lg, m: None, "forget a `return`")


def test_q3_typical_mistakes():
    fails_with(ex.q3, lambda lg, prev, pen: penalty_variant(lg, prev, pen, "divide all"), "MORE likely")
    fails_with(ex.q3, lambda lg, prev, pen: penalty_variant(lg, prev, pen, "per occurrence"), "once per occurrence")
    fails_with(ex.q3, lambda lg, prev, pen: None, "forget a `return`")
    fails_with(ex.q3, lambda lg, prev, pen: lg, "Your result")


@pytest.mark.parametrize("exercise", [ex.q1, ex.q2, ex.q3])
def test_stub_not_solved(exercise):
    def stub(*args):
        raise NotImplementedError("write your solution here")

    fails_with(exercise, stub, "Not yet solved")
