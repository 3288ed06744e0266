"""lmlab.data.topics: documents with a hidden topic and synonyms, with exact probabilities."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from lmlab.data import Document, TopicSource
from lmlab.data.topics import NEUTRAL_LEXICON, TOPIC_LEXICON


@pytest.fixture(scope="module")
def src():
    return TopicSource(n_sentences=3, p_topic=0.5, p_stray=0.1)


def _topic_words(which):
    """Topic words of all concepts: synonym 0 ('seen'), the others ('unseen')."""
    cut = slice(0, 1) if which == "seen" else slice(1, None)
    return {w for cats in TOPIC_LEXICON.values() for concepts in cats.values() for c in concepts for w in c[cut]}


def test_samples_are_reproducible_and_seed_dependent(src):
    a, b, c = src.sample(20, seed=3), src.sample(20, seed=3), src.sample(20, seed=4)
    assert a == b and a != c
    assert all(isinstance(d, Document) and d.synonyms == "all" for d in a)


def test_documents_follow_the_template(src):
    for d in src.sample(50, seed=0) + src.sample(50, seed=1, n_sentences=1):
        words = d.text.split(" ")
        assert len(words) % 6 == 0 and words[5::6] == ["."] * (len(words) // 6)
        assert all(w in NEUTRAL_LEXICON["det"] for i, w in enumerate(words) if i % 6 in (0, 3))
    assert len(src.sample(1, seed=0)[0].text.split()) == 18 and len(src.sample(1, n_sentences=2)[0].text.split()) == 12


def test_seen_and_unseen_synonyms_never_mix(src):
    seen, unseen = _topic_words("seen"), _topic_words("unseen")
    assert seen and unseen and not seen & unseen
    words_in = {s: {w for d in src.sample(400, seed=5, synonyms=s, n_sentences=1) for w in d.text.split()}
                for s in ("seen", "unseen", "all")}
    assert words_in["seen"] & (seen | unseen) == seen  # every seen word appears, no unseen one
    assert words_in["unseen"] & (seen | unseen) == unseen
    assert seen | unseen <= words_in["all"]


def test_balanced_sets_have_every_topic(src):
    docs = src.sample(12, seed=0, synonyms="seen", balanced=True)
    assert Counter(d.label for d in docs) == {k: 3 for k in range(4)}
    assert [d.label for d in docs] != [0, 1, 2, 3] * 3  # shuffled


def test_slot_probabilities_are_distributions(src):
    for synonyms in ("all", "seen", "unseen"):
        for cat in ("noun", "verb"):
            for k in range(len(src.topics)):
                assert math.isclose(sum(src.probs[synonyms][cat][k].values()), 1.0, abs_tol=1e-12)


def test_word_frequencies_match_the_probabilities(src):
    docs = [d for d in src.sample(6000, seed=7, n_sentences=1) if d.label == 2]
    nouns = Counter(w for d in docs for w in (d.text.split()[1], d.text.split()[4]))
    n = sum(nouns.values())
    for w, p in src.probs["all"]["noun"][2].items():
        assert abs(nouns[w] / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3, w


def test_posterior_is_calibrated_with_the_sampler(src):
    """The Bayes classifier's accuracy on a large sample agrees with its expected accuracy."""
    docs = src.sample(3000, seed=11, synonyms="unseen", n_sentences=1)
    posts = [src.posterior(d.text, d.synonyms) for d in docs]
    assert all(math.isclose(sum(p), 1.0) for p in posts)
    hits = sum(max(range(4), key=p.__getitem__) == d.label for p, d in zip(posts, docs)) / len(docs)
    expected = src.bayes_accuracy(docs)
    assert 0.7 < expected < 0.95
    assert abs(hits - expected) < 3 * math.sqrt(expected * (1 - expected) / len(docs))


def test_token_logprobs_add_up_to_the_document_probability(src):
    for d in src.sample(20, seed=2):
        lp = src.token_logprobs(d.text)
        slots = d.text.split()
        joint = []
        for k in range(4):  # log p(topic) + sum of log p(word | topic), by hand
            total = -math.log(4)
            for i, w in enumerate(slots):
                if i % 6 in (0, 3):
                    total -= math.log(len(NEUTRAL_LEXICON["det"]))
                elif i % 6 != 5:
                    total += math.log(src.probs["all"]["verb" if i % 6 == 2 else "noun"][k][w])
            joint.append(total)
        m = max(joint)
        assert math.isclose(sum(lp), m + math.log(sum(math.exp(j - m) for j in joint)), rel_tol=1e-9)
        assert len(lp) == len(slots)


def test_knowing_the_topic_lowers_the_loss(src):
    docs = src.sample(300, seed=9)
    best = -sum(sum(src.token_logprobs(d.text)) for d in docs)
    blind = -sum(sum(src.token_logprobs(d.text, use_topic=False)) for d in docs)
    assert best < blind
    one = docs[0].text
    assert src.token_logprobs(one)[:2] == src.token_logprobs(one, use_topic=False)[:2]  # nothing seen yet


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_sentences=0), "n_sentences"),
    (dict(p_topic=0.7, p_stray=0.3), r"p_topic \+ p_stray < 1"),
    (dict(p_topic=0.0), "p_topic > 0"),
    (dict(n_seen=3), "n_seen"),
    (dict(lexicon={"food": TOPIC_LEXICON["food"]}), "at least 2 topics"),
    (dict(lexicon={"a": TOPIC_LEXICON["food"], "b": TOPIC_LEXICON["food"]}), "appears twice"),
    (dict(lexicon={"a": TOPIC_LEXICON["food"], "b": {"noun": TOPIC_LEXICON["sport"]["noun"]}}), "exactly 'noun' and 'verb'"),
])
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TopicSource(**kwargs)


def test_bad_calls_raise(src):
    with pytest.raises(ValueError, match="synonyms"):
        src.sample(3, synonyms="some")
    with pytest.raises(ValueError, match="n must be"):
        src.sample(-1)
    with pytest.raises(ValueError, match="sentences of 6 tokens"):
        src.posterior("the soup cooked a man")
    with pytest.raises(ValueError, match="cannot stand"):
        src.posterior("the cooked soup a man .")
    with pytest.raises(ValueError, match="impossible"):
        src.posterior("the broth cooked a man .", synonyms="seen")  # an unseen synonym in a 'seen' document
    with pytest.raises(TypeError, match="str"):
        src.posterior(["the", "soup"])
    with pytest.raises(ValueError, match="at least one"):
        src.bayes_accuracy([])
