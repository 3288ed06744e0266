"""Exercises of notebook 02 (lmlab.exercises.nb02): references and worked solutions pass, typical
mistakes fail with a specific explanation."""

from __future__ import annotations


import pytest
import torch

from lmlab.exercises import exercise_set
from lmlab.exercises import nb02 as ex
from lmlab.exercises.nb02 import ref_l2_step, ref_momentum_run, ref_softmax_grad
from exercise_helpers import fails_with, passes


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_softmax_grad), (ex.q2, ref_l2_step),
                                              (ex.q3, ref_momentum_run)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_reference_matches_autograd():
    logits = torch.randn(7, 5, requires_grad=True)
    targets = torch.randint(0, 5, (7,))
    torch.nn.functional.cross_entropy(logits, targets).backward()
    assert torch.allclose(ref_softmax_grad(logits.detach(), targets), logits.grad, atol=1e-6)


def _damped(p, gs, lr, mu):
    v = torch.zeros_like(p)
    for g in gs:
        v = mu * v + (1 - mu) * g
        p = p - lr * v
    return p


def _update_first(p, gs, lr, mu):
    v = torch.zeros_like(p)
    for g in gs:
        p = p - lr * v
        v = mu * v + g
    return p


def _sum_not_mean(logits, targets):
    return torch.softmax(logits, dim=1) - torch.nn.functional.one_hot(targets, logits.shape[1])


def _wrong_axis(logits, targets):
    return (torch.softmax(logits, dim=0) - torch.nn.functional.one_hot(targets, logits.shape[1])) / len(targets)


@pytest.mark.parametrize(
    "exercise, fn, expected_text",
    [
        (ex.q1, _sum_not_mean, "divide by N"),
        (ex.q1, _wrong_axis, "wrong axis"),
        (ex.q2, lambda p, g, lr, lam: p - lr * (g + lam * p), "factor 2 is missing"),
        (ex.q2, lambda p, g, lr, lam: p - lr * g, "plain SGD step"),
        (ex.q2, lambda p, g, lr, lam: (1 - 2 * lam) * p - lr * g, "scaled by the learning rate"),
        (ex.q2, lambda p, g, lr, lam: p - lr * (g - 2 * lam * p), "wrong sign"),
        (ex.q3, lambda p, gs, lr, mu: ref_momentum_run(p, gs, lr, 0.0), "velocity is missing"),
        (ex.q3, _damped, "dampening"),
        (ex.q3, _update_first, "OLD velocity"),
    ],
)
def test_typical_mistakes(exercise, fn, expected_text):
    result = fails_with(exercise, fn, expected_text, "input:")
    assert result.points == 0


def test_in_place_update_is_reported():
    def in_place(p, g, lr, lam):
        p -= lr * (g + 2 * lam * p)
        return p

    result = ex.q2.evaluate(in_place)
    assert not result.passed and "in place" in result.message


@pytest.mark.parametrize("lr, mu", [(0.1, 0.9), (0.5, 0.0)])
def test_momentum_reference_is_torch_optim(lr, mu):
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(5, generator=g)
    grads = [torch.randn(5, generator=g) for _ in range(6)]
    w = p0.clone().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=lr, momentum=mu)
    for grad in grads:
        w.grad = grad.clone()
        opt.step()
    assert torch.allclose(ref_momentum_run(p0, grads, lr, mu), w.detach(), atol=1e-6)


def test_using_torch_optim_earns_nothing():
    def momentum_run(params, grads, lr, mu):
        w = params.clone().requires_grad_(True)
        opt = torch.optim.SGD([w], lr=lr, momentum=mu)
        for g in grads:
            w.grad = g.clone()
            opt.step()
        return w.detach()

    result = ex.q3.evaluate(momentum_run)
    assert not result.passed and "torch.optim.SGD.step" in result.message


def test_registry():
    assert exercise_set("nb02") is ex.EXERCISES
