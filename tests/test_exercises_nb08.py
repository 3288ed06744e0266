"""nb08 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch

from lmlab.exercises import nb08 as ex
from lmlab.exercises.nb08 import (duplicate_variant, random_maps, ref_attention_rollout, ref_duplicate_token_score,
                                  ref_induction_score, rollout_variant, score_variant)
from lmlab.viz import attention_rollout
from exercise_helpers import fails_with, passes


def test_reference_rollout_matches_lmlab():
    maps = random_maps((3, 2, 6, 6), 5)
    torch.testing.assert_close(ref_attention_rollout(maps), attention_rollout(maps))


def test_reference_induction_score_hand_example():
    S, T = 3, 6
    perfect = torch.zeros(T, T)
    for i in range(T):
        perfect[i, i - S + 1 if i >= S else 0] = 1.0  # the second copy looks at the token after its previous occurrence
    assert ref_induction_score(perfect, S).item() == 1.0
    assert ref_induction_score(torch.eye(T), S).item() == 0.0
    batched = torch.stack([perfect, torch.eye(T)])  # (2, T, T) -> (2,)
    assert ref_induction_score(batched, S).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_attention_rollout), (ex.q2, ref_induction_score)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_q1_half_and_half_passes():
    def rollout(maps):
        R = torch.eye(maps.size(-1))
        for layer in maps:
            R = (0.5 * layer.mean(0) + 0.5 * torch.eye(maps.size(-1))) @ R
        return R

    result = ex.q1.evaluate(rollout)
    assert result.passed, result.message


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(residual=False), "identity for the residual"),
    (dict(renorm=False), "not renormalized"),
    (dict(order="right"), "wrong order"),
    (dict(heads="sum"), "heads are summed"),
])
def test_q1_typical_mistakes(kwargs, fragment):
    fails_with(ex.q1, lambda maps: rollout_variant(maps, **kwargs), fragment)


def test_q1_last_layer_only():
    fails_with(ex.q1, lambda maps: rollout_variant(maps[-1:]), "Only the last layer")


def test_q1_returns_none_and_stub():
    fails_with(ex.q1, lambda maps: None, "forget a `return`")

    def attention_rollout(maps):
        raise NotImplementedError("Exercise q1: write your solution here")

    fails_with(ex.q1, attention_rollout, "Not yet solved")


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(offset=0), "Off by one"),
    (dict(first=0), "first copy are included"),
    (dict(first=1), "first copy are included"),
    (dict(reduce="sum"), "sum over the"),
    (dict(transpose=True), "swapped"),
])
def test_q2_typical_mistakes(kwargs, fragment):
    fails_with(ex.q2, lambda attn, S: score_variant(attn, S, **kwargs), fragment)


def test_q2_float_for_one_head_passes_and_wrong_shape_fails():
    def as_float_when_single(attn, S):
        score = ref_induction_score(attn, S)
        return score.item() if score.dim() == 0 else score

    passes(ex.q2, as_float_when_single)
    fails_with(ex.q2, lambda attn, S: ref_induction_score(attn, S).mean(), "shape")


def test_q2_stub_not_solved():
    def induction_score(attn, seg_len):
        raise NotImplementedError("Exercise q2: write your solution here")

    fails_with(ex.q2, induction_score, "Not yet solved")


def test_reference_duplicate_token_score_hand_example():
    ids = torch.tensor([5, 6, 5, 7, 6])
    perfect = torch.zeros(5, 5)
    perfect[0, 0], perfect[1, 1], perfect[2, 0], perfect[3, 3], perfect[4, 1] = 1, 1, 1, 1, 1  # 2 -> 0, 4 -> 1
    assert ref_duplicate_token_score(perfect, ids).item() == 1.0  # queries 2 and 4 have earlier copies
    assert ref_duplicate_token_score(torch.eye(5), ids).item() == 0.0  # looking at itself is not a duplicate
    half = perfect.clone()
    half[4] = torch.tensor([0.0, 0.5, 0.5, 0.0, 0.0])
    assert ref_duplicate_token_score(torch.stack([perfect, half]), ids).tolist() == [1.0, 0.75]


def test_q3_reference_and_solution_pass():
    passes(ex.q3, ref_duplicate_token_score)
    namespace = {"torch": torch}
    exec(ex.q3.solution_code, namespace)
    passes(ex.q3, namespace["duplicate_token_score"])


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(include_self=True), "own position is counted"),
    (dict(prefix=True), "prefix-matching"),
    (dict(all_queries=True), "Every query is averaged"),
    (dict(reduce="sum"), "sum over the qualifying"),
    (dict(transpose=True), "swapped"),
])
def test_q3_typical_mistakes(kwargs, fragment):
    fails_with(ex.q3, lambda attn, ids: duplicate_variant(attn, ids, **kwargs), fragment)
