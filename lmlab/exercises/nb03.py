"""Exercises for notebook 03, "Tokenization and embeddings": BPE's merge, WordPiece's score, encoding.

In the notebook::

    from lmlab.exercises import nb03 as ex

    def merge(ids, pair, new_id): ...
    ex.q1.check(merge)          # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()

The functions the learner writes (checked against references built on `lmlab.tokenizers`):

- q1 ``merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]``: replace every
  occurrence of ``pair`` by ``new_id``, scanning left to right without overlaps
  (``merge([5, 5, 5], (5, 5), 6) -> [6, 5]``).
- q2 ``wordpiece_scores(ids: list[int]) -> dict[tuple[int, int], float]``: WordPiece's merge score
  ``count(a, b) / (count(a) * count(b))`` for every adjacent pair (pair counts as ``get_stats``).
- q3 ``bpe_encode(text: str, merges: list[((int, int), int)]) -> list[int]``: the UTF-8 bytes of ``text`` with
  every merge applied in the order it was learned (no pre-tokenization).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import torch

from lmlab.exercises.core import CheckFailed, Exercise, ExerciseSet, as_index, as_number, call_safely, diagnosing
from lmlab.exercises.describe import type_name
from lmlab.tokenizers import get_stats as ref_get_stats
from lmlab.tokenizers import merge as ref_merge
from lmlab.tokenizers import textbook_merges

__all__ = ["q1", "q2", "q3", "EXERCISES", "progress", "ref_merge", "ref_get_stats", "ref_wordpiece_scores",
           "ref_bpe_encode"]


def _as_list(x: Any) -> Any:
    """A returned sequence of ids as a list of ints (a tuple or a 1-D tensor too); anything else unchanged."""
    if isinstance(x, torch.Tensor) and x.dim() == 1 and not x.is_floating_point():
        return [int(i) for i in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [as_index(i) for i in x]
    return x


def _random_ids(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(4) for _ in range(n)]  # a small alphabet: pairs repeat and overlap


# ----------------------------------------------------------------------------------------------------
# q1 merge

_Q1_CASES: list[tuple[list[int], tuple[int, int], int]] = [
    ([1, 2, 3, 1, 2], (1, 2), 4),  # two occurrences, one at the very end
    ([5, 5, 5], (5, 5), 6),  # overlapping: only the first (5, 5) is merged
    ([5, 5, 5, 5], (5, 5), 6),  # two non-overlapping
    ([7, 8, 9], (8, 9), 10),  # the pair at the end: last element used
    ([7, 8, 9], (1, 2), 10),  # no occurrence: unchanged
    ([3], (3, 3), 4),  # a single token
    ([], (1, 2), 3),  # empty
    ([97, 97, 97, 98, 100, 97, 97, 97, 98, 97, 99], (97, 97), 256),  # "aaabdaaabac"
]


def _q1_hidden(rng: random.Random) -> list[tuple[list[int], tuple[int, int], int]]:
    cases = []
    for n in (rng.randint(8, 30), rng.randint(8, 30), rng.randint(2, 6)):
        ids = _random_ids(rng, n)
        i = rng.randrange(n - 1)
        cases.append((ids, (ids[i], ids[i + 1]), rng.randint(256, 300)))  # a pair that occurs
    cases.append((_random_ids(rng, 10), (rng.randrange(4), rng.randrange(4)), 256))  # may occur or not
    return cases


def _check_merge(fn: Any, timeout: float, cases: list[tuple[list[int], tuple[int, int], int]]) -> None:
    for ids, pair, idx in cases:
        shown = f"ids={ids}, pair={pair}, new_id={idx}"
        got = _as_list(call_safely(fn, list(ids), pair, idx, timeout=timeout, show_input=shown))
        expected = ref_merge(ids, pair, idx)
        if got == expected:
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        if got is None:
            raise fail("`merge` returned None; it should return a new list of ints. Did you forget `return`?")
        if not isinstance(got, list):
            raise fail(f"`merge` should return a list of ints, but it returned {type_name(got)}.")
        with diagnosing():
            _diagnose_merge(got, expected, ids, pair, idx, fail)
        raise fail("The result of `merge` is not what it should be.")


def _diagnose_merge(got: list, expected: list, ids: list[int], pair: tuple[int, int], idx: int, fail: Any) -> None:
    if ids and got == expected[:-1] and len(expected) >= 1:
        raise fail("The last element is missing. When the loop stops one short of the end (to look at "
                   "ids[i + 1]), the final token must still be appended if it was not merged.")
    if pair[0] == pair[1] and len(got) < len(expected) and idx in got:
        raise fail("Overlapping occurrences were merged more than once. In [5, 5, 5] the pair (5, 5) is "
                   "merged once, giving [6, 5]: after a merge, skip BOTH tokens (i += 2) and keep scanning.")
    if pair[0] == pair[1] and got.count(idx) > expected.count(idx):
        raise fail("Overlapping occurrences were merged more than once. In [5, 5, 5] the pair (5, 5) is "
                   "merged once, giving [6, 5]: after a merge, skip BOTH tokens (i += 2).")
    if got == list(ids) and ids != expected:
        raise fail("The list came back unchanged: the pair was never replaced. Compare (ids[i], ids[i + 1]) "
                   "with the pair and append new_id when they match.")
    if len(got) > len(expected) and idx in got:
        raise fail("new_id was appended but the pair's tokens were kept too: after a match, skip both "
                   "tokens (i += 2) instead of appending them.")


q1 = Exercise(
    name="q1",
    title="merge(ids, pair, new_id)",
    points=2,
    prompt=(
        "Write `merge(ids, pair, new_id)` that returns a NEW list in which every occurrence of the adjacent "
        "pair `pair` in `ids` is replaced by the single id `new_id`, scanning from left to right. Occurrences "
        "do not overlap: merge([5, 5, 5], (5, 5), 6) == [6, 5]. Example: merge([1, 2, 3, 1, 2], (1, 2), 4) "
        "== [4, 3, 4]."
    ),
    checker=_check_merge,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    forbidden=("lmlab.tokenizers.merge",),
    hints=[
        "Walk through ids with an index i (a while loop), building a new list `out`.",
        "At position i, if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair, append new_id and jump i += 2; "
        "otherwise append ids[i] and move i += 1.",
        "The `i < len(ids) - 1` test belongs inside the loop (the loop itself runs while i < len(ids)), so the "
        "last token is still appended when it is not part of a match.",
    ],
    solution_code='''\
def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)   # the pair becomes one token
            i += 2               # skip both: occurrences never overlap
        else:
            out.append(ids[i])
            i += 1
    return out
''',
    explanation=(
        "BPE training repeatedly replaces the most frequent pair with a new token; `merge` is that replacement. "
        "Scanning left to right and jumping over both tokens of a match makes the result well defined when the "
        "pair overlaps itself ((a, a) in 'aaa' gives [aa, a], not [aa, aa]), and it is exactly what the "
        "tokenizer does again at encoding time, so training and encoding agree."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 wordpiece_scores


def ref_wordpiece_scores(ids: list[int]) -> dict[tuple[int, int], float]:
    """Reference for q2: count(a, b) / (count(a) * count(b)) for every adjacent pair that occurs."""
    singles = Counter(ids)
    return {pair: c / (singles[pair[0]] * singles[pair[1]]) for pair, c in ref_get_stats(ids).items()}


_Q2_CASES: list[list[int]] = [
    [97, 97, 97, 98, 100, 97, 97, 97, 98, 97, 99],  # "aaabdaaabac"
    [1, 2, 3, 1, 2],
    [1, 1, 1],  # (1, 1) twice, and 1 three times: 2 / 9
    [4, 5],
    [7],  # no pair: an empty dict
    [5, 6, 5, 6, 7, 8, 8, 8, 7, 8],  # (5, 6) is rarer than (8, 8) but scores higher
]


def _q2_hidden(rng: random.Random) -> list[list[int]]:
    return [_random_ids(rng, rng.randint(2, 30)) for _ in range(3)]


def _diagnose_wordpiece(got: dict, ids: list[int], fail: Any) -> None:
    pairs, singles = ref_get_stats(ids), Counter(ids)
    close = lambda a, b: set(a) == set(b) and all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(b[k])) for k in b)  # noqa: E731
    if close(got, {p: float(c) for p, c in pairs.items()}):
        raise fail("These are BPE's pair counts. WordPiece divides each count by how often the two parts occur "
                   "on their own: count(a, b) / (count(a) * count(b)).")
    if close(got, {p: c / singles[p[0]] for p, c in pairs.items()}):
        raise fail("You divided by count(a) only: divide by count(a) * count(b), the product of both parts' counts.")
    if close(got, {p: c / (singles[p[0]] + singles[p[1]]) for p, c in pairs.items()}):
        raise fail("You divided by count(a) + count(b); the score divides by the product count(a) * count(b).")
    if close(got, {p: singles[p[0]] * singles[p[1]] / c for p, c in pairs.items()}):
        raise fail("The fraction is upside down: count(a, b) / (count(a) * count(b)).")
    n = len(ids)
    if close(got, {p: (c / (n - 1)) / ((singles[p[0]] / n) * (singles[p[1]] / n)) for p, c in pairs.items()}):
        raise fail("This is the score with probabilities instead of counts (a constant factor n^2 / (n - 1) "
                   "times the one asked for): use the plain counts.")


def _check_wordpiece_scores(fn: Any, timeout: float, cases: list[list[int]]) -> None:
    for ids in cases:
        shown = f"ids={ids}"
        got = call_safely(fn, list(ids), timeout=timeout, show_input=shown)
        expected = ref_wordpiece_scores(ids)
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        if got is None:
            raise fail("`wordpiece_scores` returned None; it should return a dict {(a, b): score}. "
                       "Did you forget `return`?")
        if not isinstance(got, dict):
            raise fail(f"`wordpiece_scores` should return a dict mapping pairs (tuples) to scores, but it "
                       f"returned {type_name(got)}.")
        try:
            clean = {tuple(k) if isinstance(k, (list, tuple)) else k: as_number(v, "wordpiece_scores", show_input=shown)
                     for k, v in got.items()}
        except TypeError:
            raise fail("The keys should be pairs of ids, tuples (a, b).") from None
        clean = {k: v for k, v in clean.items() if v != 0}
        if set(clean) == set(expected) and all(abs(clean[k] - v) <= 1e-6 * max(1.0, v) for k, v in expected.items()):
            continue
        with diagnosing():
            _diagnose_wordpiece(clean, ids, fail)
        if set(clean) != set(expected):
            raise fail("The pairs (the dict's keys) are not the adjacent pairs of ids: zip(ids, ids[1:]).")
        raise fail("Some scores are wrong: score(a, b) = count(a, b) / (count(a) * count(b)), where count(a) "
                   "counts every occurrence of a in ids.")


q2 = Exercise(
    name="q2",
    title="wordpiece_scores(ids)",
    points=2,
    prompt=(
        "BPE merges the most FREQUENT pair. WordPiece (BERT's tokenizer) merges the pair with the highest score "
        "count(a, b) / (count(a) * count(b)): a pair scores high when its parts occur mostly together, not just "
        "often. Write `wordpiece_scores(ids)` that returns a dict mapping every adjacent pair (a, b) of `ids` to "
        "that score, where count(a, b) counts adjacent pairs as get_stats does (overlaps count) and count(a) "
        "counts every occurrence of a in ids. Example: [1, 1, 1] -> {(1, 1): 2 / 9}."
    ),
    checker=_check_wordpiece_scores,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    forbidden=("lmlab.exercises.nb03.ref_wordpiece_scores",),
    hints=[
        "Two counts: the pairs (as my_get_stats in the notebook) and the single ids (collections.Counter(ids)).",
        "For each pair (a, b) with count c: score = c / (singles[a] * singles[b]).",
        "pairs = Counter(zip(ids, ids[1:])); singles = Counter(ids); "
        "return {(a, b): c / (singles[a] * singles[b]) for (a, b), c in pairs.items()}",
    ],
    solution_code='''\
from collections import Counter

def wordpiece_scores(ids):
    pairs = Counter(zip(ids, ids[1:]))        # count(a, b), overlaps included
    singles = Counter(ids)                    # count(a)
    return {(a, b): c / (singles[a] * singles[b]) for (a, b), c in pairs.items()}
''',
    explanation=(
        "count(a, b) / (count(a) count(b)) is, up to a constant, p(a, b) / (p(a) p(b)): how much more often a "
        "and b are adjacent than if they were placed independently (pointwise mutual information, before the "
        "log). BPE would merge 'e' + ' ' first, because both are everywhere; WordPiece prefers pairs of rare "
        "parts that stick together, such as the pieces of a rare word, and merges a very frequent letter with "
        "anything only late."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 bpe_encode

_TRAIN = "the cat sat on the mat. the cat ate the hat. a cat, a hat, a mat."
_MERGES = textbook_merges(_TRAIN, 256 + 12, None)


def ref_bpe_encode(text: str, merges: list[tuple[tuple[int, int], int]]) -> list[int]:
    """Reference for q3: the UTF-8 bytes of text, then every merge in the order it was learned."""
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges:
        ids = ref_merge(ids, pair, new_id)
    return ids


_Q3_CASES: list[tuple[str, list]] = [
    ("the cat", _MERGES),
    ("that hat sat", _MERGES),  # "the" is never completed: merges apply only where the bytes match
    ("a cat, the mat.", _MERGES[:3]),  # only the first three merges
    ("café the cat", _MERGES),  # é is two bytes (195, 169): no merge touches them
    ("", _MERGES),
    ("the the the", [((116, 104), 256), ((256, 101), 257), ((257, 32), 258)]),  # a merge of merges of merges
]


def _q3_hidden(rng: random.Random) -> list[tuple[str, list]]:
    words = ["the", "cat", "sat", "on", "mat", "hat", "a", "ate", "é"]
    return [(" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))), _MERGES[: rng.randint(1, len(_MERGES))])
            for _ in range(3)]


def _check_bpe_encode(fn: Any, timeout: float, cases: list[tuple[str, list]]) -> None:
    for text, merges in cases:
        shown = f"text={text!r}, merges = the first {len(merges)} merges of {[m for m in merges[:4]]}..."
        got = _as_list(call_safely(fn, text, list(merges), timeout=timeout, show_input=shown))
        expected = ref_bpe_encode(text, merges)
        if got == expected:
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        if not isinstance(got, list) or not all(isinstance(i, int) for i in got):
            what = type_name(got) if not isinstance(got, list) else "a list holding other things than ints"
            raise fail(f"`bpe_encode` should return a list of ints (token ids), but it returned {what}.")
        with diagnosing():
            if got == list(text.encode("utf-8")):
                raise fail("These are the text's bytes, with no merge applied: apply each merge in turn.")
            reverse = list(text.encode("utf-8"))
            for pair, new_id in reversed(merges):
                reverse = ref_merge(reverse, pair, new_id)
            if got == reverse:
                raise fail("The merges were applied in reverse order. Apply them in the order they were learned: "
                           "a later merge may need the tokens an earlier one made.")
            chars = [ord(c) for c in text]
            for pair, new_id in merges:
                chars = ref_merge(chars, pair, new_id)
            if got == chars:
                raise fail("You started from characters (ord(c)); byte-level BPE starts from the UTF-8 bytes, "
                           "list(text.encode('utf-8')): 'é' is two bytes.")
            if merges and got == ref_merge(list(text.encode("utf-8")), *merges[0]):
                raise fail("Only the first merge was applied: loop over all of them.")
        raise fail("The ids differ from what the merges give.")


q3 = Exercise(
    name="q3",
    title="bpe_encode(text, merges)",
    points=2,
    prompt=(
        "Training learned a list of merges; encoding a NEW text replays them. Write `bpe_encode(text, merges)` "
        "that returns the token ids of `text` (a list of ints): start from its UTF-8 bytes and apply every merge "
        "((a, b), new_id) of the list `merges` (the format of `tok.merges`, in the order they were learned) to "
        "the whole sequence, replacing each occurrence of (a, b) left to right without overlaps. No "
        "pre-tokenization (pattern=None)."
    ),
    checker=_check_bpe_encode,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    forbidden=("lmlab.tokenizers.bpe.BPETokenizer.encode", "lmlab.exercises.nb03.ref_bpe_encode"),
    hints=[
        "Start: ids = list(text.encode('utf-8')). Then the merges, one after the other, in the list's order.",
        "For each (pair, new_id) in merges: ids = merge(ids, pair, new_id), with your merge of q1 (or the "
        "notebook's my_merge). A merge made of earlier merges only finds its pair after those ran: the order "
        "matters.",
        "ids = list(text.encode('utf-8')); for pair, new_id in merges: ids = merge(ids, pair, new_id); return ids",
    ],
    solution_code='''\
def bpe_encode(text, merges):
    ids = list(text.encode("utf-8"))          # byte-level: any text, 0..255
    for pair, new_id in merges:               # in the order they were learned
        out, i = [], 0
        while i < len(ids):                   # replace the pair left to right, no overlaps (as q1)
            if i < len(ids) - 1 and (ids[i], ids[i + 1]) == tuple(pair):
                out.append(new_id)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids
''',
    explanation=(
        "Encoding repeats training's replacements in the same order, so a text is cut the way the training text "
        "was. Order matters because later merges are built from earlier ones: (256, 101) can only match after "
        "(116, 104) -> 256 has run. Applying every merge to the whole sequence costs one pass per merge; real "
        "tokenizers (minbpe, tiktoken) instead look for the pair with the lowest merge rank in the current "
        "sequence, which gives the same ids with fewer passes."
    ),
)

EXERCISES = ExerciseSet("nb03", "03 · Tokenization and embeddings", [q1, q2, q3])
progress = EXERCISES.progress
