"""nb05 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch
from exercise_helpers import fails_with, passes

from lmlab.attention import causal_mask, scaled_dot_product_attention
from lmlab.exercises import nb05 as ex
from lmlab.exercises.nb05 import attention_case, attention_variant, ref_attention, ref_causal_mask, ref_split_heads


@pytest.mark.parametrize("case", ex.q1.cases + ex.q1.hidden_cases(0))
def test_reference_matches_lmlab_attention(case):
    (q, k, v, mask), _ = attention_case(*case)
    out_r, w_r = ref_attention(q, k, v, mask)
    out_l, w_l = scaled_dot_product_attention(q, k, v, mask)
    assert torch.allclose(out_r, out_l, atol=1e-5) and torch.allclose(w_r, w_l, atol=1e-6)


def test_reference_causal_mask_matches_lmlab():
    for T in (0, 1, 5):
        assert torch.equal(ref_causal_mask(T), causal_mask(T))


def test_reference_split_heads_matches_multi_head_layout():
    x = torch.arange(2 * 3 * 8.0).view(2, 3, 8)
    y = ref_split_heads(x, 4)
    assert y.shape == (2, 4, 3, 2)
    assert torch.equal(y[1, 2, 0], x[1, 0, 4:6])  # head 2 of token 0 in row 1: channels 4, 5


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_attention), (ex.q2, ref_causal_mask),
                                              (ex.q3, ref_split_heads)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_q1_lmlab_function_agrees_with_the_check_but_earns_nothing():
    def attention(q, k, v, mask=None):
        return scaled_dot_product_attention(q, k, v, mask)

    passes(ex.q1, attention)  # the check's reference and lmlab agree
    result = ex.q1.evaluate(attention)  # but lmlab's own attention is not an answer
    assert not result.passed and "calls `lmlab.attention.scaled_dot_product_attention`" in result.message


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(scale="none"), "not scaled"),
    (dict(scale="d_k"), "divided by d_k"),
    (dict(softmax_dim=-2), "over the queries"),
    (dict(transpose_scores=True), "scores are transposed"),
    (dict(invert_mask=True), "mask is inverted"),
])
def test_q1_typical_mistakes(kwargs, fragment):
    fails_with(ex.q1, lambda q, k, v, mask=None: attention_variant(q, k, v, mask, **kwargs), fragment)


def test_q1_mask_ignored():
    fails_with(ex.q1, lambda q, k, v, mask=None: attention_variant(q, k, v), "masked-out positions get a nonzero weight")


def test_q1_swapped_and_missing_return():
    fails_with(ex.q1, lambda q, k, v, mask=None: ref_attention(q, k, v, mask)[::-1], "swapped")
    fails_with(ex.q1, lambda q, k, v, mask=None: None, "forget a `return`")
    fails_with(ex.q1, lambda q, k, v, mask=None: ref_attention(q, k, v, mask)[0], "tuple (out, weights)")


def test_q1_stub_not_solved():
    def attention(q, k, v, mask=None):
        raise NotImplementedError("Exercise q1: write your solution here")

    fails_with(ex.q1, attention, "Not yet solved")


def test_q2_typical_mistakes():
    fails_with(ex.q2, lambda T: ~ref_causal_mask(T), "inverted")
    fails_with(ex.q2, lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upper-triangular")
    fails_with(ex.q2, lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "diagonal is False")
    fails_with(ex.q2, lambda T: torch.ones(T, T).tril(), "must be boolean")


def test_q2_stub_not_solved():
    def causal_mask(T):
        raise NotImplementedError

    fails_with(ex.q2, causal_mask, "Not yet solved")


def test_q3_typical_mistakes():
    def view_only(x, n_head):
        B, T, C = x.shape
        return x.view(B, n_head, T, C // n_head)

    def no_transpose(x, n_head):
        B, T, C = x.shape
        return x.view(B, T, n_head, C // n_head)

    def interleaved(x, n_head):
        B, T, C = x.shape
        return x.view(B, T, C // n_head, n_head).permute(0, 3, 1, 2)

    fails_with(ex.q3, view_only, "wrong place", "transpose(1, 2)")
    fails_with(ex.q3, no_transpose, "(B, T, nh, hs)")
    fails_with(ex.q3, interleaved, "interleaved")


def test_q3_stub_not_solved():
    def split_heads(x, n_head):
        raise NotImplementedError

    fails_with(ex.q3, split_heads, "Not yet solved")
