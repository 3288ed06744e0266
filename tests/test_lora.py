"""lmlab.lora: zero-initialised adapters leave the model unchanged, parameter counts, merging, and peft parity."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn

from lmlab.lora import LoRALinear, add_lora, count_trainable, lora_param_count, merge_lora
from lmlab.models import GPT, GPTConfig


def _gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16))


def _randomize_b(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            with torch.no_grad():
                m.lora_B.weight.copy_(torch.randn(m.lora_B.weight.shape, generator=g) * 0.1)


def test_zero_init_equals_base():
    base = nn.Linear(16, 48)
    layer = LoRALinear(base, r=4, alpha=8)
    x = torch.randn(3, 5, 16)
    assert torch.equal(layer(x), base(x))
    assert layer.lora_A.weight.abs().sum() > 0  # A is random, B is zero
    gpt = _gpt()
    idx = torch.randint(0, 20, (2, 10))
    before = gpt(idx)[0]
    add_lora(gpt, r=4, alpha=8)
    assert torch.equal(gpt(idx)[0], before)


def test_trainable_count_formula():
    gpt = _gpt()
    C, L, r = 16, 2, 4
    add_lora(gpt, r=r, alpha=8)
    expected = L * (lora_param_count(C, 3 * C, r) + lora_param_count(C, C, r))
    assert count_trainable(gpt) == expected == L * r * (4 * C + 2 * C)
    assert lora_param_count(128, 384, 4) == 2048
    assert all(("lora_" in n) == p.requires_grad for n, p in gpt.named_parameters())


def test_only_adapters_get_gradients():
    gpt = add_lora(_gpt(), r=2, alpha=4)
    _randomize_b(gpt)
    idx = torch.randint(0, 20, (2, 8))
    gpt(idx, idx)[1].backward()
    for n, p in gpt.named_parameters():
        assert (p.grad is not None) == ("lora_" in n), n


def test_merge_equals_unmerged_forward():
    gpt = add_lora(_gpt(), r=4, alpha=8)
    _randomize_b(gpt)
    idx = torch.randint(0, 20, (2, 10))
    with torch.no_grad():
        unmerged = gpt(idx)[0]
        merge_lora(gpt)
        merged = gpt(idx)[0]
    assert not any(isinstance(m, LoRALinear) for m in gpt.modules())
    assert torch.allclose(merged, unmerged, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(4, 4), r=0)
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(4, 4, 1), r=2)
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(_gpt(), targets=("nothing",))


def test_matches_peft():
    peft = pytest.importorskip("peft")
    from lmlab.interop import to_hf

    gpt = _gpt()
    hf = to_hf(gpt, eos_id=0).eval()
    add_lora(gpt, r=4, alpha=8)
    _randomize_b(gpt)
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, fan_in_fan_out=True,
                             target_modules=["attn.c_attn", "attn.c_proj"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fan_in_fan_out notice for GPT-2's Conv1D
        peft_model = peft.get_peft_model(hf, config)
    ours = {n: m for n, m in gpt.named_modules() if isinstance(m, LoRALinear)}
    copied = 0
    for n, p in peft_model.named_parameters():
        if "lora_" in n:
            key = n.removeprefix("base_model.model.").split(".lora_")[0]
            with torch.no_grad():
                p.copy_(ours[key].lora_A.weight if ".lora_A." in n else ours[key].lora_B.weight)
            copied += 1
    assert copied == 2 * len(ours)
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert trainable == count_trainable(gpt)
    gpt.eval()
    idx = torch.randint(0, 20, (2, 10))
    with torch.no_grad():
        assert torch.allclose(gpt(idx)[0], peft_model(idx).logits, atol=1e-5)
