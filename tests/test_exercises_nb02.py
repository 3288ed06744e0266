"""Exercises of notebook 02 (lmlab.exercises.nb02): references and worked solutions pass, typical
mistakes fail with a specific explanation."""

from __future__ import annotations


import pytest
import torch

from lmlab.exercises import exercise_set
from lmlab.exercises import nb02 as ex
from lmlab.exercises.nb02 import ref_sgd_step, ref_softmax_grad
from exercise_helpers import fails_with, passes


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_softmax_grad), (ex.q2, ref_sgd_step)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_reference_matches_autograd():
    logits = torch.randn(7, 5, requires_grad=True)
    targets = torch.randint(0, 5, (7,))
    torch.nn.functional.cross_entropy(logits, targets).backward()
    assert torch.allclose(ref_softmax_grad(logits.detach(), targets), logits.grad, atol=1e-6)


def _sum_not_mean(logits, targets):
    return torch.softmax(logits, dim=1) - torch.nn.functional.one_hot(targets, logits.shape[1])


def _wrong_axis(logits, targets):
    return (torch.softmax(logits, dim=0) - torch.nn.functional.one_hot(targets, logits.shape[1])) / len(targets)


@pytest.mark.parametrize(
    "exercise, fn, expected_text",
    [
        (ex.q1, _sum_not_mean, "divide by N"),
        (ex.q1, _wrong_axis, "wrong axis"),
        (ex.q2, lambda p, g, lr: p + lr * g, "stepped uphill"),
        (ex.q2, lambda p, g, lr: p - g, "learning rate is missing"),
    ],
)
def test_typical_mistakes(exercise, fn, expected_text):
    result = fails_with(exercise, fn, expected_text, "input:")
    assert result.points == 0


def test_in_place_update_is_reported():
    def in_place(p, g, lr):
        p -= lr * g
        return p

    result = ex.q2.evaluate(in_place)
    assert not result.passed and "in place" in result.message


def test_registry():
    assert exercise_set("nb02") is ex.EXERCISES
