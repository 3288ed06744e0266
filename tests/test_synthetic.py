"""Synthetic sources: exact distributions checked against samples, determinism, golden values."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from lmlab.data import GrammarSource, MarkovSource


@pytest.mark.parametrize("order", [1, 2])
def test_markov_stationary_is_stationary(order):
    src = MarkovSource("abcde", order=order, seed=3)
    V, P, pi = 5, src.transition_matrix, src.stationary
    assert P.shape == (V**order, V) and pi.shape == (V**order,)
    assert torch.allclose(P.sum(1), torch.ones(V**order, dtype=torch.float64))
    assert abs(float(pi.sum()) - 1) < 1e-12 and float(pi.min()) > 0
    # one step of the chain on contexts: new context = (old context minus its oldest char) + next char
    nxt = torch.zeros_like(pi)
    for ctx in range(V**order):
        for c in range(V):
            nxt[(ctx % (V ** (order - 1))) * V + c] += pi[ctx] * P[ctx, c]
    assert torch.allclose(nxt, pi, atol=1e-13, rtol=0)


def test_markov_has_rare_transitions_with_small_concentration():
    P = MarkovSource("abcdefgh", seed=0, concentration=0.3).transition_matrix
    assert float(P.min()) < 1e-3 and float(P.max()) > 0.4


@pytest.mark.parametrize("order", [1, 2])
def test_markov_sample_cross_entropy_approaches_entropy_rate(order):
    src = MarkovSource("abcdefgh", order=order, seed=0)
    text = src.sample(100_000, seed=1)
    H = src.entropy_rate()
    assert 0.5 < H < math.log(8)
    # the per-token loss has std about 1 nat, so the standard error is ~0.004 nats
    assert abs(src.cross_entropy(text) - H) < 0.02
    # empirical character frequencies match the stationary marginal of the last context character
    V = 8
    marginal = src.stationary.view(-1, V).sum(0)  # (V,) distribution of the newest character
    freq = Counter(text)
    for i, ch in enumerate("abcdefgh"):
        assert abs(freq[ch] / len(text) - float(marginal[i])) < 0.01


def test_markov_entropy_rate_matches_definition_for_order_one():
    src = MarkovSource("abc", seed=5)
    P, pi = src.transition_matrix.tolist(), src.stationary.tolist()
    H = -sum(pi[i] * P[i][j] * math.log(P[i][j]) for i in range(3) for j in range(3))
    assert abs(src.entropy_rate() - H) < 1e-12


def test_markov_determinism_and_golden_value():
    a = MarkovSource("abcd", order=2, seed=7)
    b = MarkovSource("abcd", order=2, seed=7)
    assert torch.equal(a.transition_matrix, b.transition_matrix)
    assert a.sample(500, seed=3) == b.sample(500, seed=3)
    assert a.sample(500, seed=3) != a.sample(500, seed=4)
    assert MarkovSource("abcd", order=2, seed=8).sample(500, seed=3) != a.sample(500, seed=3)
    # random.Random (Mersenne Twister) and integer sampling: the same string on every platform
    assert MarkovSource("abcdefgh", order=1, seed=0).sample(30, seed=1) == "dbffhhghhbchhheachdbddffefdchd"


def test_markov_encode_decode_and_errors():
    src = MarkovSource("xyz", order=2)
    assert src.decode(src.encode("zyx")) == "zyx" and src.encode("zyx") == [2, 1, 0]
    assert src.context_id("yx") == 3
    with pytest.raises(ValueError, match="not in the alphabet"):
        src.encode("xa")
    with pytest.raises(ValueError, match="distinct"):
        MarkovSource("aab")
    with pytest.raises(ValueError, match="contexts"):
        MarkovSource("abcdefghijklmnopqrstuvwxyz", order=4)


TINY = {
    "det": {"the": 0, "a": 0},
    "noun": {"dog": 0, "cat": 0},
    "adj": {"good": 1, "bad": -1, "old": 0},
    "verb": {"loved": 1, "hated": -1},
    "adv": {"happily": 1, "sadly": -1},
}


def _all_texts(lex):
    """Every sentence of the grammar, written out by hand: DET [ADJ] NOUN VERB DET [ADJ] NOUN [ADV]."""
    opt = lambda cat: [None, *lex[cat]]  # noqa: E731
    for words in itertools.product(lex["det"], opt("adj"), lex["noun"], lex["verb"], lex["det"], opt("adj"),
                                   lex["noun"], opt("adv")):
        yield " ".join(w for w in words if w is not None) + "."


def test_grammar_probabilities_sum_to_one_and_bayes_accuracy_is_exact():
    g = GrammarSource(seed=1, p_positive=0.3, lexicon=TINY)
    texts = list(_all_texts(TINY))
    assert len(texts) == len(set(texts)) == 2 * 4 * 2 * 2 * 2 * 4 * 2 * 3
    assert abs(sum(math.exp(g.logprob(t)) for t in texts) - 1) < 1e-12
    for label in (0, 1):  # joint probabilities sum to the prior
        prior = 0.3 if label else 0.7
        assert abs(sum(math.exp(g.logprob(t, label)) for t in texts) - prior) < 1e-12
    brute = sum(max(math.exp(g.logprob(t, 0)), math.exp(g.logprob(t, 1))) for t in texts)
    assert abs(g.bayes_accuracy() - brute) < 1e-12
    assert 0.7 < brute < 1.0  # better than always guessing "negative", but the label is not always recoverable


def test_grammar_logprob_agrees_with_sample_frequencies():
    g = GrammarSource(seed=2, lexicon=TINY)
    samples = g.sample(20_000, seed=0)
    counts = Counter(s.text for s in samples)
    for text, n in counts.most_common(3):
        p = math.exp(g.logprob(text))
        se = math.sqrt(p * (1 - p) / len(samples))
        assert abs(n / len(samples) - p) < 4 * se
    assert all(s.logprob == g.logprob(s.text) for s in samples[:50])
    assert abs(sum(s.label for s in samples) / len(samples) - 0.5) < 0.02


def test_grammar_posterior_classifier_reaches_bayes_accuracy():
    g = GrammarSource(seed=0)
    samples = g.sample(4000, seed=1)
    acc = sum((g.label_posterior(s.text) > 0.5) == (s.label == 1) for s in samples) / len(samples)
    bayes = g.bayes_accuracy()
    assert 0.75 < bayes < 0.97
    assert abs(acc - bayes) < 4 * math.sqrt(bayes * (1 - bayes) / len(samples))
    # the posterior is calibrated: mean posterior equals the frequency of positives (within noise)
    mean_post = sum(g.label_posterior(s.text) for s in samples) / len(samples)
    assert abs(mean_post - sum(s.label for s in samples) / len(samples)) < 0.03


def test_grammar_posterior_is_bayes_rule():
    g = GrammarSource(seed=0)
    text = "the good dog loved a cat happily."
    p1, p0 = math.exp(g.logprob(text, 1)), math.exp(g.logprob(text, 0))
    assert abs(g.label_posterior(text) - p1 / (p0 + p1)) < 1e-12
    assert abs(math.exp(g.logprob(text)) - (p0 + p1)) < 1e-15
    assert g.label_posterior(text) > 0.9 and g.label_posterior("the awful dog hated a sad cat badly.") < 0.1


def test_grammar_determinism_and_golden_value():
    a, b = GrammarSource(seed=0), GrammarSource(seed=0)
    assert a.sample(200, seed=5) == b.sample(200, seed=5)
    assert [s.text for s in a.sample(200, seed=5)] != [s.text for s in a.sample(200, seed=6)]
    assert [(s.text, s.label) for s in a.sample(2, seed=0)] == [
        ("a lovely garden found a phone.", 1),
        ("my dog hated that teacher badly.", 0),
    ]


def test_grammar_rejects_text_outside_the_grammar():
    g = GrammarSource()
    assert g.parse("the dog saw a big cat.") == {
        "det1": "the", "adj1": None, "noun1": "dog", "verb": "saw", "det2": "a", "adj2": "big", "noun2": "cat",
        "adv": None,
    }
    for bad, match in [("the dog saw a cat", "ending in '.'"), ("the dog saw a zebra.", "zebra"),
                       ("the dog a cat saw.", "expected a verb"), ("the dog saw a cat happily happily.", "unexpected")]:
        with pytest.raises(ValueError, match=match):
            g.logprob(bad)
    with pytest.raises(ValueError, match="one category"):
        GrammarSource(lexicon={**TINY, "noun": {"dog": 0, "good": 0}})
