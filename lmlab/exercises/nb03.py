"""Exercises for notebook 03, "Tokenization and embeddings": the two building blocks of BPE training.

In the notebook::

    from lmlab.exercises import nb03 as ex

    def merge(ids, pair, new_id): ...
    ex.q1.check(merge)          # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()

The functions the learner writes (checked against `lmlab.tokenizers.merge` and `get_stats`):

- q1 ``merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]``: replace every
  occurrence of ``pair`` by ``new_id``, scanning left to right without overlaps
  (``merge([5, 5, 5], (5, 5), 6) -> [6, 5]``).
- q2 ``get_stats(ids: list[int]) -> dict[tuple[int, int], int]``: how often each adjacent pair occurs
  (overlapping pairs count: ``[1, 1, 1]`` has ``(1, 1)`` twice).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from lmlab.exercises.core import CheckFailed, Exercise, ExerciseSet, as_index, call_safely, diagnosing
from lmlab.exercises.describe import type_name
from lmlab.tokenizers import get_stats as ref_get_stats
from lmlab.tokenizers import merge as ref_merge

__all__ = ["q1", "q2", "EXERCISES", "progress", "ref_merge", "ref_get_stats"]


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
# q2 get_stats

_Q2_CASES: list[list[int]] = [
    [97, 97, 97, 98, 100, 97, 97, 97, 98, 97, 99],  # "aaabdaaabac": first and last pairs differ
    [1, 2, 3, 1, 2],
    [1, 1, 1],  # overlapping pairs count
    [4, 5],  # one pair
    [7],  # no pair
    [],
]


def _q2_hidden(rng: random.Random) -> list[list[int]]:
    return [_random_ids(rng, rng.randint(2, 30)) for _ in range(3)]


def _check_get_stats(fn: Any, timeout: float, cases: list[list[int]]) -> None:
    for ids in cases:
        shown = f"ids={ids}"
        got = call_safely(fn, list(ids), timeout=timeout, show_input=shown)
        expected = ref_get_stats(ids)
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        if got is None:
            raise fail("`get_stats` returned None; it should return a dict {(a, b): count}. Did you forget `return`?")
        if not isinstance(got, dict):
            raise fail(f"`get_stats` should return a dict mapping pairs (tuples) to counts, but it returned "
                       f"{type_name(got)}.")
        got_clean = {tuple(k) if isinstance(k, (list, tuple)) else k: as_index(v) for k, v in got.items()}
        got_clean = {k: v for k, v in got_clean.items() if v != 0}
        if got_clean == expected:
            continue
        with diagnosing():
            _diagnose_get_stats(got_clean, expected, ids, fail)
        raise fail("The pair counts are not what they should be.")


def _diagnose_get_stats(got: dict, expected: dict, ids: list[int], fail: Any) -> None:
    if any(not isinstance(k, tuple) for k in got):
        raise fail("The keys should be pairs of ids, tuples (a, b), e.g. (1, 2).")
    if len(ids) >= 2 and got == ref_get_stats(ids[:-1]):
        raise fail("The last pair (ids[-2], ids[-1]) is missing: an off-by-one. A list of n ids has n - 1 "
                   "adjacent pairs: zip(ids, ids[1:]).")
    if len(ids) >= 2 and got == ref_get_stats(ids[1:]):
        raise fail("The first pair (ids[0], ids[1]) is missing: an off-by-one. Start at index 0: zip(ids, ids[1:]).")
    wrap = ref_get_stats(list(ids) + list(ids[:1])) if ids else {}
    if len(ids) >= 2 and got == wrap:
        raise fail("There is an extra pair from the last id back to the first (a wrap-around, e.g. ids[i - 1] "
                   "with i = 0). There are only len(ids) - 1 pairs: zip(ids, ids[1:]).")
    if all(v == 1 for v in got.values()) and set(got) == set(expected):
        raise fail("Every pair has count 1: count repeats, counts[pair] = counts.get(pair, 0) + 1.")
    if set(got) == set(expected):
        raise fail("The pairs are right but some counts are wrong. Overlapping pairs count: [1, 1, 1] "
                   "holds (1, 1) twice.")


q2 = Exercise(
    name="q2",
    title="get_stats(ids)",
    points=2,
    prompt=(
        "Write `get_stats(ids)` that returns a dict mapping every adjacent pair (ids[i], ids[i + 1]) to how "
        "often it occurs. Overlapping pairs count: get_stats([1, 1, 1]) == {(1, 1): 2}. Example: "
        "get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}."
    ),
    checker=_check_get_stats,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    forbidden=("lmlab.tokenizers.get_stats",),
    hints=[
        "A list of n ids has n - 1 adjacent pairs: (ids[0], ids[1]), ..., (ids[n - 2], ids[n - 1]).",
        "zip(ids, ids[1:]) yields exactly those pairs; count them in a dict.",
        "counts = {}; for pair in zip(ids, ids[1:]): counts[pair] = counts.get(pair, 0) + 1",
    ],
    solution_code='''\
def get_stats(ids):
    counts = {}
    for pair in zip(ids, ids[1:]):      # n - 1 adjacent pairs
        counts[pair] = counts.get(pair, 0) + 1
    return counts
''',
    explanation=(
        "BPE picks the pair to merge next by counting all adjacent pairs; the most frequent one becomes a new "
        "token. zip(ids, ids[1:]) pairs every id with its successor and stops at the shorter list, so it "
        "gives exactly n - 1 pairs with no index arithmetic to get wrong. (collections.Counter(zip(ids, "
        "ids[1:])) is the same thing in one line.)"
    ),
)

EXERCISES = ExerciseSet("nb03", "03 · Tokenization and embeddings", [q1, q2])
progress = EXERCISES.progress
