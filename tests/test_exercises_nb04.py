"""nb04 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations


import pytest
import torch
import torch.nn as nn

from lmlab.exercises import nb04 as ex
from lmlab.exercises.nb04 import (gru_case, gru_variant, lstm_case, lstm_variant, ref_clip_grad_norm,
                                  ref_gru_cell, ref_lstm_cell)
from exercise_helpers import fails_with, passes


def test_reference_matches_nn_lstmcell():
    x, h, c, W_ih, W_hh, b_ih, b_hh = lstm_case(3, 4, 5, 7)
    cell = nn.LSTMCell(4, 5)
    with torch.no_grad():
        cell.weight_ih.copy_(W_ih)
        cell.weight_hh.copy_(W_hh)
        cell.bias_ih.copy_(b_ih)
        cell.bias_hh.copy_(b_hh)
        h_t, c_t = cell(x, (h, c))
    h_r, c_r = ref_lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh)
    assert torch.allclose(h_r, h_t, atol=1e-6) and torch.allclose(c_r, c_t, atol=1e-6)


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_lstm_cell), (ex.q2, ref_gru_cell),
                                              (ex.q3, ref_clip_grad_norm)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


@pytest.mark.parametrize("order", ["ifog", "figo", "iofg"])
def test_q1_wrong_gate_order(order):
    fails_with(ex.q1, lambda *a: lstm_variant(*a, order=order), "order i, f, g, o")


def test_q1_missing_tanh_on_c():
    fails_with(ex.q1, lambda *a: lstm_variant(*a, tanh_c=False), "o * tanh(c_new)")


def test_q1_sigmoid_candidate():
    fails_with(ex.q1, lambda *a: lstm_variant(*a, g_act="sigmoid"), "candidate g uses tanh")


def test_q1_swapped_outputs():
    fails_with(ex.q1, lambda *a: ref_lstm_cell(*a)[::-1], "swapped")


def test_q1_returns_none_or_one_tensor():
    fails_with(ex.q1, lambda *a: None, "forget a `return`")
    fails_with(ex.q1, lambda *a: ref_lstm_cell(*a)[0], "tuple (h_new, c_new)")


def test_q1_stub_not_solved():
    def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
        raise NotImplementedError("Exercise q1: write your solution here")

    fails_with(ex.q1, lstm_cell, "Not yet solved")


def test_reference_gru_matches_nn_grucell():
    x, h, W_ih, W_hh, b_ih, b_hh = gru_case(3, 4, 5, 7)
    cell = nn.GRUCell(4, 5)
    with torch.no_grad():
        cell.weight_ih.copy_(W_ih)
        cell.weight_hh.copy_(W_hh)
        cell.bias_ih.copy_(b_ih)
        cell.bias_hh.copy_(b_hh)
        expected = cell(x, h)
    assert torch.allclose(ref_gru_cell(x, h, W_ih, W_hh, b_ih, b_hh), expected, atol=1e-6)


def test_q2_typical_mistakes():
    fails_with(ex.q2, lambda *a: gru_variant(*a, swap_update=True), "z and 1 - z are swapped")
    fails_with(ex.q2, lambda *a: gru_variant(*a, reset_bias_inside=False), "not its bias b_hn")
    fails_with(ex.q2, lambda *a: gru_variant(*a, order="zrn"), "order z, r, n")
    fails_with(ex.q2, lambda *a: (ref_gru_cell(*a), a[1]), "one tensor h_new")

    def summed_like_lstm(x, h, W_ih, W_hh, b_ih, b_hh):
        i_r, i_z, i_n = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(3, dim=1)
        z = torch.sigmoid(i_z)
        return (1 - z) * torch.tanh(i_n) + z * h

    fails_with(ex.q2, summed_like_lstm, "ignores the reset gate")


def test_reference_clip_matches_clip_grad_norm_():
    params = [nn.Parameter(torch.zeros(3, 4)), nn.Parameter(torch.zeros(5))]
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=g) * 3 for p in params]
    for p, grad in zip(params, grads):
        p.grad = grad.clone()
    nn.utils.clip_grad_norm_(params, 1.0)
    for p, clipped in zip(params, ref_clip_grad_norm(grads, 1.0)):
        assert torch.allclose(p.grad, clipped, atol=1e-6)
    small = [t * 1e-3 for t in grads]
    assert all(torch.equal(a, b) for a, b in zip(ref_clip_grad_norm(small, 1.0), small))


def test_q3_typical_mistakes():
    def per_tensor(grads, max_norm):
        return [g * min(1.0, max_norm / (g.norm().item() + 1e-6)) for g in grads]

    def scales_up(grads, max_norm):
        total = torch.sqrt(sum((g ** 2).sum() for g in grads)).item()
        return [g * max_norm / total for g in grads]

    def no_sqrt(grads, max_norm):
        total = sum((g ** 2).sum() for g in grads).item()
        return [g * min(1.0, max_norm / total) for g in grads]

    def in_place(grads, max_norm):
        total = torch.sqrt(sum((g ** 2).sum() for g in grads)).item()
        for g in grads:
            g.mul_(min(1.0, max_norm / total))
        return grads

    fails_with(ex.q3, per_tensor, "its own norm")
    fails_with(ex.q3, scales_up, "scaled UP")
    fails_with(ex.q3, no_sqrt, "square root")
    fails_with(ex.q3, lambda grads, m: [g.clamp(-m, m) for g in grads], "clip_grad_value_")
    fails_with(ex.q3, in_place, "in place")
    fails_with(ex.q3, lambda grads, m: None, "forget a `return`")


def test_q3_torch_clip_earns_nothing():
    def clip_grad_norm(grads, max_norm):
        params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return [p.grad for p in params]

    result = ex.q3.evaluate(clip_grad_norm)
    assert not result.passed and "no points" in result.message, result.message
