"""nb05 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch
from exercise_helpers import fails_with, passes

from lmlab.attention import causal_mask, scaled_dot_product_attention
from lmlab.exercises import nb05 as ex
from lmlab.exercises.nb05 import (attention_case, attention_variant, ref_attention, ref_causal_mask,
                                  ref_sliding_window_mask, ref_split_qkv)


@pytest.mark.parametrize("case", ex.q1.cases + ex.q1.hidden_cases(0))
def test_reference_matches_lmlab_attention(case):
    (q, k, v, mask), _ = attention_case(*case)
    out_r, w_r = ref_attention(q, k, v, mask)
    out_l, w_l = scaled_dot_product_attention(q, k, v, mask)
    assert torch.allclose(out_r, out_l, atol=1e-5) and torch.allclose(w_r, w_l, atol=1e-6)


def test_reference_causal_mask_matches_lmlab():
    for T in (0, 1, 5):
        assert torch.equal(ref_causal_mask(T), causal_mask(T))


def test_reference_split_qkv_matches_multi_head_layout():
    qkv = torch.arange(2 * 3 * 24.0).view(2, 3, 24)  # C = 8
    q, k, v = ref_split_qkv(qkv, 4)
    assert q.shape == k.shape == v.shape == (2, 4, 3, 2)
    assert torch.equal(q[1, 2, 0], qkv[1, 0, 4:6])  # head 2 of token 0 in row 1: channels 4, 5 of q
    assert torch.equal(v[1, 2, 0], qkv[1, 0, 20:22])  # ... and channels 16 + 4, 16 + 5 for v


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_attention), (ex.q2, ref_sliding_window_mask),
                                              (ex.q3, ref_split_qkv)])
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
    fails_with(ex.q2, lambda T, w: ~ref_sliding_window_mask(T, w), "Your mask is inverted")
    fails_with(ex.q2, lambda T, w: ref_sliding_window_mask(T, w).T, "Your mask is upper-triangular")
    fails_with(ex.q2, lambda T, w: ref_causal_mask(T), "plain causal mask")
    fails_with(ex.q2, lambda T, w: ref_sliding_window_mask(T, w + 1), "one key too many")
    fails_with(ex.q2, lambda T, w: ref_sliding_window_mask(T, w).float(), "must be boolean")
    fails_with(ex.q2, lambda T, w: ref_sliding_window_mask(T, w) & ~torch.eye(T, dtype=torch.bool), "diagonal")


def test_q2_feedback_never_calls_a_wrong_mask_right():
    """A triu answer is the learner's mask, described as what it is (never "The mask is upper-triangular")."""
    result = fails_with(ex.q2, lambda T, w: torch.ones(T, T, dtype=torch.bool).triu(), "Your mask")
    assert "The mask is upper-triangular" not in result.message


def test_q2_window_at_least_T_is_the_causal_mask():
    for T in (1, 3, 6):
        assert torch.equal(ref_sliding_window_mask(T, T), ref_causal_mask(T))
        assert torch.equal(ref_sliding_window_mask(T, T + 5), ref_causal_mask(T))
    assert ref_sliding_window_mask(5, 2).sum(1).tolist() == [1, 2, 2, 2, 2]


def test_q2_stub_not_solved():
    def sliding_window_mask(T, window):
        raise NotImplementedError

    fails_with(ex.q2, sliding_window_mask, "Not yet solved")


def test_q3_reference_matches_split_then_heads():
    qkv = torch.randn(2, 5, 3 * 12)
    q, k, v = ref_split_qkv(qkv, 3)
    for got, part in zip((q, k, v), qkv.split(12, dim=-1)):
        assert torch.equal(got, part.view(2, 5, 3, 4).transpose(1, 2))


def test_q3_typical_mistakes():
    def no_permute(qkv, n_head):
        B, T, C3 = qkv.shape
        return tuple(t.reshape(B, T, n_head, C3 // 3 // n_head) for t in qkv.split(C3 // 3, dim=-1))

    def per_head_layout(qkv, n_head):
        B, T, C3 = qkv.shape
        return tuple(qkv.view(B, T, n_head, 3, C3 // 3 // n_head).permute(3, 0, 2, 1, 4))

    def reshape_not_permute(qkv, n_head):
        B, T, C3 = qkv.shape
        return tuple(qkv.view(B, T, 3, n_head, C3 // 3 // n_head).permute(2, 0, 1, 3, 4).reshape(3, B, n_head, T, -1))

    fails_with(ex.q3, no_permute, "(B, T, nh, hs)")
    fails_with(ex.q3, per_head_layout, "(B, T, 3, nh, hs)")
    fails_with(ex.q3, reshape_not_permute, "wrong place")
    fails_with(ex.q3, lambda qkv, n: ref_split_qkv(qkv, n)[::-1], "order v, k, q")
    fails_with(ex.q3, lambda qkv, n: None, "forget a `return`")


def test_q3_stub_not_solved():
    def split_qkv(qkv, n_head):
        raise NotImplementedError

    fails_with(ex.q3, split_qkv, "Not yet solved")
