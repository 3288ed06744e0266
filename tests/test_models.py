"""lmlab.models: n-gram, bigram, LSTM, GPT, MaskedLM, SequenceClassifier, build_model/model_spec."""

import json
import math
from collections import Counter
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from lmlab.models import (
    GPT, LSTMLM, BigramLM, GPTConfig, KVCache, LSTMConfig, MaskedLM, MaskedLMConfig, NGramLM,
    SequenceClassifier, build_model, mask_tokens, model_spec,
)

V = 13


def tiny_gpt(seed=0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def tiny_bert(seed=0, **kw) -> MaskedLM:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16, mask_token_id=V - 1, pad_token_id=0)
    cfg.update(kw)
    return MaskedLM(MaskedLMConfig(**cfg)).eval()


def ids(*shape, seed=0, high=V):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def assert_overfits(model, inputs, targets, steps: int = 200, below: float = 0.1) -> None:
    """AdamW on one batch drives the loss below `below` within `steps` steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        _, loss = model(inputs, targets)
        if loss.item() < below:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < below, f"loss {loss.item():.3f} after {step} steps"


# ---------------------------------------------------------------- n-gram


def test_ngram_probs_equal_normalized_counts():
    lm = NGramLM(vocab_size=3, n=2).fit([0, 1, 0, 2, 0, 1])
    # after 0: 1 twice, 2 once; after 1: 0 once; after 2: 0 once
    assert torch.equal(lm.probs([0]), torch.tensor([0.0, 2 / 3, 1 / 3]))
    assert torch.equal(lm.probs([2, 1]), torch.tensor([1.0, 0.0, 0.0]))  # only the last token counts
    assert torch.equal(lm.counts2, torch.tensor([[0, 2, 1], [1, 0, 0], [1, 0, 0]]))
    torch.testing.assert_close(lm.prob_table.sum(-1), torch.ones(3))


def _python_counts(seq, n):
    return Counter(tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))


@pytest.mark.parametrize("n", [3, 4])
def test_ngram_add_k_formula_dense_and_sparse(n):
    Vn, k = 4, 0.5
    seq = ids(60, seed=3, high=Vn).tolist()
    lm = NGramLM(Vn, n, k=k).fit(seq)
    counts = _python_counts(seq, n)
    for ctx in [tuple(seq[:n - 1]), tuple(seq[10:10 + n - 1]), (3,) * (n - 1)]:
        c = torch.tensor([counts[ctx + (w,)] for w in range(Vn)], dtype=torch.float64)
        expected = (c + k) / (c.sum() + k * Vn)
        torch.testing.assert_close(lm.probs(list(ctx)), expected.float())
    # forward: logits[b, t] = log p(. | the n-1 tokens ending at t)
    x = torch.tensor([seq[:20]])
    logits, _ = lm(x)
    t = 10
    torch.testing.assert_close(logits[0, t], lm.probs(seq[t - n + 2 : t + 1]).log())
    # the first position backs off to the bigram model
    bigram = NGramLM(Vn, 2, k=k).fit(seq)
    torch.testing.assert_close(logits[0, 0], bigram.probs(seq[:1]).log())


def test_ngram_unseen_event_infinite_loss_unless_smoothed():
    seq = [0, 1, 0, 1, 0, 1]
    x, y = torch.tensor([[0, 1]]), torch.tensor([[1, 1]])  # 1 -> 1 never seen
    _, loss = NGramLM(3, 2, k=0.0).fit(seq)(x, y)
    assert math.isinf(loss.item())
    _, loss_k = NGramLM(3, 2, k=1.0).fit(seq)(x, y)
    assert math.isfinite(loss_k.item()) and loss_k.item() > 0
    # context 2 never seen: 0/0 is defined as uniform
    assert torch.equal(NGramLM(3, 2).fit(seq).probs([2]), torch.full((3,), 1 / 3))


def test_ngram_unigram_and_errors():
    lm = NGramLM(3, 1).fit([0, 0, 1, 2])
    logits, _ = lm(torch.tensor([[2, 1, 0]]))
    torch.testing.assert_close(logits[0].exp(), torch.tensor([[0.5, 0.25, 0.25]] * 3))
    with pytest.raises(ValueError, match="max id 5"):
        NGramLM(3, 2).fit([0, 5])


# ---------------------------------------------------------------- bigram


def test_bigram_gradient_descent_converges_to_counts():
    torch.manual_seed(0)
    Vb = 5
    seq = ids(800, seed=4, high=Vb)
    x, y = seq[None, :-1], seq[None, 1:]
    model = BigramLM(Vb)
    _, loss0 = model(x, y)
    assert abs(loss0.item() - math.log(Vb)) < 1e-6  # zero init = uniform
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(300):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    learned = torch.softmax(model.logits_table.weight.detach(), -1)
    counted = NGramLM(Vb, 2).fit(seq).prob_table
    assert (learned - counted).abs().max() < 1e-2


# ---------------------------------------------------------------- LSTM


def test_lstm_shapes_state_and_tbptt_chunks():
    torch.manual_seed(0)
    model = LSTMLM(V, n_embd=8, n_hidden=16, n_layer=2).eval()
    x = ids(3, 12)
    logits, loss = model(x, x)
    assert logits.shape == (3, 12, V) and loss.ndim == 0
    full, _ = model.forward_with_state(x)
    a, state = model.forward_with_state(x[:, :5])
    assert state[0].shape == (2, 3, 16)
    b, _ = model.forward_with_state(x[:, 5:], tuple(s.detach() for s in state))
    torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="n_layer, B, n_hidden"):
        model.forward_with_state(x[:2], state)


def test_lstm_decode_step_reorder_and_config():
    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig(vocab_size=V, n_embd=8, n_hidden=16)).eval()
    x = ids(3, 30)  # longer than any block_size: the LSTM has none
    full, _ = model(x)
    logits, cache = model.decode_step(x[:, :4])
    outs = [logits]
    for t in range(4, 30):
        logits, cache = model.decode_step(x[:, t : t + 1], cache)
        outs.append(logits)
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=0)
    index = torch.tensor([2, 0, 0])
    _, cache = model.decode_step(x[:, :10])
    step, _ = model.decode_step(x[index, 10:11], model.reorder_cache(cache, index))
    torch.testing.assert_close(step[:, 0], full[index, 10], atol=1e-5, rtol=0)
    assert json.loads(json.dumps(asdict(model.config)))["n_hidden"] == 16
    assert model.num_params() == sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- GPT


def test_gpt_shapes_loss_at_init_and_tying():
    model = tiny_gpt()
    x, y = ids(4, 16, seed=1), ids(4, 16, seed=2)
    logits, loss = model(x, y)
    assert logits.shape == (4, 16, V)
    assert abs(loss.item() - math.log(V)) < 0.1
    assert model(x)[1] is None
    assert model.lm_head.weight is model.transformer.wte.weight
    y[:, :8] = -100  # ignored positions
    _, part = model(x, y)
    torch.testing.assert_close(part, F.cross_entropy(logits[:, 8:].reshape(-1, V), y[:, 8:].reshape(-1)))


def test_gpt_param_count_matches_formula_and_names():
    model = tiny_gpt()
    C, L, T = 16, 2, 16
    block = 2 * (2 * C) + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    total = V * C + T * C + L * block + 2 * C
    assert model.num_params(non_embedding=False) == total
    assert model.num_params() == total - T * C
    names = set(dict(model.named_parameters()))
    for name in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.1.ln_1.weight",
                 "transformer.h.1.attn.c_attn.weight", "transformer.h.1.attn.c_proj.bias", "transformer.h.1.ln_2.bias",
                 "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.weight"]:
        assert name in names
    no_bias = tiny_gpt(bias=False)
    assert no_bias.transformer.ln_f.bias is None and no_bias.transformer.h[0].attn.c_attn.bias is None


def test_gpt_init_statistics():
    model = tiny_gpt(n_embd=64, n_layer=8, n_head=4, vocab_size=512)
    assert abs(model.transformer.wte.weight.std().item() - 0.02) < 0.002
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002
    assert abs(model.transformer.h[0].mlp.c_proj.weight.std().item() - 0.02 / math.sqrt(16)) < 0.001
    assert (model.transformer.h[0].attn.c_attn.bias == 0).all()


def test_gpt_is_causal():
    model = tiny_gpt()
    x = ids(2, 12)
    x2 = x.clone()
    x2[:, 7] = (x2[:, 7] + 1) % V
    a, _ = model(x)
    b, _ = model(x2)
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_gpt_decode_step_matches_forward():
    model = tiny_gpt()
    x = ids(3, 16)
    full, _ = model(x)
    logits, cache = model.decode_step(x[:, :5])
    outs = [logits]
    for t in range(5, 11):  # one token at a time
        logits, cache = model.decode_step(x[:, t : t + 1], cache)
        outs.append(logits)
    logits, cache = model.decode_step(x[:, 11:], cache)  # several new tokens at once
    outs.append(logits)
    assert isinstance(cache, KVCache) and cache.length == 16
    assert cache.layers[0][0].shape == (3, 2, 16, 8)
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="exceeds block_size=16"):
        model.decode_step(x[:, :1], cache)


def test_gpt_reorder_cache():
    model = tiny_gpt()
    x = ids(3, 9)
    _, cache = model.decode_step(x[:, :8])
    index = torch.tensor([2, 0, 0, 1])
    reordered = model.reorder_cache(cache, index)
    assert reordered.length == 8 and reordered.layers[1][1].shape[0] == 4
    step, _ = model.decode_step(x[index, 8:9], reordered)
    full, _ = model(x[index])
    torch.testing.assert_close(step[:, 0], full[:, 8], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="reorder_cache"):
        model.decode_step(x[:2, 8:9], cache)


def test_gpt_attention_maps():
    model = tiny_gpt()
    x = ids(2, 10)
    maps = model.attention_maps(x)
    assert maps.shape == (2, 2, 2, 10, 10)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 2, 10))
    assert (maps.triu(diagonal=1) == 0).all()
    # layer 0's map recomputed by hand from the weights
    with torch.no_grad():
        h = model.transformer.h[0].ln_1(model.transformer.wte(x) + model.transformer.wpe(torch.arange(10)))
        q, k, _ = model.transformer.h[0].attn.c_attn(h).split(16, dim=2)
        q, k = (t.view(2, 10, 2, 8).transpose(1, 2) for t in (q, k))
        att = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(torch.ones(10, 10).triu(1).bool(), float("-inf"))
    torch.testing.assert_close(maps[0], att.softmax(-1), atol=1e-6, rtol=0)
    # the weights path gives the same output as the fast path
    with torch.no_grad():
        slow = model.lm_head(model._run(x, need_weights=True)[0])
    torch.testing.assert_close(slow, model(x)[0], atol=1e-5, rtol=0)
    assert model.hidden_states(x).shape == (2, 10, 16)


def test_gpt_input_errors():
    model = tiny_gpt()
    x = ids(2, 8)
    with pytest.raises(TypeError, match=r"float32; token ids must be torch.long, e.g. idx.long\(\)"):
        model(x.float())
    with pytest.raises(ValueError, match="2-D"):
        model(x[0])
    bad = x.clone()
    bad[0, 3] = V + 4
    with pytest.raises(ValueError, match=rf"vocab_size={V}\), got max id {V + 4}"):
        model(bad)
    bad[0, 3] = -1
    with pytest.raises(ValueError, match="min id -1"):
        model(bad)
    with pytest.raises(ValueError, match=r"block_size=16; crop .*idx\[:, -16:\]"):
        model(ids(1, 17))
    with pytest.raises(ValueError, match=r"targets \(16,\) and idx \(2, 8\).*\(B\*T,\)"):
        model(x, x.view(-1))
    with pytest.raises(ValueError, match="one-hot"):
        model(x, F.one_hot(x, V).float())
    with pytest.raises(TypeError, match="torch.long"):
        model(x, x.float())
    with pytest.raises(ValueError, match=r"n_embd=30 is not divisible by n_head=4; try n_head in \[3, 5, 2\] or n_embd in \[28, 32\]"):
        GPTConfig(n_embd=30, n_head=4)
    model.check_ids = False  # the range check can be switched off
    with pytest.raises(IndexError):
        model(torch.full((1, 4), V))


def test_gpt_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=32))
    x, y = ids(4, 16, seed=5), ids(4, 16, seed=6)
    assert_overfits(model, x, y)


def test_attention_only_gpt_is_a_gpt_whose_mlps_add_nothing():
    model = tiny_gpt(mlp=False)
    names = [n for n, _ in model.named_parameters()]
    assert not any(".mlp." in n or ".ln_2." in n for n in names) and any(".attn." in n for n in names)
    full = tiny_gpt(mlp=True)
    missing, unexpected = full.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(".mlp." in k or ".ln_2." in k for k in missing)
    for block in full.transformer.h:  # an MLP whose output projection is zero adds nothing to the stream
        torch.nn.init.zeros_(block.mlp.c_proj.weight), torch.nn.init.zeros_(block.mlp.c_proj.bias)
    x = ids(2, 16)
    torch.testing.assert_close(model(x)[0], full(x)[0])
    logits, cache = model.decode_step(x[:, :10])  # the KV-cache path takes the same blocks
    step, _ = model.decode_step(x[:, 10:11], cache)
    torch.testing.assert_close(step[:, 0], model(x[:, :11])[0][:, -1], rtol=1e-5, atol=1e-5)
    assert model.attention_maps(x).shape == (2, 2, 2, 16, 16)
    clone = build_model("gpt", json.loads(json.dumps(model_spec(model)))["config"])
    assert clone.config.mlp is False


def test_attention_only_gpt_has_no_gpt2_twin():
    pytest.importorskip("transformers")
    from lmlab.interop import to_hf

    with pytest.raises(ValueError, match="attention-only"):
        to_hf(tiny_gpt(mlp=False))


def test_gpt_matches_hugging_face_gpt2():
    transformers = pytest.importorskip("transformers")
    model = tiny_gpt()
    for p in model.parameters():  # non-trivial biases and LayerNorm weights
        torch.nn.init.normal_(p, std=0.1) if p.ndim == 1 else None
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                  activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  layer_norm_epsilon=1e-5)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    sd = {k: (v.t() if k.endswith(conv1d) else v) for k, v in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all(not k.endswith("weight") for k in missing), (missing, unexpected)
    x = ids(2, 16)
    with torch.no_grad():
        ref = hf(x).logits
    torch.testing.assert_close(model(x)[0], ref, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- MaskedLM


def test_mask_tokens_80_10_10():
    Vm, mask_id, special = 1000, 999, 0
    x = ids(200, 500, seed=7, high=999)
    x[:, ::10] = special  # special ids are never selected
    g = torch.Generator().manual_seed(0)
    inputs, targets = mask_tokens(x, mask_token_id=mask_id, vocab_size=Vm, generator=g, special_ids=(special,))
    sel = targets != -100
    assert not sel[:, ::10].any()
    assert torch.equal(targets[sel], x[sel])
    assert torch.equal(inputs[~sel], x[~sel])
    n_eligible = (x != special).sum().item()
    n = sel.sum().item()

    def close(observed, p, count):  # within 4 standard errors
        assert abs(observed - p) < 4 * math.sqrt(p * (1 - p) / count), (observed, p)

    close(n / n_eligible, 0.15, n_eligible)
    # a random replacement can hit the mask id or the original id (1/V each)
    close((inputs[sel] == mask_id).float().mean().item(), 0.8 + 0.1 / Vm, n)
    close((inputs[sel] == x[sel]).float().mean().item(), 0.1 + 0.1 / Vm, n)
    close(((inputs[sel] != x[sel]) & (inputs[sel] != mask_id)).float().mean().item(), 0.1 * (1 - 2 / Vm), n)
    again = mask_tokens(x, mask_token_id=mask_id, vocab_size=Vm, generator=torch.Generator().manual_seed(0),
                        special_ids=(special,))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)


def test_masked_lm_is_bidirectional_and_respects_padding():
    model = tiny_bert()
    x = ids(2, 10, high=V - 1)
    x2 = x.clone()
    x2[:, 9] = (x2[:, 9] + 1) % (V - 1)
    a, _ = model(x)
    b, _ = model(x2)
    assert not torch.allclose(a[:, 0], b[:, 0])  # a later token changes an earlier position
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, 6:] = 0
    x3 = x.clone()
    x3[0, 6:] = ids(4, seed=9, high=V)
    c, _ = model(x, attention_mask=mask)
    d, _ = model(x3, attention_mask=mask)
    torch.testing.assert_close(c[0, :6], d[0, :6], atol=1e-6, rtol=0)
    torch.testing.assert_close(c[1], d[1])
    maps = model.attention_maps(x, attention_mask=mask)
    assert maps.shape == (2, 2, 2, 10, 10)
    assert (maps[:, 0, :, :, 6:] == 0).all()
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 2, 10))
    assert model.encode(x).shape == (2, 10, 16)
    assert model.head.decoder.weight is model.embeddings.word_embeddings.weight


def test_masked_lm_matches_hugging_face_bert():
    transformers = pytest.importorskip("transformers")
    model = tiny_bert()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1) if p.ndim == 1 else None
    cfg = transformers.BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, hidden_act="gelu", hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, max_position_embeddings=16, type_vocab_size=1,
                                  layer_norm_eps=1e-12, pad_token_id=0)
    hf = transformers.BertForMaskedLM(cfg).eval()
    names = {"embeddings.ln": "embeddings.LayerNorm", "attn.query": "attention.self.query",
             "attn.key": "attention.self.key", "attn.value": "attention.self.value",
             "attn.out": "attention.output.dense", "ln_1": "attention.output.LayerNorm",
             "mlp.fc": "intermediate.dense", "mlp.proj": "output.dense", "ln_2": "output.LayerNorm"}
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("head."):
            k = {"head.dense": "cls.predictions.transform.dense", "head.ln": "cls.predictions.transform.LayerNorm",
                 "head.decoder": "cls.predictions.decoder"}[k.rsplit(".", 1)[0]] + "." + k.rsplit(".", 1)[1]
            if k == "cls.predictions.decoder.bias":
                sd["cls.predictions.bias"] = v
        else:
            for ours, theirs in names.items():
                k = k.replace(ours, theirs)
            k = "bert." + k.replace("layers.", "encoder.layer.")
        sd[k] = v
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all(not k.endswith(("weight", "bias")) for k in missing), (missing, unexpected)
    x = ids(2, 12)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    with torch.no_grad():
        ref = hf(input_ids=x, attention_mask=mask).logits
    torch.testing.assert_close(model(x, attention_mask=mask)[0], ref, atol=1e-5, rtol=0)


def test_masked_lm_overfits_one_batch():
    torch.manual_seed(0)
    model = tiny_bert(n_embd=32).train()
    x = ids(4, 16, high=V - 1)
    inputs, targets = mask_tokens(x, mask_token_id=V - 1, vocab_size=V, mask_prob=0.3,
                                  generator=torch.Generator().manual_seed(1))
    assert_overfits(model, inputs, targets)


# ---------------------------------------------------------------- classifier


def test_classifier_frozen_body_gets_no_gradient_and_does_not_change():
    clf = SequenceClassifier(tiny_gpt(), 3, freeze_body=True)
    before = {k: v.clone() for k, v in clf.body.state_dict().items()}
    head_before = clf.head.weight.clone()
    opt = torch.optim.AdamW([p for p in clf.parameters() if p.requires_grad], lr=0.1)
    _, loss = clf(ids(4, 8), labels=torch.tensor([0, 1, 2, 1]))
    loss.backward()
    assert all(p.grad is None for p in clf.body.parameters())
    opt.step()
    assert all(torch.equal(v, clf.body.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(head_before, clf.head.weight)
    counts = clf.parameter_counts()
    assert counts["trainable"] == 16 * 3 + 3 and counts["total"] == clf.body.num_params(False) + 51


def test_classifier_train_last_n_layers():
    clf = SequenceClassifier(tiny_gpt(), 2, train_last_n_layers=1)
    _, loss = clf(ids(2, 8), labels=torch.tensor([0, 1]))
    loss.backward()
    t = clf.body.transformer
    assert all(p.grad is not None for p in t.h[1].parameters())
    assert all(p.grad is not None for p in t.ln_f.parameters())
    assert all(p.grad is None for p in [*t.h[0].parameters(), t.wte.weight, t.wpe.weight])
    expected = sum(p.numel() for m in (t.h[1], t.ln_f, clf.head) for p in m.parameters())
    assert clf.parameter_counts()["trainable"] == expected
    bert_clf = SequenceClassifier(tiny_bert(), 2, train_last_n_layers=1, pooling="first")
    assert [p.requires_grad for p in bert_clf.body.layers[0].parameters()] == [False] * 16
    assert all(p.requires_grad for p in bert_clf.body.layers[1].parameters())


@pytest.mark.parametrize("pooling", ["last", "mean", "first"])
def test_classifier_pooling_and_padding(pooling):
    for body in (tiny_gpt(), tiny_bert()):
        clf = SequenceClassifier(body, 4, pooling=pooling).eval()
        x = ids(3, 10, high=V - 1)
        mask = torch.ones(3, 10, dtype=torch.long)
        mask[0, 6:] = 0  # right padding
        logits, _ = clf(x, attention_mask=mask)
        assert logits.shape == (3, 4)
        x2 = x.clone()
        x2[0, 6:] = 0
        torch.testing.assert_close(clf(x2, attention_mask=mask)[0], logits, atol=1e-6, rtol=0)
        alone, _ = clf(x[:1, :6])  # the padded row equals the unpadded sequence on its own
        torch.testing.assert_close(alone[0], logits[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(tiny_gpt(), 2, pooling="max")


def test_classifier_overfits_tiny_labelled_set():
    torch.manual_seed(0)
    clf = SequenceClassifier(tiny_gpt(n_embd=32), 2)
    x, labels = ids(8, 10, seed=11), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-2)
    for _ in range(100):
        logits, loss = clf(x, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    logits, loss = clf(x, labels)
    assert loss.item() < 0.05 and torch.equal(logits.argmax(-1), labels)


# ---------------------------------------------------------------- build_model / model_spec


@pytest.mark.parametrize("kind,config", [
    ("gpt", dict(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=8)),
    ("lstm", dict(vocab_size=V, n_embd=8, n_hidden=8)),
    ("masked", dict(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=8, mask_token_id=V - 1)),
    ("bigram", dict(vocab_size=V)),
])
def test_build_model_round_trips_through_json(kind, config):
    model = build_model(kind, config)
    spec = json.loads(json.dumps(model_spec(model)))
    assert spec["kind"] == kind
    clone = build_model(spec["kind"], spec["config"])
    clone.load_state_dict(model.state_dict())
    x = ids(2, 8)
    torch.testing.assert_close(clone.eval()(x)[0], model.eval()(x)[0])


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown model kind 'rnn'"):
        build_model("rnn", {})
    with pytest.raises(ValueError, match="n_layers"):
        build_model("gpt", {"n_layers": 2})


def test_padded_vocabulary_computes_what_the_unpadded_model_computes():
    model = tiny_gpt(dropout=0.0)
    padded = GPT(GPTConfig(**{**asdict(model.config), "pad_vocab_multiple": 64}))
    assert padded.config.padded_vocab_size == 64 and padded.lm_head.weight.shape == (64, 16)
    with torch.no_grad():  # the same weights, and random ones in the padding rows
        for name, p in padded.named_parameters():
            p.copy_(torch.cat([model.get_parameter(name), p[V:]]) if name == "transformer.wte.weight"
                    else model.get_parameter(name))
    x, y = ids(3, 10), ids(3, 10, seed=1)
    logits, loss = model(x, y)
    p_logits, p_loss = padded(x, y)
    assert p_logits.shape == (3, 10, V)
    torch.testing.assert_close(p_logits, logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(p_loss, loss, atol=1e-6, rtol=0)
    loss.backward()
    p_loss.backward()
    grad, p_grad = model.transformer.wte.weight.grad, padded.transformer.wte.weight.grad
    torch.testing.assert_close(p_grad[:V], grad, atol=1e-6, rtol=0)
    assert not p_grad[V:].any()  # the padding is never a token: no gradient reaches it
    with torch.no_grad():
        logits_step, _ = padded.decode_step(x)
        static = padded.decode_static(x, torch.arange(10), padded.static_cache(3))
    assert logits_step.shape == static.shape == (3, 10, V)
    with pytest.raises(ValueError, match="pad_vocab_multiple must be a positive int"):
        GPTConfig(pad_vocab_multiple=0)
    assert GPTConfig(vocab_size=50257, pad_vocab_multiple=64).padded_vocab_size == 50304
