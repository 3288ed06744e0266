"""Exercises of notebook 03 (lmlab.exercises.nb03): references and worked solutions pass, typical wrong
answers of `merge` and `get_stats` fail with a specific message."""

from __future__ import annotations

import pytest

from lmlab.exercises import exercise_set
from lmlab.exercises import nb03 as ex
from exercise_helpers import fails_with, passes


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ex.ref_merge), (ex.q2, ex.ref_get_stats)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_counter_solution_passes():
    from collections import Counter

    assert ex.q2.evaluate(lambda ids: dict(Counter(zip(ids, ids[1:])))).passed
    assert ex.q2.evaluate(lambda ids: Counter(zip(ids, ids[1:]))).passed


def test_registered():
    assert exercise_set("nb03") is ex.EXERCISES


# ---------------------------------------------------------------------------------------------------
# q1 merge: typical wrong answers


def merge_overlapping_step1(ids, pair, new_id):
    """Replaces both positions of every overlapping occurrence (advances by 1 after a match)."""
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 1
            if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
                continue
            i += 1
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_drops_last(ids, pair, new_id):
    """Loops while i < len(ids) - 1 and forgets the last element."""
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_keeps_pair(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
            out += [new_id, ids[i], ids[i + 1]]
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_no_return(ids, pair, new_id):
    out = list(ids)  # forgets to return it


@pytest.mark.parametrize(
    "fn, fragment",
    [
        (merge_overlapping_step1, "Overlapping occurrences were merged more than once"),
        (merge_drops_last, "The last element is missing"),
        (lambda ids, pair, new_id: list(ids), "came back unchanged"),
        (merge_keeps_pair, "tokens were kept too"),
        (merge_no_return, "Did you forget `return`"),
    ],
)
def test_merge_wrong_answers(fn, fragment):
    fails_with(ex.q1, fn, fragment)


# ---------------------------------------------------------------------------------------------------
# q2 get_stats: typical wrong answers


def stats_from(pairs_of):
    def get_stats(ids):
        counts = {}
        for pair in pairs_of(list(ids)):
            counts[pair] = counts.get(pair, 0) + 1
        return counts

    return get_stats


@pytest.mark.parametrize(
    "fn, fragment",
    [
        (stats_from(lambda s: [(s[i], s[i + 1]) for i in range(len(s) - 2)]), "last pair (ids[-2], ids[-1]) is missing"),
        (stats_from(lambda s: [(s[i], s[i + 1]) for i in range(1, len(s) - 1)]), "first pair (ids[0], ids[1]) is missing"),
        (stats_from(lambda s: [(s[i - 1], s[i]) for i in range(len(s))] if len(s) > 1 else []), "wrap-around"),
        (lambda ids: {p: 1 for p in zip(ids, ids[1:])}, "Every pair has count 1"),
        (lambda ids: list(zip(ids, ids[1:])), "should return a dict"),
        (lambda ids: None, "Did you forget `return`"),
    ],
)
def test_get_stats_wrong_answers(fn, fragment):
    fails_with(ex.q2, fn, fragment)
