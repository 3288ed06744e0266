"""nb06 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch

from lmlab.exercises import nb06 as ex
from lmlab.exercises.nb06 import count_variant, dropout_case, ref_count_params, ref_dropout
from lmlab.models import GPT, GPTConfig
from exercise_helpers import fails_with, passes


@pytest.mark.parametrize("config", ex.q1.cases + ex.q1.hidden_cases(0))
def test_reference_count_matches_the_model(config):
    model = GPT(config)
    assert ref_count_params(config) == sum(p.numel() for p in model.parameters())
    assert ref_count_params(config) == model.num_params(non_embedding=False)


def test_reference_dropout_matches_nn_dropout():
    x, _ = dropout_case((50, 40), 0)
    torch.manual_seed(5)
    expected = torch.nn.functional.dropout(x, 0.3, training=True)
    got = ref_dropout(x, 0.3, (expected != 0).float())  # u >= p exactly where nn.Dropout kept the entry
    assert torch.allclose(got, expected)
    assert torch.equal(ref_dropout(x, 0.0, torch.rand_like(x)), x)
    assert torch.equal(ref_dropout(x, 1.0, torch.rand_like(x)), torch.zeros_like(x))


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_count_params), (ex.q2, ref_dropout)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_q1_sum_of_numel_passes():
    result = ex.q1.evaluate(lambda config: sum(p.numel() for p in GPT(config).parameters()))
    assert result.passed, result.message


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(tied=False), "counted twice"),
    (dict(pos=False), "position embedding is missing"),
    (dict(linear_bias=False, ln_bias=False), "biases are missing"),
    (dict(linear_bias=False), "biases are missing"),
    (dict(ln_bias=False), "LayerNorms' biases are missing"),
    (dict(block_ln=False, final_ln=False), "LayerNorms are missing"),
    (dict(final_ln=False), "final LayerNorm"),
])
def test_q1_typical_mistakes(kwargs, fragment):
    fails_with(ex.q1, lambda config: count_variant(config, **kwargs), fragment)


def test_q1_biases_counted_without_bias():
    fails_with(ex.q1, lambda config: count_variant(config, linear_bias=True, ln_bias=True), "bias=False there are no biases")


def test_q1_state_dict_counts_tied_twice():
    fails_with(ex.q1, lambda config: sum(t.numel() for t in GPT(config).state_dict().values()), "counted twice")


def test_q1_num_params_default_leaves_out_positions():
    fails_with(ex.q1, lambda config: GPT(config).num_params(), "position embedding is missing", "num_params()")


def test_q1_returns_none():
    fails_with(ex.q1, lambda config: None, "returned None")


def test_q1_stub_not_solved():
    def count_params(config):
        raise NotImplementedError("Exercise q1: write your solution here")

    fails_with(ex.q1, count_params, "Not yet solved")


def test_q2_typical_mistakes():
    fails_with(ex.q2, lambda x, p, u: x * (u >= p), "not rescaled")
    fails_with(ex.q2, lambda x, p, u: x * (u >= p) * (1 - p), "DIVIDED")
    fails_with(ex.q2, lambda x, p, u: x * (u < p) / (1 - p) if p < 1 else x * 0, "Keep where u >= p")
    fresh_mask = lambda x, p, u: x * (torch.rand_like(x) >= p) / (1 - p) if p < 1 else x * 0  # noqa: E731
    fails_with(ex.q2, fresh_mask, "Use the given numbers u")
    fails_with(ex.q2, lambda x, p, u: x * (u >= p) / (1 - p) if p < 1 else x * 0 / 0.0, "0 / 0 = NaN")
    fails_with(ex.q2, lambda x, p, u: None, "forget a `return`")


def test_q2_nn_dropout_earns_nothing():
    result = ex.q2.evaluate(lambda x, p, u: torch.nn.functional.dropout(x, p, training=True))
    assert not result.passed


def test_q2_stub_not_solved():
    def dropout(x, p, u):
        raise NotImplementedError("Exercise q2: write your solution here")

    fails_with(ex.q2, dropout, "Not yet solved")
