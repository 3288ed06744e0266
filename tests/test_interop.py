"""Tests for lmlab.interop: GPT <-> GPT2LMHeadModel and MaskedLM <-> BertForMaskedLM, offline.

Tiny models built from configs; folders written by save_pretrained in tmp_path stand in for the hub.
"""

import pytest
import torch
from transformers import BertForMaskedLM, GPT2Config, GPT2LMHeadModel, GPT2Model, LlamaConfig

from lmlab.generate import generate, generate_text
from lmlab.interop import HFModelAndTokenizer, from_hf, to_hf
from lmlab.models import GPT, LSTMLM, GPTConfig, MaskedLM, MaskedLMConfig
from lmlab.tokenizers import CharTokenizer

V = 23
TOL = 1e-4


def tiny_gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0) | kw
    return GPT(GPTConfig(**cfg)).eval()


def tiny_bert(seed: int = 0, **kw) -> MaskedLM:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16, pad_token_id=0, mask_token_id=1) | kw
    return MaskedLM(MaskedLMConfig(**cfg)).eval()


def ids(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def train_steps(model, loss_fn, steps: int = 3) -> None:
    """A few AdamW steps so weights move away from their (structured) initial values."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        x = ids(4, 12, seed=100 + step)
        loss = loss_fn(model, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


# ---------------------------------------------------------------------------------------------------
# GPT


def test_gpt_logits_agree_both_ways():
    model = tiny_gpt()
    x = ids(3, 16)
    hf = to_hf(model)
    assert isinstance(hf, GPT2LMHeadModel) and not hf.training
    assert hf.config.n_positions == 16 and hf.config.activation_function == "gelu_new"
    with torch.no_grad():
        ours = model(x)[0]
        assert (hf(x).logits - ours).abs().max() < TOL
        back = from_hf(hf)
        assert isinstance(back, GPT) and back.config == model.config
        assert (back(x)[0] - ours).abs().max() < TOL
    # the copy is independent: changing the HF model does not touch lmlab's
    with torch.no_grad():
        hf.transformer.h[0].attn.c_attn.weight.add_(1.0)
    assert (model(x)[0] - ours).abs().max() == 0


def test_gpt_agrees_after_training_on_either_side():
    model = tiny_gpt(1)
    train_steps(model, lambda m, x: m(x[:, :-1], x[:, 1:].contiguous())[1])
    hf = to_hf(model)
    x = ids(2, 10, seed=7)
    with torch.no_grad():
        assert (hf(x).logits - model(x)[0]).abs().max() < TOL
    train_steps(hf, lambda m, x: m(x, labels=x).loss)  # HF shifts labels itself
    back = from_hf(hf)
    with torch.no_grad():
        assert (back(x)[0] - hf(x).logits).abs().max() < TOL
        assert (back(x)[0] - model(x)[0]).abs().max() > 1e-3  # training changed it


def test_gpt_without_bias_exports_zero_biases():
    model = tiny_gpt(2, bias=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # move LayerNorm weights away from 1
    hf = to_hf(model)
    assert hf.transformer.h[0].attn.c_attn.bias.abs().max() == 0
    x = ids(2, 9)
    with torch.no_grad():
        assert (hf(x).logits - model(x)[0]).abs().max() < TOL
        back = from_hf(hf)
        assert back.config.bias is True and (back(x)[0] - model(x)[0]).abs().max() < TOL


def test_greedy_generation_same_tokens():
    model = tiny_gpt(3)
    train_steps(model, lambda m, x: m(x[:, :-1], x[:, 1:].contiguous())[1], steps=5)
    hf = to_hf(model)
    x = ids(2, 3, seed=1)
    theirs = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=10, do_sample=False)
    assert torch.equal(generate(model, x, 10, do_sample=False), theirs)
    assert torch.equal(generate(from_hf(hf), x, 10, do_sample=False), theirs)


def test_save_pretrained_folder_round_trip(tmp_path):
    model = tiny_gpt(4)
    x = ids(2, 12)
    to_hf(model).save_pretrained(tmp_path / "gpt")
    reloaded = GPT2LMHeadModel.from_pretrained(tmp_path / "gpt")
    for source in (str(tmp_path / "gpt"), tmp_path / "gpt", reloaded):
        back = from_hf(source)
        assert isinstance(back, GPT) and not back.training
        with torch.no_grad():
            assert (back(x)[0] - model(x)[0]).abs().max() < TOL


def test_attention_maps_equal_output_attentions():
    model = tiny_gpt(5)
    hf = to_hf(model, attn_implementation="eager")
    x = ids(2, 11)
    with torch.no_grad():
        theirs = torch.stack(hf(x, output_attentions=True).attentions)  # (n_layer, B, nh, T, T)
    ours = model.attention_maps(x)
    assert ours.shape == theirs.shape == (2, 2, 2, 11, 11)
    assert (ours - theirs).abs().max() < 1e-5


def test_training_flag_is_kept():
    model = tiny_gpt(0).train()
    hf = to_hf(model)
    assert hf.training
    assert from_hf(hf).training
    assert not from_hf(hf.eval()).training


# ---------------------------------------------------------------------------------------------------
# tokenizer


def test_tokenizer_export_gives_same_ids_and_text(tmp_path):
    tok = CharTokenizer.from_text("hello world, to be or not\n")
    model = tiny_gpt(6, vocab_size=tok.vocab_size)
    pair = to_hf(model, tok)
    assert isinstance(pair, HFModelAndTokenizer)
    hf_model, hf_tok = pair
    text = "to be or not to be, hello\nworld"
    assert hf_tok(text)["input_ids"] == tok.encode(text)
    assert hf_tok.decode(tok.encode(text)) == text
    prompt = hf_tok("hello", return_tensors="pt")
    out = hf_model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert hf_tok.decode(out[0]) == generate_text(model, tok, "hello", 8, do_sample=False)
    hf_tok.save_pretrained(tmp_path / "tok")  # what a hub upload would need
    assert (tmp_path / "tok" / "tokenizer.json").is_file()


def test_eos_id_is_written_to_the_config():
    hf = to_hf(tiny_gpt(), eos_id=V - 1)
    assert hf.config.eos_token_id == hf.config.bos_token_id == hf.config.pad_token_id == V - 1
    assert to_hf(tiny_gpt()).config.eos_token_id is None


# ---------------------------------------------------------------------------------------------------
# BERT


def test_bert_logits_and_attentions_agree_both_ways(tmp_path):
    model = tiny_bert()
    train_steps(model, lambda m, x: m(x, x)[1])
    x = ids(3, 12, seed=3)
    mask = torch.ones_like(x)
    mask[1, 8:] = 0  # padding at the end of row 1
    hf = to_hf(model, attn_implementation="eager")
    assert isinstance(hf, BertForMaskedLM)
    assert hf.config.intermediate_size == 64 and hf.config.pad_token_id == 0
    with torch.no_grad():
        ours = model(x, attention_mask=mask)[0]
        out = hf(x, attention_mask=mask, output_attentions=True)
        assert (out.logits - ours).abs().max() < TOL
        maps = model.attention_maps(x, attention_mask=mask)
        assert (torch.stack(out.attentions) - maps).abs().max() < 1e-5
    hf.save_pretrained(tmp_path / "bert")
    back = from_hf(str(tmp_path / "bert"))
    assert isinstance(back, MaskedLM) and back.config.type_vocab_size == 1
    with torch.no_grad():
        assert (back(x, attention_mask=mask)[0] - ours).abs().max() < TOL


def test_bert_trained_in_transformers_comes_back():
    hf = to_hf(tiny_bert(1))
    train_steps(hf, lambda m, x: m(x, labels=x).loss)
    back = from_hf(hf)
    x = ids(2, 10, seed=4)
    with torch.no_grad():
        assert (back(x)[0] - hf(x).logits).abs().max() < TOL
    # the decoder bias moved in training and was carried over (HF stores it under two names)
    assert torch.equal(back.head.decoder.bias, hf.cls.predictions.bias)
    assert back.head.decoder.bias.abs().max() > 0


# ---------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "option, match",
    [
        (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
        (dict(activation_function="relu"), "activation_function='relu'"),
        (dict(n_inner=24), "n_inner=24"),
        (dict(scale_attn_weights=False), "scale_attn_weights=False"),
        (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon"),
        (dict(tie_word_embeddings=False), "not tied"),
    ],
)
def test_unsupported_gpt2_options_raise(option, match):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=V, n_positions=8, n_embd=8, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0,
                     **option)
    with pytest.raises(ValueError, match=match):
        from_hf(GPT2LMHeadModel(cfg))


def test_wrong_types_raise(tmp_path):
    cfg = GPT2Config(vocab_size=V, n_positions=8, n_embd=8, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        from_hf(GPT2Model(cfg))  # no language-model head
    with pytest.raises(TypeError, match="GPT and MaskedLM"):
        to_hf(LSTMLM(V, n_embd=8, n_hidden=8))
    LlamaConfig(vocab_size=V, hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'llama' model"):
        from_hf(str(tmp_path))
    with pytest.raises(ValueError, match="eos_id"):
        to_hf(tiny_gpt(), eos_id=V)
    with pytest.raises(ValueError, match="the tokenizer has"):
        to_hf(tiny_gpt(vocab_size=3), CharTokenizer.from_text("abcdef"))


# ---------------------------------------------------------------------------------------------------
# folders from strangers: code and pickles are refused


CUSTOM_CODE = '''\
import pathlib
pathlib.Path({marker!r}).write_text("the folder's code ran")
from transformers import GPT2Config, GPT2LMHeadModel


class CustomConfig(GPT2Config):
    model_type = "{model_type}"


class CustomModel(GPT2LMHeadModel):
    config_class = CustomConfig
'''


def folder_with_code(tmp_path, model_type: str):
    """A save_pretrained folder whose config.json points (auto_map) at custom.py beside it; importing
    custom.py writes a marker file."""
    import json

    folder = tmp_path / "stranger"
    to_hf(tiny_gpt()).save_pretrained(folder)
    marker = tmp_path / "marker.txt"
    (folder / "custom.py").write_text(CUSTOM_CODE.format(marker=str(marker), model_type=model_type))
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "custom.CustomConfig", "AutoModelForCausalLM": "custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


@pytest.mark.parametrize("model_type", ["gpt2", "gpt2-custom"])
def test_folder_with_its_own_code_is_refused_without_a_prompt(tmp_path, monkeypatch, model_type):
    import io
    import sys

    folder, marker = folder_with_code(tmp_path, model_type)
    stdin = io.StringIO("y\n")  # what a careless learner answers to "run the custom code? [y/N]"
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.syspath_prepend(str(folder))  # even where custom.py is importable
    with pytest.raises(ValueError, match=r"auto_map -> custom\.py.*never runs code from a model folder") as info:
        from_hf(folder)
    assert not marker.exists(), "the folder's code ran"
    assert stdin.tell() == 0, "something read the prompt's answer from stdin"


def pickled_folder(tmp_path):
    """A folder with config.json and only pickled weights (pytorch_model.bin), as older uploads have."""
    model = tiny_gpt(7)
    folder = tmp_path / "pickled"
    hf = to_hf(model)
    hf.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    return folder, model


def test_pickled_weights_are_refused_unless_asked_for(tmp_path):
    folder, model = pickled_folder(tmp_path)
    with pytest.raises(ValueError, match=r"use_safetensors=False") as info:
        from_hf(folder)
    assert "pytorch_model.bin" in str(info.value) and "pickle" in str(info.value)
    back = from_hf(folder, use_safetensors=False)  # the caller opts in: it loads, with weights_only=True
    x = ids(2, 9)
    with torch.no_grad():
        assert (back(x)[0] - model(x)[0]).abs().max() < TOL


def test_pickled_weights_are_refused_on_torch_before_2_6(tmp_path, monkeypatch):
    folder, _ = pickled_folder(tmp_path)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(ValueError, match=r"CVE-2025-32434.*torch 2\.6 or later"):
        from_hf(folder, use_safetensors=False)


def test_folder_without_weights_or_config_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        from_hf(tmp_path / "empty")
    to_hf(tiny_gpt()).config.save_pretrained(tmp_path / "config-only")
    with pytest.raises(FileNotFoundError, match="has no weights.*model.safetensors"):
        from_hf(tmp_path / "config-only")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        from_hf(tmp_path / "nope")
