"""Tests for lmlab.generate: logit filters, greedy, sampling, beam search, KV cache, EOS, bad input.

Filters and beam search are compared with transformers on the same weights (tiny offline models).
"""

import math

import pytest
import torch
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from lmlab.generate import apply_temperature, generate, generate_text, top_k_filter, top_p_filter
from lmlab.interop import to_hf
from lmlab.models import GPT, LSTMLM, BigramLM, GPTConfig
from lmlab.tokenizers import CharTokenizer

V = 29


def peaky_gpt(seed: int, block_size: int = 32, vocab_size: int = V) -> GPT:
    """A random GPT with large weights, so its next-token distributions are far from uniform (entropy
    about 2.2 nats of ln 29 = 3.4) and continuations vary (a default init is nearly uniform, or with
    large embeddings only, repeats the last token)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16))
    with torch.no_grad():
        model.transformer.wte.weight.normal_(0.0, 0.5)
        model.transformer.wpe.weight.normal_(0.0, 0.5)
        for name, p in model.named_parameters():
            if p.dim() == 2 and any(k in name for k in ("c_attn", "c_fc", "c_proj")):
                p.normal_(0.0, 0.3)
    return model.eval()


def hf_generate(hf, idx: torch.Tensor, max_new_tokens: int, **kw) -> torch.Tensor:
    return hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=max_new_tokens, **kw)


# ---------------------------------------------------------------------------------------------------
# filters


def test_filters_hand_examples():
    assert torch.equal(apply_temperature(torch.tensor([2.0, 0.0]), 2.0), torch.tensor([1.0, 0.0]))
    inf = float("-inf")
    assert torch.equal(top_k_filter(torch.tensor([1.0, 3.0, 2.0, 0.0]), 2), torch.tensor([inf, 3.0, 2.0, inf]))
    assert torch.equal(top_k_filter(torch.tensor([1.0, 3.0, 2.0, 2.0]), 2), torch.tensor([inf, 3.0, 2.0, 2.0]))  # tie kept
    logits = torch.tensor([0.5, 0.3, 0.2]).log()
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [True, True, False]
    assert torch.isfinite(top_p_filter(logits, 0.4)).tolist() == [True, False, False]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()
    assert torch.isfinite(top_p_filter(logits, 1e-6)).tolist() == [True, False, False]  # never empty
    uniform = torch.zeros(4)  # probabilities exactly 0.25: a set of mass exactly p = 0.5 is enough
    assert int(torch.isfinite(top_p_filter(uniform, 0.5)).sum()) == 2
    assert int(torch.isfinite(TopPLogitsWarper(top_p=0.5)(None, uniform[None])).sum()) == 2


@pytest.mark.parametrize("k", [1, 3, 10, 50, 1000])
def test_top_k_matches_transformers(k):
    g = torch.Generator().manual_seed(k)
    logits = torch.randn(6, 50, generator=g) * 3
    logits[0] = (logits[0] * 2).round() / 2  # many ties
    ours = top_k_filter(logits, k)
    theirs = TopKLogitsWarper(top_k=k)(None, logits.clone())
    assert torch.equal(ours, theirs)
    assert (torch.isfinite(ours).sum(-1) >= min(k, 50)).all()


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99, 1.0])
def test_top_p_matches_transformers(p):
    g = torch.Generator().manual_seed(int(p * 100))
    logits = torch.randn(8, 40, generator=g) * 2
    ours = top_p_filter(logits, p)
    theirs = TopPLogitsWarper(top_p=p)(None, logits.clone())
    assert torch.equal(ours, theirs)
    kept_mass = logits.softmax(-1).masked_fill(~torch.isfinite(ours), 0).sum(-1)
    assert (kept_mass >= p - 1e-6).all()  # the kept set reaches p


# ---------------------------------------------------------------------------------------------------
# greedy and beam search against transformers


def test_greedy_matches_transformers_and_manual_loop():
    model = peaky_gpt(0)
    hf = to_hf(model).eval()
    idx = torch.randint(0, V, (3, 4), generator=torch.Generator().manual_seed(1))
    ours = generate(model, idx, 12, do_sample=False)
    assert torch.equal(ours, hf_generate(hf, idx, 12, do_sample=False))
    seq = idx  # the textbook loop: forward on everything, append the argmax
    for _ in range(12):
        seq = torch.cat([seq, model(seq)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(ours, seq)
    assert len(set(map(tuple, ours[:, 4:].tolist()))) == 3  # rows differ: the test is not trivial


@pytest.mark.parametrize("early_stopping", [False, True, "never"])
def test_beam_search_matches_transformers(early_stopping):
    shorter = 0
    for seed in range(4):
        model = peaky_gpt(seed)
        hf = to_hf(model).eval()
        idx = torch.randint(0, V, (2, 3), generator=torch.Generator().manual_seed(seed))
        greedy = generate(model, idx, 10, do_sample=False)
        eos = int(greedy[0, 3 + 2])  # a token the model likes: beams will end with it
        for num_beams in (2, 4):
            ours = generate(model, idx, 10, num_beams=num_beams, eos_id=eos, early_stopping=early_stopping)
            theirs = hf_generate(hf, idx, 10, do_sample=False, num_beams=num_beams, eos_token_id=eos,
                                 pad_token_id=eos, early_stopping=early_stopping)
            assert torch.equal(ours, theirs), (seed, num_beams)
            shorter += ours.size(1) < 13
        ours = generate(model, idx, 6, num_beams=3, length_penalty=0.0)  # no EOS: runs to the end
        theirs = hf_generate(hf, idx, 6, do_sample=False, num_beams=3, length_penalty=0.0)
        assert torch.equal(ours, theirs)
    assert shorter > 0  # some searches stopped at EOS before max_new_tokens


def test_beam_search_finds_a_likelier_sequence_than_greedy():
    model = peaky_gpt(3)
    idx = torch.randint(0, V, (4, 3), generator=torch.Generator().manual_seed(0))

    def total_logprob(seq):
        logp = model(seq)[0].log_softmax(-1)[:, 2:-1]  # predictions of the generated tokens
        return logp.gather(-1, seq[:, 3:, None]).squeeze(-1).sum(-1)

    with torch.no_grad():
        greedy = total_logprob(generate(model, idx, 6, do_sample=False))
        beam = total_logprob(generate(model, idx, 6, num_beams=5, length_penalty=0.0))
    assert (beam >= greedy - 1e-5).all()
    assert (beam > greedy + 1e-3).any()


# ---------------------------------------------------------------------------------------------------
# sampling


def test_sampling_is_reproducible_with_a_generator():
    model = peaky_gpt(1)
    idx = torch.zeros(2, 1, dtype=torch.long)
    a = generate(model, idx, 30, top_k=10, top_p=0.9, temperature=1.3, generator=torch.Generator().manual_seed(5))
    b = generate(model, idx, 30, top_k=10, top_p=0.9, temperature=1.3, generator=torch.Generator().manual_seed(5))
    c = generate(model, idx, 30, top_k=10, top_p=0.9, temperature=1.3, generator=torch.Generator().manual_seed(6))
    assert a.shape == (2, 31) and torch.equal(a, b)
    assert not torch.equal(a, c)


def test_top_k_1_sampling_is_greedy():
    model = peaky_gpt(2)
    idx = torch.randint(0, V, (3, 2), generator=torch.Generator().manual_seed(0))
    greedy = generate(model, idx, 15, do_sample=False)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        assert torch.equal(generate(model, idx, 15, top_k=1, temperature=2.0, generator=g), greedy)


@pytest.mark.parametrize("top_k, top_p, temperature", [(None, None, 1.0), (3, None, 1.0), (None, 0.6, 0.7)])
def test_sample_frequencies_match_the_filtered_distribution(top_k, top_p, temperature):
    model = peaky_gpt(4)
    prompt = torch.tensor([[3, 1]])
    logits = model(prompt)[0][0, -1].detach() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(-1)
    n = 4000
    out = generate(model, prompt.expand(n, 2).contiguous(), 1, top_k=top_k, top_p=top_p, temperature=temperature,
                   generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(out[:, -1], minlength=V).float() / n
    assert (freq[probs == 0] == 0).all()  # filtered tokens never appear
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / n)  # 4 standard deviations at most


# ---------------------------------------------------------------------------------------------------
# KV cache, cropping, other models


def test_kv_cache_equals_no_cache_past_block_size():
    model = peaky_gpt(5, block_size=8)
    idx = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(0))
    with_cache = generate(model, idx, 14, do_sample=False)  # 19 tokens > block_size: cropping and rebuilding
    no_cache = generate(model, idx, 14, do_sample=False, use_cache=False)
    assert with_cache.shape == (2, 19) and torch.equal(with_cache, no_cache)
    # the last token is the argmax after the last 8 tokens only
    last = model(with_cache[:, -9:-1])[0][:, -1].argmax(-1)
    assert torch.equal(last, with_cache[:, -1])
    beams = generate(model, idx, 12, num_beams=3)
    assert torch.equal(beams, generate(model, idx, 12, num_beams=3, use_cache=False))
    long_prompt = torch.randint(0, V, (1, 20), generator=torch.Generator().manual_seed(1))  # prompt > block_size
    assert torch.equal(generate(model, long_prompt, 3, do_sample=False),
                       generate(model, long_prompt, 3, do_sample=False, use_cache=False))


def test_lstm_cache_and_model_without_decode_step():
    torch.manual_seed(0)
    lstm = LSTMLM(V, n_embd=8, n_hidden=16)
    idx = torch.randint(0, V, (2, 4), generator=torch.Generator().manual_seed(0))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(generate(lstm, idx, 10, do_sample=False), generate(lstm, idx, 10, do_sample=False, use_cache=False))
    assert torch.equal(generate(lstm, idx, 8, num_beams=3), generate(lstm, idx, 8, num_beams=3, use_cache=False))
    assert torch.equal(generate(lstm, idx, 10, generator=g1), generate(lstm, idx, 10, generator=g2))

    bigram = BigramLM(5)  # no decode_step: forward on the whole sequence each step
    with torch.no_grad():
        bigram.logits_table.weight.copy_(torch.eye(5)[[2, 4, 3, 0, 1]])  # 0 -> 2 -> 3 -> 0
    out = generate(bigram, torch.tensor([[0]]), 6, do_sample=False)
    assert out.tolist() == [[0, 2, 3, 0, 2, 3, 0]]  # row i of the table peaks at the next token


def test_eos_stops_each_row_and_pads():
    model = peaky_gpt(6)
    idx = torch.randint(0, V, (3, 2), generator=torch.Generator().manual_seed(2))
    free = generate(model, idx, 12, do_sample=False)
    eos = int(free[0, 2 + 3])  # row 0 produces it as its 4th new token
    out = generate(model, idx, 12, do_sample=False, eos_id=eos)
    for row_free, row in zip(free.tolist(), out.tolist()):
        new_free, new = row_free[2:], row[2:]
        if eos in new_free[:len(new)]:
            stop = new_free.index(eos)
            assert new[:stop + 1] == new_free[:stop + 1]
            assert all(t == eos for t in new[stop:])  # padded with eos after finishing
        else:
            assert new == new_free[:len(new)]
    assert (out[:, -1] == eos).any() and out.size(1) <= free.size(1)
    # one row: generation ends right after its first EOS
    first = free[0, 2:].tolist().index(eos)
    single = generate(model, idx[:1], 12, do_sample=False, eos_id=eos)
    assert single.shape == (1, 2 + first + 1) and single[0, -1] == eos
    assert torch.equal(single[0], free[0, :2 + first + 1])


def test_mode_restored_and_no_grad():
    model = peaky_gpt(0)
    model.train()
    out = generate(model, torch.zeros(1, 1, dtype=torch.long), 3, do_sample=False)
    assert model.training and not out.requires_grad
    assert generate(model, torch.zeros(1, 1, dtype=torch.long), 0).shape == (1, 1)


def test_generate_text_with_char_tokenizer():
    tok = CharTokenizer.from_text("abcdefgh \n")
    model = peaky_gpt(0, vocab_size=tok.vocab_size)
    text = generate_text(model, tok, "abc", 7, do_sample=False)
    ids = generate(model, torch.tensor([tok.encode("abc")]), 7, do_sample=False)[0].tolist()
    assert text == tok.decode(ids) and text.startswith("abc") and len(text) == 10
    eos = ids[3 + 2]
    cut = generate_text(model, tok, "abc", 7, do_sample=False, eos_id=eos)
    assert cut == tok.decode(ids[:ids.index(eos, 3)])
    with pytest.raises(ValueError, match="prompt encodes to no tokens"):
        generate_text(model, tok, "", 5)


# ---------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "idx, kw, err, match",
    [
        (torch.zeros(1, 2, dtype=torch.long), dict(temperature=0.0), ValueError, "do_sample=False"),
        (torch.zeros(1, 2, dtype=torch.long), dict(temperature=-1.0), ValueError, "temperature must be > 0"),
        (torch.zeros(1, 2, dtype=torch.long), dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
        (torch.zeros(1, 2, dtype=torch.long), dict(top_p=1.5), ValueError, r"top_p must be in \(0, 1\]"),
        (torch.zeros(1, 2, dtype=torch.long), dict(top_k=0), ValueError, "top_k must be >= 1"),
        (torch.zeros(1, 2, dtype=torch.long), dict(top_k=2.5), TypeError, "top_k must be a positive int"),
        (torch.zeros(1, 0, dtype=torch.long), {}, ValueError, "BOS"),
        (torch.zeros(2, dtype=torch.long), {}, ValueError, r"idx\[None\]"),
        (torch.zeros(1, 2, dtype=torch.float), {}, TypeError, "torch.long"),
        (torch.zeros(1, 2, dtype=torch.int32), {}, TypeError, "torch.long"),
        ([[0, 1]], {}, TypeError, "torch.Tensor"),
        (torch.zeros(1, 2, dtype=torch.long), dict(num_beams=0), ValueError, "num_beams must be >= 1"),
        (torch.zeros(1, 2, dtype=torch.long), dict(max_new_tokens=-1), ValueError, "max_new_tokens must be >= 0"),
        (torch.zeros(1, 2, dtype=torch.long), dict(eos_id=-3), ValueError, "eos_id"),
        (torch.zeros(1, 2, dtype=torch.long), dict(generator=0), TypeError, "torch.Generator"),
        (torch.zeros(1, 2, dtype=torch.long), dict(early_stopping="yes"), ValueError, "early_stopping"),
    ],
)
def test_bad_input_errors(idx, kw, err, match):
    model = peaky_gpt(0)
    max_new_tokens = kw.pop("max_new_tokens", 3)
    with pytest.raises(err, match=match):
        generate(model, idx, max_new_tokens, **kw)


def test_greedy_allows_zero_temperature_and_device_mismatch_is_named():
    model = peaky_gpt(0)
    idx = torch.zeros(1, 2, dtype=torch.long)
    assert generate(model, idx, 2, do_sample=False, temperature=0.0).shape == (1, 4)  # ignored by greedy
    with pytest.raises(ValueError, match=r"idx is on meta but the model is on cpu; move it with idx.to\('cpu'\)"):
        generate(model, torch.zeros(1, 2, dtype=torch.long, device="meta"), 2)


# ---------------------------------------------------------------------------------------------------
# static cache and compiled steps


def test_static_cache_gives_the_same_greedy_tokens_past_block_size():
    model = peaky_gpt(5, block_size=8)
    idx = torch.randint(0, V, (3, 5), generator=torch.Generator().manual_seed(0))
    plain = generate(model, idx, 14, do_sample=False)  # 19 tokens > block_size: cropping and refilling
    static = generate(model, idx, 14, do_sample=False, static_cache=True)
    assert torch.equal(static, plain)
    long_prompt = torch.randint(0, V, (1, 20), generator=torch.Generator().manual_seed(1))  # prompt > block_size
    assert torch.equal(generate(model, long_prompt, 3, do_sample=False, static_cache=True),
                       generate(model, long_prompt, 3, do_sample=False))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    sampled = generate(model, idx, 6, generator=g1, static_cache=True, top_k=5)
    assert torch.equal(sampled, generate(model, idx, 6, generator=g2, top_k=5))  # same logits, same draws


def test_static_cache_steps_equal_forward():
    model = peaky_gpt(2, block_size=12)
    x = torch.randint(0, V, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full, _ = model(x)
        cache = model.static_cache(2)
        outs = [model.decode_static(x[:, :4], torch.arange(4), cache)]  # the prompt
        outs += [model.decode_static(x[:, t:t + 1], torch.tensor([t]), cache) for t in range(4, 12)]
    assert cache.k[0].shape == (2, 2, 12, 8)  # (B, nh, S, hs)
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_compiled_steps_give_the_same_greedy_tokens_and_compile_once():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = peaky_gpt(7, block_size=16)
    for T, n in ((5, 20), (3, 6)):  # a second call, another prompt length: the same compiled step
        idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(T))
        assert torch.equal(generate(model, idx, n, do_sample=False, compile=True),
                           generate(model, idx, n, do_sample=False))
    assert counters["stats"]["unique_graphs"] == 1


def test_static_cache_errors_say_what_to_do():
    model = peaky_gpt(1)
    idx = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="not beam search"):
        generate(model, idx, 3, num_beams=2, static_cache=True)
    with pytest.raises(ValueError, match="choose one"):
        generate(model, idx, 3, use_cache=False, compile=True)
    with pytest.raises(ValueError, match="LSTMLM has none"):
        generate(LSTMLM(V, n_embd=8, n_hidden=8), idx, 3, static_cache=True)
