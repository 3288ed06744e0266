"""lmlab.attention against PyTorch's own attention (F.scaled_dot_product_attention, nn.MultiheadAttention)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlab.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention


def _qkv(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=dtype) for _ in range(3)]


def _random_mask(*shape, seed=1):
    """A random boolean mask (True = may attend) with at least one True per row."""
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(*shape, generator=g) < 0.5
    m[..., 0] = True
    return m


def test_causal_mask_is_lower_triangular():
    expected = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    assert torch.equal(causal_mask(3), expected)
    assert causal_mask(0).shape == (0, 0)


@pytest.mark.parametrize("mask_kind", ["none", "causal", "random", "broadcast"])
def test_sdpa_matches_torch(mask_kind):
    q, k, v = _qkv(2, 3, 5, 8)
    mask = {"none": None, "causal": causal_mask(5), "random": _random_mask(2, 3, 5, 5),
            "broadcast": _random_mask(2, 1, 1, 5)}[mask_kind]
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # bool mask: True = take part, same as ours
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))
    if mask is not None:
        assert (w[~mask.expand_as(w)] == 0).all()


def test_sdpa_scale_cross_lengths_and_float32():
    q = torch.randn(4, 3, 16)
    k = torch.randn(4, 7, 16)
    v = torch.randn(4, 7, 5)
    out, w = scaled_dot_product_attention(q, k, v, scale=0.3)
    assert out.shape == (4, 3, 5) and w.shape == (4, 3, 7)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=0.3), atol=1e-5, rtol=0)


def test_sdpa_fully_masked_row_gives_zeros():
    q, k, v = _qkv(1, 3, 4)
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.equal(w[:, 1], torch.zeros(1, 3, dtype=torch.float64))
    assert torch.equal(out[:, 1], torch.zeros(1, 4, dtype=torch.float64))
    assert not out.isnan().any()


def test_sdpa_rejects_bad_masks_and_shapes():
    q, k, v = _qkv(2, 4, 8)
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, torch.ones(4, 4))
    with pytest.raises(ValueError, match="d_k"):
        scaled_dot_product_attention(q, k[..., :3], v)


def _copy_to_torch_mha(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(ours.d_model, ours.n_heads, batch_first=True, dtype=ours.qkv.weight.dtype)
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ref.eval()


@pytest.mark.parametrize("mask_kind", ["none", "causal", "padding", "causal+padding"])
def test_multihead_attention_matches_torch(mask_kind):
    torch.manual_seed(0)
    B, T, C, nh = 3, 6, 16, 4
    causal = "causal" in mask_kind
    ours = MultiHeadAttention(C, nh, causal=causal).double().eval()
    nn.init.normal_(ours.qkv.bias)  # non-zero biases so they are checked too
    ref = _copy_to_torch_mha(ours)
    x = torch.randn(B, T, C, dtype=torch.float64)
    pad = torch.ones(B, T, dtype=torch.bool)  # True = real token
    pad[0, 4:] = False
    pad[2, 5:] = False
    mask = pad[:, None, None, :] if "padding" in mask_kind else None
    # nn.MultiheadAttention's boolean masks mean the opposite: True = masked out.
    kw = {}
    if "padding" in mask_kind:
        kw["key_padding_mask"] = ~pad
    if causal:
        kw["attn_mask"] = ~causal_mask(T)

    out, w = ours(x, mask, need_weights=True)
    ref_out, ref_w = ref(x, x, x, need_weights=True, average_attn_weights=False, **kw)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(w, ref_w, atol=1e-10, rtol=0)
    _, ref_avg = ref(x, x, x, need_weights=True, average_attn_weights=True, **kw)
    torch.testing.assert_close(w.mean(1), ref_avg, atol=1e-10, rtol=0)

    fast, none = ours(x, mask)  # F.scaled_dot_product_attention path
    assert none is None
    torch.testing.assert_close(fast, out, atol=1e-10, rtol=0)


def test_fast_path_equals_slow_path_float32():
    torch.manual_seed(1)
    mha = MultiHeadAttention(32, 4, causal=True).eval()
    x = torch.randn(2, 9, 32)
    slow, _ = mha(x, need_weights=True)
    fast, _ = mha(x)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_causal_attention_ignores_the_future():
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 2, causal=True).eval()
    x = torch.randn(1, 8, 16)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 3, 16)
    for need_weights in (False, True):
        a, _ = mha(x, need_weights=need_weights)
        b, _ = mha(x2, need_weights=need_weights)
        torch.testing.assert_close(a[:, :5], b[:, :5], atol=1e-6, rtol=0)
        assert not torch.allclose(a[:, 5:], b[:, 5:])
    _, w = mha(x, need_weights=True)
    assert (w.triu(diagonal=1) == 0).all()


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match=r"not divisible.*try n_heads in \[4, 8, 2\]"):
        MultiHeadAttention(128, 6)
    mha = MultiHeadAttention(16, 2)
    with pytest.raises(ValueError, match=r"mask\[:, None\]"):
        mha(torch.randn(2, 5, 16), torch.ones(2, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, T, 16\)"):
        mha(torch.randn(2, 5, 8))
