"""nb04 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations


import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlab.exercises import nb04 as ex
from lmlab.exercises.nb04 import lstm_case, lstm_variant, ref_lm_loss, ref_lstm_cell
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


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_lstm_cell), (ex.q2, ref_lm_loss)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_lm_loss_transpose_solution_passes():
    result = ex.q2.evaluate(lambda logits, targets: F.cross_entropy(logits.transpose(1, 2), targets))
    assert result.passed, result.message


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


def test_q2_no_reshape():
    fails_with(ex.q2, lambda logits, targets: F.cross_entropy(logits, targets), "Flatten both first")


def test_q2_no_reshape_when_T_equals_V():
    # Only the T == V cases: the learner's function is right elsewhere, wrong silently there.
    def lm_loss(logits, targets):
        if logits.size(1) == logits.size(2):
            return F.cross_entropy(logits, targets)
        return ref_lm_loss(logits, targets)

    fails_with(ex.q2, lm_loss, "runs without an error but is wrong")


def test_q2_wrong_transpose():
    def lm_loss(logits, targets):
        V = logits.size(-1)
        return F.cross_entropy(logits.transpose(0, 1).reshape(-1, V), targets.reshape(-1))

    fails_with(ex.q2, lm_loss, "(T, B) order")


def test_q2_transposed_targets():
    def lm_loss(logits, targets):
        V = logits.size(-1)
        return F.cross_entropy(logits.reshape(-1, V), targets.T.reshape(-1))

    fails_with(ex.q2, lm_loss, "targets were transposed")


def test_q2_sum_and_sign():
    def summed(logits, targets):
        V = logits.size(-1)
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="sum")

    fails_with(ex.q2, summed, "sum over the")
    fails_with(ex.q2, lambda lg, tg: -ref_lm_loss(lg, tg), "sign is flipped")
