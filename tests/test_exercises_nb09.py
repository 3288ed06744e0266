"""nb09 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmlab.exercises import nb09 as ex
from lmlab.exercises.nb09 import ref_loss_by_treatment, ref_mask_tokens, ref_whole_word_mask, word_mask_variant
from lmlab.models import mask_tokens as lmlab_mask_tokens
from exercise_helpers import fails_with, passes, solution_function


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_mask_tokens), (ex.q2, ref_loss_by_treatment)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_lmlab_mask_tokens_agrees_with_the_check_but_earns_nothing():
    def answer(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None):
        return lmlab_mask_tokens(idx, mask_token_id=mask_token_id, vocab_size=vocab_size, mask_prob=mask_prob,
                                 generator=generator)

    passes(ex.q1, answer)
    result = ex.q1.evaluate(answer)
    assert not result.passed and "lmlab.models.masked.mask_tokens" in result.message


def test_q1_all_mask():
    def answer(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None):
        selected = torch.rand(idx.shape, generator=generator) < mask_prob
        return torch.where(selected, mask_token_id, idx), torch.where(selected, idx, -100)

    fails_with(ex.q1, answer, "Every selected position became [MASK]")


def test_q1_labels_everywhere():
    def answer(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None):
        inputs, _ = ref_mask_tokens(idx, mask_token_id, vocab_size, mask_prob, generator)
        return inputs, idx.clone()

    fails_with(ex.q1, answer, "set the targets to -100")


def test_q1_targets_are_corrupted_inputs():
    def answer(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None):
        inputs, targets = ref_mask_tokens(idx, mask_token_id, vocab_size, mask_prob, generator)
        return inputs, torch.where(targets != -100, inputs, -100)

    fails_with(ex.q1, answer, "ORIGINAL ids")


def test_q1_two_independent_draws():
    def answer(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None):
        selected = torch.rand(idx.shape, generator=generator) < mask_prob
        to_mask = selected & (torch.rand(idx.shape, generator=generator) < 0.8)
        to_random = selected & ~to_mask & (torch.rand(idx.shape, generator=generator) < 0.1)
        rnd = torch.randint(0, vocab_size, idx.shape, generator=generator)
        inputs = torch.where(to_mask, mask_token_id, torch.where(to_random, rnd, idx))
        return inputs, torch.where(selected, idx, -100)

    fails_with(ex.q1, answer, "ONE uniform draw")


def test_q1_ignores_mask_prob():
    fails_with(ex.q1, lambda idx, m, v, p=0.15, g=None: ref_mask_tokens(idx, m, v, 0.15, g), "mask_prob is ignored")


def test_q1_ignores_generator():
    fails_with(ex.q1, lambda idx, m, v, p=0.15, g=None: ref_mask_tokens(idx, m, v, p, None), "generator=generator")


def test_q1_stub_and_none():
    def mask_tokens(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None):
        raise NotImplementedError("Exercise q1: write your solution here")

    fails_with(ex.q1, mask_tokens, "Not yet solved")
    fails_with(ex.q1, lambda *a: None, "forget a `return`")


def _by_kind(logits, inputs, targets, mask_token_id, unchanged_by=None):
    """Per-kind mean losses written out (not calling the reference); `unchanged_by` changes the 'unchanged' rule."""
    V = logits.size(-1)
    losses = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none", ignore_index=-100)
    losses = losses.view(targets.shape)
    selected, shown_mask = targets != -100, inputs == mask_token_id
    unchanged = inputs == targets if unchanged_by is None else unchanged_by(inputs, targets)
    kinds = [selected & shown_mask, selected & ~shown_mask & ~unchanged, selected & unchanged]
    return [losses[k].mean() for k in kinds]


def test_q2_a_right_answer_passes_as_tensors_or_floats():
    passes(ex.q2, _by_kind)
    passes(ex.q2, lambda *a: tuple(float(x) for x in _by_kind(*a)))


def test_q2_the_mean_over_every_selected_position_is_named():
    def answer(logits, inputs, targets, mask_token_id):
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return loss, loss, loss

    fails_with(ex.q2, answer, "mean over every selected position")


def test_q2_order_and_swapped_kinds():
    fails_with(ex.q2, lambda *a: _by_kind(*a)[::-1], "wrong order")
    fails_with(ex.q2, lambda *a: [_by_kind(*a)[i] for i in (0, 2, 1)], "wrong order")


def test_q2_unchanged_read_from_the_wrong_tensor():
    # 'unchanged' taken as "not [MASK]": random replacements counted as unchanged
    answer = lambda *a: _by_kind(*a, unchanged_by=lambda i, t: i != a[3])  # noqa: E731
    fails_with(ex.q2, answer, "differs")


def test_q2_shape_of_the_answer_and_stub():
    fails_with(ex.q2, lambda *a: _by_kind(*a)[:2], "Return three numbers")

    def loss_by_treatment(logits, inputs, targets, mask_token_id):
        raise NotImplementedError

    fails_with(ex.q2, loss_by_treatment, "Not yet solved")


def test_q2_cases_hold_every_kind():
    for case in ex._Q2_CASES:
        logits, inputs, targets, mask_id = ex._q2_case(*case)
        selected = targets != -100
        assert (selected & (inputs == mask_id)).any() and (selected & (inputs == targets)).any()
        assert (selected & (inputs != mask_id) & (inputs != targets)).any() and (~selected).any()


def test_whole_word_mask_hand_example():
    idx, word_ids = torch.tensor([7, 8, 9, 10, 11]), torch.tensor([0, 0, 1, 2, 2])
    inputs, targets = ref_whole_word_mask(idx, word_ids, [0, 2], mask_token_id=99)
    assert inputs.tolist() == [99, 99, 9, 99, 99] and targets.tolist() == [7, 8, -100, 10, 11]
    assert idx.tolist() == [7, 8, 9, 10, 11]


def test_q3_reference_and_solution_pass():
    passes(ex.q3, ref_whole_word_mask)
    passes(ex.q3, solution_function(ex.q3, "whole_word_mask"))


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(first_piece_only=True), "Only the first token"),
    (dict(inverted_targets=True), "wrong way round"),
    (dict(masked_targets=True), "ORIGINAL ids"),
])
def test_q3_typical_mistakes(kwargs, fragment):
    fails_with(ex.q3, lambda idx, w, c, m: word_mask_variant(idx, w, c, m, **kwargs), fragment)


def test_q3_in_place_change_and_wrong_return_fail():
    def in_place(idx, word_ids, chosen, mask_token_id):
        targets = idx.clone()
        idx[torch.isin(word_ids, torch.tensor(chosen))] = mask_token_id
        return idx, targets

    fails_with(ex.q3, in_place, "changed its input `idx` in place")
    fails_with(ex.q3, lambda idx, w, c, m: ref_whole_word_mask(idx, w, c, m)[0], "pair of tensors")
