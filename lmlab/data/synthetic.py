"""Synthetic text with an exactly known distribution, to compare a trained model with the best possible.

``MarkovSource``: a random n-gram Markov chain over a small alphabet. Its entropy rate (nats per token)
is the lowest cross-entropy any model can reach on its samples.

``GrammarSource``: a tiny probabilistic grammar of English-like sentences with a hidden label (mood:
negative/positive) that shifts the probabilities of adjectives, verbs and adverbs. Sentence
log-probabilities, the posterior p(label | text) and the Bayes-optimal accuracy are exact.

Both are built with Python's ``random.Random`` (Mersenne Twister, the same on every platform), never the
torch RNG, so a given seed gives the same source and the same samples everywhere.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import NamedTuple

import torch

# ---------------------------------------------------------------------------------------------------
# Markov chains
# ---------------------------------------------------------------------------------------------------


class MarkovSource:
    """A random Markov chain of order ``order`` over the characters of ``alphabet``.

    A *context* is the previous ``order`` characters. Each context has its own next-character
    distribution, drawn once from a Dirichlet(``concentration``) distribution: small concentrations
    (0.1 to 0.5) make rows peaked with some rare transitions, large ones (10+) make them near uniform.
    The drawn probabilities are rounded to integer weights (every weight >= 1, so every transition is
    possible and the chain has one stationary distribution); sampling uses only integers.

    Contexts are numbered in lexicographic order: context (c_1, ..., c_k) has id sum c_i V^(k-i), where
    c_i are character ids and V = len(alphabet).

    Shape:
        transition_matrix (V^k, V): row = context id, column = next character id; rows sum to 1.
        stationary (V^k,): the stationary distribution over contexts.

    Example:
        >>> src = MarkovSource("abc", order=1, seed=0)
        >>> text = src.sample(20, seed=1)           # a 20-character string over "abc"
        >>> src.entropy_rate()                      # nats per character (float)
    """

    SCALE = 1 << 20  # integer weights: probabilities are multiples of about 1 / (V * SCALE * mean gamma)

    def __init__(self, alphabet: str = "abcdefgh", order: int = 1, seed: int = 0, concentration: float = 0.5):
        if not isinstance(alphabet, str) or len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:
            raise ValueError(f"alphabet must be a string of at least 2 distinct characters, got {alphabet!r}")
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        if len(alphabet) ** order > 100_000:
            raise ValueError(
                f"{len(alphabet)} characters and order {order} give {len(alphabet) ** order} contexts; "
                "keep len(alphabet) ** order <= 100,000 (use a smaller alphabet or order)"
            )
        if not concentration > 0:
            raise ValueError(f"concentration must be > 0, got {concentration}")
        self.alphabet, self.order, self.seed, self.concentration = alphabet, order, seed, concentration
        V = len(alphabet)
        self.vocab_size = V
        self.n_contexts = V**order
        rng = random.Random(f"lmlab.MarkovSource:{seed}")
        self._weights: list[list[int]] = []
        for _ in range(self.n_contexts):
            g = [rng.gammavariate(concentration, 1.0) for _ in range(V)]
            total = sum(g)
            self._weights.append([max(1, round(x / total * self.SCALE)) for x in g])
        self._cum = [list(itertools.accumulate(w)) for w in self._weights]
        self.transition_matrix = torch.tensor(self._weights, dtype=torch.float64)  # (V^k, V)
        self.transition_matrix /= self.transition_matrix.sum(1, keepdim=True)
        self.stationary = self._stationary()  # (V^k,)
        self._stoi = {c: i for i, c in enumerate(alphabet)}

    def _stationary(self, tol: float = 1e-15, max_iter: int = 100_000) -> torch.Tensor:
        """Power iteration on contexts: pi'(b.., c) = sum_a pi(a, b..) P(c | a, b..)."""
        V, k = self.vocab_size, self.order
        P = self.transition_matrix.view(*([V] * k), V)  # (V, ..., V, V): k context axes, then next char
        pi = torch.full([V] * k, 1.0 / self.n_contexts, dtype=torch.float64)  # (V,)*k
        for _ in range(max_iter):
            new = (pi.unsqueeze(-1) * P).sum(0)  # (V,)*k: drop the oldest character, append the next
            if k == 1:
                new = new.reshape(V)
            new /= new.sum()
            if (new - pi).abs().sum() < tol:
                pi = new
                break
            pi = new
        return pi.reshape(-1)

    def context_id(self, context: str) -> int:
        """Id of a context of ``order`` characters. Example ("abc", order 2): "ba" -> 1 * 3 + 0 = 3."""
        if len(context) != self.order:
            raise ValueError(f"a context has {self.order} characters, got {context!r}")
        idx = 0
        for ch in context:
            idx = idx * self.vocab_size + self._stoi[ch]
        return idx

    def encode(self, text: str) -> list[int]:
        """Character ids. Example ("abc"): "cab" -> [2, 0, 1]."""
        try:
            return [self._stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the alphabet {self.alphabet!r}") from None

    def decode(self, ids: list[int]) -> str:
        return "".join(self.alphabet[i] for i in ids)

    def sample_ids(self, n_tokens: int, seed: int = 0, burn_in: int = 1000) -> list[int]:
        """``n_tokens`` character ids from the chain.

        The chain starts from the context made of the first character repeated and runs ``burn_in``
        steps that are thrown away, so the sample starts (up to a negligible error) in the stationary
        distribution. Only integers are used: the result is the same on every platform.
        """
        if n_tokens < 0:
            raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
        rng = random.Random(f"lmlab.MarkovSource.sample:{self.seed}:{seed}")
        V, mod = self.vocab_size, self.n_contexts // self.vocab_size  # mod: V^(k-1), to drop the oldest char
        ctx = 0
        out = []
        cum, randrange, bisect_right = self._cum, rng.randrange, bisect.bisect_right
        for t in range(burn_in + n_tokens):
            row = cum[ctx]
            c = bisect_right(row, randrange(row[-1]))
            ctx = (ctx % mod) * V + c
            if t >= burn_in:
                out.append(c)
        return out

    def sample(self, n_tokens: int, seed: int = 0, burn_in: int = 1000) -> str:
        """A string of ``n_tokens`` characters (see ``sample_ids``)."""
        return self.decode(self.sample_ids(n_tokens, seed, burn_in))

    def entropy_rate(self) -> float:
        """H = sum over contexts of pi(ctx) * H(next | ctx), in nats per token (exact up to float64)."""
        P = self.transition_matrix  # (V^k, V)
        H_rows = -(P * P.log()).sum(1)  # (V^k,)
        return float((self.stationary * H_rows).sum())

    def cross_entropy(self, text: str | list[int]) -> float:
        """Mean -log p(x_t | previous ``order`` tokens) over t >= order, in nats (the true model's loss)."""
        ids = self.encode(text) if isinstance(text, str) else list(text)
        if len(ids) <= self.order:
            raise ValueError(f"need more than order={self.order} tokens to score, got {len(ids)}")
        logP = self.transition_matrix.log()  # (V^k, V)
        V, k = self.vocab_size, self.order
        t = torch.tensor(ids)
        ctx = torch.zeros(len(ids) - k, dtype=torch.long)  # (N - k,)
        for j in range(k):
            ctx = ctx * V + t[j : len(ids) - k + j]
        return float(-logP[ctx, t[k:]].mean())

    def __repr__(self) -> str:
        return (
            f"MarkovSource(alphabet={self.alphabet!r}, order={self.order}, seed={self.seed}, "
            f"concentration={self.concentration})"
        )


# ---------------------------------------------------------------------------------------------------
# A probabilistic grammar with a hidden label
# ---------------------------------------------------------------------------------------------------

# category -> {word: polarity}; polarity +1 leans positive, -1 negative, 0 neutral
DEFAULT_LEXICON: dict[str, dict[str, int]] = {
    "det": {"the": 0, "a": 0, "my": 0, "this": 0, "that": 0},
    "noun": {w: 0 for w in ["dog", "cat", "movie", "song", "pizza", "teacher", "garden", "phone", "story", "city"]},
    "adj": {
        **{w: 1 for w in ["good", "great", "lovely", "bright", "happy"]},
        **{w: -1 for w in ["bad", "awful", "dull", "sad", "broken"]},
        **{w: 0 for w in ["old", "new", "big", "small"]},
    },
    "verb": {
        **{w: 1 for w in ["loved", "liked", "enjoyed", "praised"]},
        **{w: -1 for w in ["hated", "ruined", "ignored", "feared"]},
        **{w: 0 for w in ["saw", "found", "met", "watched"]},
    },
    "adv": {
        **{w: 1 for w in ["happily", "warmly", "gladly"]},
        **{w: -1 for w in ["sadly", "badly", "angrily"]},
        **{w: 0 for w in ["slowly", "quickly", "again", "today"]},
    },
}

# the sentence: DET [ADJ] NOUN VERB DET [ADJ] NOUN [ADV] "."   (slot name, category, optional?)
_SLOTS = [
    ("det1", "det", False),
    ("adj1", "adj", True),
    ("noun1", "noun", False),
    ("verb", "verb", False),
    ("det2", "det", False),
    ("adj2", "adj", True),
    ("noun2", "noun", False),
    ("adv", "adv", True),
]


class Sentence(NamedTuple):
    """One sample. ``logprob`` is the marginal log p(text) (the label summed out), in nats."""

    text: str
    label: int  # 1 = positive, 0 = negative
    logprob: float


class GrammarSource:
    """Sentences "DET [ADJ] NOUN VERB DET [ADJ] NOUN [ADV]." with a hidden mood label.

    Generation: draw the label (positive with probability ``p_positive``), then fill the slots left to
    right; each optional slot is filled with probability ``p_adj`` / ``p_adv`` (the same for both
    labels) and each word is drawn from its category's distribution given the label. A word's weight
    is (4 if its polarity matches the label, 1.5 if neutral, 0.5 if opposite) times a factor in
    [0.5, 1.5) drawn from ``seed``; so "awful" is rare but possible in a positive sentence and the
    label cannot always be recovered. Every word belongs to exactly one category, so each text has
    one parse and its probability is exact.

    Example:
        >>> g = GrammarSource(seed=0)
        >>> s = g.sample(1, seed=0)[0]   # Sentence(text='a lovely garden found a phone.', label=1, logprob=-14.8...)
        >>> g.label_posterior(s.text)    # p(positive | text)
        >>> g.bayes_accuracy()           # the best accuracy any classifier can reach
    """

    label_names = ("negative", "positive")

    def __init__(
        self,
        seed: int = 0,
        p_positive: float = 0.5,
        p_adj: float = 0.5,
        p_adv: float = 0.4,
        lexicon: dict[str, dict[str, int]] | None = None,
    ):
        for name, p in (("p_positive", p_positive), ("p_adj", p_adj), ("p_adv", p_adv)):
            if not 0.0 < p < 1.0:
                raise ValueError(f"{name} must be strictly between 0 and 1, got {p}")
        lexicon = DEFAULT_LEXICON if lexicon is None else lexicon
        if set(lexicon) != {"det", "noun", "adj", "verb", "adv"}:
            raise ValueError(f"lexicon needs exactly the categories det, noun, adj, verb, adv; got {sorted(lexicon)}")
        self.category: dict[str, str] = {}
        for cat, words in lexicon.items():
            if not words:
                raise ValueError(f"lexicon category {cat!r} has no words")
            for w, pol in words.items():
                if w in self.category:
                    raise ValueError(f"word {w!r} is in both {self.category[w]!r} and {cat!r}; each word needs one category")
                if not w or not w.isalpha() or not w.islower() or pol not in (-1, 0, 1):
                    raise ValueError(f"lexicon entry {w!r}: {pol!r} must be a lowercase word with polarity -1, 0 or 1")
                self.category[w] = cat
        self.seed, self.p_positive, self.p_adj, self.p_adv = seed, p_positive, p_adj, p_adv
        rng = random.Random(f"lmlab.GrammarSource:{seed}")
        # word_probs[cat][label] = (words, probabilities)
        self.word_probs: dict[str, list[tuple[list[str], list[float]]]] = {}
        for cat, words in lexicon.items():
            names = list(words)
            jitter = [0.5 + rng.random() for _ in names]
            per_label = []
            for label in (0, 1):
                sign = 1 if label == 1 else -1
                w = [j * {1: 4.0, 0: 1.5, -1: 0.5}[words[n] * sign] for n, j in zip(names, jitter)]
                total = sum(w)
                per_label.append((names, [x / total for x in w]))
            self.word_probs[cat] = per_label
        self._logp = {
            cat: [dict(zip(names, (math.log(p) for p in probs))) for names, probs in per_label]
            for cat, per_label in self.word_probs.items()
        }
        self._cum = {
            cat: [list(itertools.accumulate(probs)) for _, probs in per_label] for cat, per_label in self.word_probs.items()
        }

    # -- sampling --------------------------------------------------------------------------------------

    def _draw(self, rng: random.Random, cat: str, label: int) -> str:
        names = self.word_probs[cat][label][0]
        cum = self._cum[cat][label]
        return names[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(names) - 1)]

    def sample(self, n: int, seed: int = 0) -> list[Sentence]:
        """``n`` sentences with their labels and exact marginal log-probabilities."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(f"lmlab.GrammarSource.sample:{self.seed}:{seed}")
        out = []
        for _ in range(n):
            label = 1 if rng.random() < self.p_positive else 0
            words = []
            for _slot, cat, optional in _SLOTS:
                p_fill = self.p_adj if cat == "adj" else self.p_adv
                if optional and rng.random() >= p_fill:
                    continue
                words.append(self._draw(rng, cat, label))
            text = " ".join(words) + "."
            out.append(Sentence(text, label, self.logprob(text)))
        return out

    # -- exact probabilities ---------------------------------------------------------------------------

    def parse(self, text: str) -> dict[str, str | None]:
        """Slot -> word (None for an empty optional slot). Raises ValueError if the grammar cannot make ``text``.

        Example: "the dog saw a big cat." -> {"det1": "the", "adj1": None, "noun1": "dog", "verb": "saw",
        "det2": "a", "adj2": "big", "noun2": "cat", "adv": None}
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        words = text[:-1].split(" ") if text.endswith(".") else None
        if not words or " ".join(words) + "." != text:
            raise ValueError(f"{text!r} is not a sentence of this grammar: expected lowercase words separated by single spaces, ending in '.'")
        unknown = [w for w in words if w not in self.category]
        if unknown:
            raise ValueError(f"{text!r}: the word(s) {unknown[:5]} are not in the grammar's lexicon")
        out: dict[str, str | None] = {}
        i = 0
        for slot, cat, optional in _SLOTS:
            if i < len(words) and self.category[words[i]] == cat:
                out[slot] = words[i]
                i += 1
            elif optional:
                out[slot] = None
            else:
                got = words[i] if i < len(words) else "the end of the sentence"
                raise ValueError(f"{text!r} does not parse: expected a {cat} for slot {slot!r}, got {got!r}")
        if i != len(words):
            raise ValueError(f"{text!r} does not parse: unexpected words after the sentence: {words[i:]}")
        return out

    def _slot_logp(self, slot_cat: str, optional: bool, word: str | None, label: int) -> float:
        p_fill = self.p_adj if slot_cat == "adj" else self.p_adv
        if word is None:
            return math.log1p(-p_fill)
        lp = self._logp[slot_cat][label][word]
        return lp + math.log(p_fill) if optional else lp

    def logprob(self, text: str, label: int | None = None) -> float:
        """log p(text) in nats, marginal over the label; with ``label`` given, the joint log p(text, label)."""
        parsed = self.parse(text)
        joint = []
        for lab in (0, 1):
            prior = self.p_positive if lab == 1 else 1.0 - self.p_positive
            lp = math.log(prior)
            for slot, cat, optional in _SLOTS:
                lp += self._slot_logp(cat, optional, parsed[slot], lab)
            joint.append(lp)
        if label is not None:
            if label not in (0, 1):
                raise ValueError(f"label must be 0 (negative) or 1 (positive), got {label!r}")
            return joint[label]
        m = max(joint)
        return m + math.log(sum(math.exp(x - m) for x in joint))

    def label_posterior(self, text: str) -> float:
        """p(label = positive | text), exact (Bayes' rule on the two joint probabilities)."""
        lp0, lp1 = self.logprob(text, 0), self.logprob(text, 1)
        return 1.0 / (1.0 + math.exp(lp0 - lp1))

    def bayes_accuracy(self) -> float:
        """The accuracy of the best possible classifier, sum over texts of max_label p(text, label). Exact.

        Computed without listing every sentence: a text's likelihood ratio p(text|1) / p(text|0) is a
        product over slots, so a dynamic program over slots keeps, for each distinct log-ratio, the total
        p(text | 0) and p(text | 1) of the texts that reach it.
        """
        table: dict[float, tuple[float, float]] = {0.0: (1.0, 1.0)}  # log-ratio -> (sum p(.|0), sum p(.|1))
        for _slot, cat, optional in _SLOTS:
            choices = list(self.word_probs[cat][0][0]) + ([None] if optional else [])
            steps = []
            for w in choices:
                a0, a1 = math.exp(self._slot_logp(cat, optional, w, 0)), math.exp(self._slot_logp(cat, optional, w, 1))
                steps.append((round(math.log(a1 / a0), 12), a0, a1))
            new: dict[float, tuple[float, float]] = {}
            for r, (s0, s1) in table.items():
                for dr, a0, a1 in steps:
                    key = round(r + dr, 12)
                    t0, t1 = new.get(key, (0.0, 0.0))
                    new[key] = (t0 + s0 * a0, t1 + s1 * a1)
            table = new
        prior_lr = math.log(self.p_positive / (1 - self.p_positive))
        acc = 0.0
        for r, (s0, s1) in table.items():
            acc += self.p_positive * s1 if r + prior_lr > 0 else (1 - self.p_positive) * s0
        return acc

    def __repr__(self) -> str:
        return f"GrammarSource(seed={self.seed}, p_positive={self.p_positive}, p_adj={self.p_adj}, p_adv={self.p_adv})"
