"""Documents with a hidden topic and synonyms: a task where pretraining on unlabelled text can transfer.

``TopicSource`` writes documents of several sentences "DET NOUN VERB DET NOUN ." that share one hidden
topic (label). Each topic has *concepts* (soup, bread, cake...), each written with several *synonyms*
(soup/broth/stew). In every content slot (the two nouns and the verb) the word is

- with probability ``p_topic`` a word of the document's topic,
- with probability ``p_stray`` a word of a topic drawn uniformly at random (noise: any topic),
- otherwise a neutral word (man, house, saw...), the same for every topic;

a topic word is a concept drawn uniformly, then one of its allowed synonyms drawn uniformly. The synonyms
of each concept are split into *seen* (the first ``n_seen``) and *unseen* (the rest): ``sample(...,
synonyms="seen")`` writes documents whose topic words are all seen synonyms, ``"unseen"`` only unseen
ones, ``"all"`` any. A classifier trained on labelled "seen" documents and tested on "unseen" ones never
saw a test document's topic words: bag-of-words cannot transfer, a model pretrained on "all" can.

Words are conditionally independent given the topic and the slot, so everything is exact:
``posterior`` (p(topic | words), Bayes' rule), ``bayes_accuracy`` (the expected accuracy of the best
classifier on given documents), and ``token_logprobs`` (the best possible next-token predictions, which
infer the topic from the words so far, and the best ones that ignore it).

Built with Python's ``random.Random`` (the same on every platform), never the torch RNG.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

__all__ = ["TOPIC_LEXICON", "NEUTRAL_LEXICON", "Document", "TopicSource"]

# topic -> {"noun": concepts, "verb": concepts}; a concept is a tuple of synonyms (the first are the "seen" ones)
TOPIC_LEXICON: dict[str, dict[str, list[tuple[str, ...]]]] = {
    "food": {"noun": [("soup", "broth", "stew"), ("bread", "loaf", "roll"), ("cake", "pie", "tart")],
             "verb": [("cooked", "baked", "roasted"), ("tasted", "ate", "sipped")]},
    "sport": {"noun": [("match", "game", "fixture"), ("team", "squad", "club"), ("goal", "score", "point")],
              "verb": [("played", "raced", "competed"), ("won", "beat", "defeated")]},
    "music": {"noun": [("song", "tune", "melody"), ("band", "choir", "orchestra"), ("guitar", "drum", "piano")],
              "verb": [("sang", "hummed", "chanted"), ("recorded", "composed", "wrote")]},
    "weather": {"noun": [("rain", "drizzle", "shower"), ("storm", "gale", "thunder"), ("sun", "sunshine", "heat")],
                "verb": [("soaked", "drenched", "flooded"), ("froze", "chilled", "cooled")]},
}
NEUTRAL_LEXICON: dict[str, list[str]] = {
    "det": ["the", "a", "my", "this", "that", "every"],
    "noun": ["man", "woman", "child", "friend", "teacher", "city", "house", "day"],
    "verb": ["saw", "liked", "found", "watched", "remembered", "described"],
}
_SENTENCE = ("det", "noun", "verb", "det", "noun")  # then "."
_SYNONYM_SETS = ("all", "seen", "unseen")


class Document(NamedTuple):
    """One sample: the text (sentences ending in " ."), its topic id and the synonym set it was drawn from."""

    text: str
    label: int
    synonyms: str


class TopicSource:
    """Documents of ``n_sentences`` sentences sharing one hidden topic (see the module docstring).

    Args:
        n_sentences: sentences per document (each is 6 tokens: 5 words and ".").
        p_topic: probability that a content slot holds a word of the document's own topic.
        p_stray: probability that it holds a word of a uniformly random topic (noise).
        n_seen: synonyms per concept in the "seen" set (the first ones); the rest are "unseen".
        lexicon: topic -> {"noun": concepts, "verb": concepts} (default ``TOPIC_LEXICON``).

    Example:
        >>> src = TopicSource()
        >>> doc = src.sample(1, seed=0)[0]         # Document(text='the soup ... .', label=0, synonyms='all')
        >>> src.posterior(doc.text)                 # [p(topic | text) for each topic]
        >>> src.bayes_accuracy(src.sample(500, seed=1, synonyms="unseen"))
    """

    def __init__(self, n_sentences: int = 3, p_topic: float = 0.3, p_stray: float = 0.1, n_seen: int = 1,
                 lexicon: dict[str, dict[str, list[tuple[str, ...]]]] | None = None):
        if not isinstance(n_sentences, int) or n_sentences < 1:
            raise ValueError(f"n_sentences must be a positive int, got {n_sentences!r}")
        if not (0.0 < p_topic and 0.0 <= p_stray and p_topic + p_stray < 1.0):
            raise ValueError(f"need p_topic > 0, p_stray >= 0 and p_topic + p_stray < 1, got {p_topic}, {p_stray}")
        lexicon = TOPIC_LEXICON if lexicon is None else lexicon
        self._check_lexicon(lexicon, n_seen)
        self.n_sentences, self.p_topic, self.p_stray, self.n_seen = n_sentences, p_topic, p_stray, n_seen
        self.topics = list(lexicon)
        self.lexicon = lexicon
        self.vocab = sorted({w for cat in NEUTRAL_LEXICON.values() for w in cat}
                            | {w for t in lexicon.values() for concepts in t.values() for c in concepts for w in c}) + ["."]
        self.topic_of = {w: k for k, t in enumerate(self.topics) for cs in lexicon[t].values() for c in cs for w in c}
        # probs[synonyms][category][topic] = {word: p(word | topic, slot of that category)}
        self.probs = {s: {cat: [self._slot_probs(cat, k, s) for k in range(len(self.topics))] for cat in ("noun", "verb")}
                      for s in _SYNONYM_SETS}

    @staticmethod
    def _check_lexicon(lexicon: dict, n_seen: int) -> None:
        if len(lexicon) < 2:
            raise ValueError(f"the lexicon needs at least 2 topics, got {len(lexicon)}")
        seen_words = {w for cat in NEUTRAL_LEXICON.values() for w in cat}
        for topic, cats in lexicon.items():
            if set(cats) != {"noun", "verb"}:
                raise ValueError(f"topic {topic!r} needs concepts for exactly 'noun' and 'verb', got {sorted(cats)}")
            for concepts in cats.values():
                for concept in concepts:
                    if not 1 <= n_seen < len(concept):
                        raise ValueError(f"n_seen must leave seen and unseen synonyms in every concept; "
                                         f"{concept} has {len(concept)} synonyms and n_seen is {n_seen!r}")
                    for w in concept:
                        if w in seen_words:
                            raise ValueError(f"word {w!r} appears twice in the lexicon; each word needs one place")
                        seen_words.add(w)

    def _allowed(self, concept: tuple[str, ...], synonyms: str) -> tuple[str, ...]:
        return {"all": concept, "seen": concept[: self.n_seen], "unseen": concept[self.n_seen :]}[synonyms]

    def _slot_probs(self, cat: str, topic: int, synonyms: str) -> dict[str, float]:
        """p(word | topic) in a content slot of category ``cat``: own topic, stray topic or neutral."""
        probs: dict[str, float] = {}
        n_topics = len(self.topics)
        for k, t in enumerate(self.topics):
            weight = self.p_topic * (k == topic) + self.p_stray / n_topics  # p(the slot draws topic k)
            concepts = self.lexicon[t][cat]
            for concept in concepts:
                allowed = self._allowed(concept, synonyms)
                for w in allowed:
                    probs[w] = weight / len(concepts) / len(allowed)
        neutral = NEUTRAL_LEXICON[cat]
        for w in neutral:
            probs[w] = (1.0 - self.p_topic - self.p_stray) / len(neutral)
        return probs

    # -- sampling --------------------------------------------------------------------------------------

    def sample(self, n: int, seed: int = 0, synonyms: str = "all", balanced: bool = False,
               n_sentences: int | None = None) -> list[Document]:
        """``n`` documents. ``synonyms``: "all", "seen" or "unseen". ``balanced``: topics in turn (0, 1, 2, ...)
        instead of uniformly at random, so a small labelled set has every topic. ``n_sentences``: sentences
        per document (default: the source's)."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        n_sentences = self.n_sentences if n_sentences is None else n_sentences
        if not isinstance(n_sentences, int) or n_sentences < 1:
            raise ValueError(f"n_sentences must be a positive int, got {n_sentences!r}")
        if synonyms not in _SYNONYM_SETS:
            raise ValueError(f"synonyms must be one of {_SYNONYM_SETS}, got {synonyms!r}")
        rng = random.Random(f"lmlab.TopicSource.sample:{seed}:{synonyms}:{n_sentences}")
        docs = []
        for i in range(n):
            label = i % len(self.topics) if balanced else rng.randrange(len(self.topics))
            sentences = []
            for _ in range(n_sentences):
                words = [self._draw(rng, cat, label, synonyms) for cat in _SENTENCE]
                sentences.append(" ".join(words) + " .")
            docs.append(Document(" ".join(sentences), label, synonyms))
        if balanced:
            rng.shuffle(docs)
        return docs

    def _draw(self, rng: random.Random, cat: str, label: int, synonyms: str) -> str:
        if cat == "det":
            return rng.choice(NEUTRAL_LEXICON["det"])
        u = rng.random()
        if u < self.p_topic + self.p_stray:
            topic = label if u < self.p_topic else rng.randrange(len(self.topics))
            concept = rng.choice(self.lexicon[self.topics[topic]][cat])
            return rng.choice(self._allowed(concept, synonyms))
        return rng.choice(NEUTRAL_LEXICON[cat])

    # -- exact probabilities ---------------------------------------------------------------------------

    def _slots(self, text: str) -> list[tuple[str, str]]:
        """(word, category) for every token of ``text``; raises ValueError if the template does not fit."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        words = text.split(" ")
        template = (list(_SENTENCE) + ["."]) * max(1, len(words) // 6)
        if len(words) != len(template):
            raise ValueError(f"a document is sentences of 6 tokens ('DET NOUN VERB DET NOUN .'), "
                             f"got {len(words)} tokens: {text[:60]!r}")
        for w, cat in zip(words, template):
            ok = w == "." if cat == "." else w in NEUTRAL_LEXICON["det"] if cat == "det" else w in self.probs["all"][cat][0]
            if not ok:
                raise ValueError(f"{w!r} cannot stand where the template has a {cat!r}: {text[:60]!r}")
        return list(zip(words, template))

    def _word_logp(self, word: str, cat: str, topic: int, synonyms: str) -> float:
        if cat == ".":
            return 0.0
        if cat == "det":
            return -math.log(len(NEUTRAL_LEXICON["det"]))
        p = self.probs[synonyms][cat][topic].get(word, 0.0)
        return math.log(p) if p > 0 else -math.inf

    def posterior(self, text: str, synonyms: str = "all") -> list[float]:
        """p(topic | text) for every topic (uniform prior), exact. ``synonyms``: the set the text was drawn from."""
        joint = [sum(self._word_logp(w, cat, k, synonyms) for w, cat in self._slots(text))
                 for k in range(len(self.topics))]
        m = max(joint)
        if m == -math.inf:
            raise ValueError(f"{text[:60]!r} is impossible under synonyms={synonyms!r}")
        e = [math.exp(j - m) for j in joint]
        return [x / sum(e) for x in e]

    def bayes_accuracy(self, docs: list[Document]) -> float:
        """Expected accuracy of the Bayes classifier (argmax of the posterior) on these documents' texts:
        the mean over documents of max_topic p(topic | text). The best any classifier can do on average."""
        if not docs:
            raise ValueError("bayes_accuracy needs at least one document")
        return sum(max(self.posterior(d.text, d.synonyms)) for d in docs) / len(docs)

    def token_logprobs(self, text: str, synonyms: str = "all", use_topic: bool = True) -> list[float]:
        """log p(token_t | tokens before t) for every token, in nats, under the true distribution.

        ``use_topic=True``: the best possible predictor, which infers the topic from the words so far
        (p(w_t | w_<t) = sum_k p(k | w_<t) p(w_t | k)). ``use_topic=False``: the best predictor that ignores
        the words so far (the topic averaged out at every slot). The gap is what learning topics is worth.
        """
        n_topics = len(self.topics)
        log_post = [-math.log(n_topics)] * n_topics  # log p(topic | words so far), starts uniform
        out = []
        for w, cat in self._slots(text):
            lp = [self._word_logp(w, cat, k, synonyms) for k in range(n_topics)]
            prior = log_post if use_topic else [-math.log(n_topics)] * n_topics
            joint = [a + b for a, b in zip(prior, lp)]
            m = max(joint)
            total = m + math.log(sum(math.exp(j - m) for j in joint))
            out.append(total)
            log_post = [j - total for j in joint]
        return out

    def __repr__(self) -> str:
        return (f"TopicSource(n_sentences={self.n_sentences}, p_topic={self.p_topic}, p_stray={self.p_stray}, "
                f"n_seen={self.n_seen}, topics={self.topics})")
