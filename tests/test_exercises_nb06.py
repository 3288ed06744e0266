"""nb06 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch

from lmlab.exercises import nb06 as ex
from lmlab.exercises.nb06 import block_parts, count_variant, ref_block_forward, ref_count_params, wrong_blocks
from lmlab.models import GPT, GPTConfig
from lmlab.models.gpt import Block
from exercise_helpers import fails_with, passes


@pytest.mark.parametrize("config", ex.q1.cases + ex.q1.hidden_cases(0))
def test_reference_count_matches_the_model(config):
    model = GPT(config)
    assert ref_count_params(config) == sum(p.numel() for p in model.parameters())
    assert ref_count_params(config) == model.num_params(non_embedding=False)


def test_reference_block_matches_lmlab_block():
    cfg = GPTConfig(vocab_size=2, block_size=16, n_layer=1, n_head=2, n_embd=8)
    block = Block(cfg).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        expected, _, _ = block(x)
        got = ref_block_forward(x, block.ln_1, lambda z: block.attn(z)[0], block.ln_2, block.mlp)
    assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_count_params), (ex.q2, ref_block_forward)])
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


@pytest.mark.parametrize("index, fragment", [
    (0, "post-LayerNorm"),
    (1, "residual connections are missing"),
    (2, "first residual connection"),
    (3, "second residual connection"),
    (4, "normalized input was added back"),
    (5, "parallel"),
    (6, "wrong order"),
    (7, "swapped"),
])
def test_q2_typical_mistakes(index, fragment):
    wrong, _ = wrong_blocks()[index]
    fails_with(ex.q2, wrong, fragment)


def test_q2_wrong_blocks_differ_from_the_reference():
    parts = block_parts(16, 2, 0)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        expected = ref_block_forward(x, *parts)
        for wrong, message in wrong_blocks():
            assert not torch.allclose(wrong(x, *parts), expected, atol=1e-3), message


def test_q2_returns_none_and_wrong_shape():
    fails_with(ex.q2, lambda x, l1, a, l2, m: None, "forget a `return`")
    fails_with(ex.q2, lambda x, l1, a, l2, m: ref_block_forward(x, l1, a, l2, m)[0], "shape")


def test_q2_stub_not_solved():
    def block_forward(x, ln_1, attn, ln_2, mlp):
        raise NotImplementedError("Exercise q2: write your solution here")

    fails_with(ex.q2, block_forward, "Not yet solved")
