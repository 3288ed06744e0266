"""Exercises of notebook 03 (lmlab.exercises.nb03): references and worked solutions pass, typical wrong
answers of `merge`, `wordpiece_scores` and `bpe_encode` fail with a specific message."""

from __future__ import annotations

import pytest

from lmlab.exercises import exercise_set
from lmlab.exercises import nb03 as ex
from exercise_helpers import fails_with, passes, solution_function


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ex.ref_merge), (ex.q2, ex.ref_wordpiece_scores),
                                              (ex.q3, ex.ref_bpe_encode)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


@pytest.mark.parametrize("exercise, name", [(ex.q1, "merge"), (ex.q2, "wordpiece_scores"), (ex.q3, "bpe_encode")])
def test_worked_solution_passes(exercise, name):
    assert exercise.evaluate(solution_function(exercise, name)).passed


def test_wordpiece_prefers_parts_that_stick_together():
    scores = ex.ref_wordpiece_scores([5, 6, 5, 6, 7, 8, 8, 8, 7, 8])
    assert scores[(5, 6)] > scores[(8, 8)]  # (8, 8) occurs twice as often, but 8 is everywhere
    assert scores[(8, 8)] == pytest.approx(2 / 16)


def test_bpe_encode_reference_is_the_tokenizers_encoding():
    from lmlab.tokenizers import BPETokenizer

    text = "the cat sat on the mat. the cat ate the hat."
    tok = BPETokenizer(pattern=None).train(text, vocab_size=256 + 15, pattern=None)
    for s in ["the cat", "a hat on a mat", "café"]:
        assert ex.ref_bpe_encode(s, tok.merges) == tok.encode(s)


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
# q2 wordpiece_scores and q3 bpe_encode: typical wrong answers


def scores_from(value):
    """A wrong score: value(pair count, count of a, count of b, n) for each adjacent pair."""
    from collections import Counter

    def wordpiece_scores(ids):
        pairs, singles = Counter(zip(ids, ids[1:])), Counter(ids)
        return {(a, b): value(c, singles[a], singles[b], len(ids)) for (a, b), c in pairs.items()}

    return wordpiece_scores


@pytest.mark.parametrize(
    "fn, fragment",
    [
        (scores_from(lambda c, ca, cb, n: float(c)), "BPE's pair counts"),
        (scores_from(lambda c, ca, cb, n: c / ca), "divided by count(a) only"),
        (scores_from(lambda c, ca, cb, n: c / (ca + cb)), "count(a) + count(b)"),
        (scores_from(lambda c, ca, cb, n: ca * cb / c), "upside down"),
        (lambda ids: list(zip(ids, ids[1:])), "should return a dict"),
        (lambda ids: None, "Did you forget `return`"),
    ],
)
def test_wordpiece_wrong_answers(fn, fragment):
    fails_with(ex.q2, fn, fragment)


def encode_with(start, order):
    def bpe_encode(text, merges):
        ids = start(text)
        for pair, new_id in order(merges):
            ids = ex.ref_merge(ids, pair, new_id)
        return ids

    return bpe_encode


@pytest.mark.parametrize(
    "fn, fragment",
    [
        (encode_with(lambda t: list(t.encode()), lambda m: list(reversed(m))), "reverse order"),
        (encode_with(lambda t: [ord(c) for c in t], lambda m: m), "UTF-8 bytes"),
        (encode_with(lambda t: list(t.encode()), lambda m: m[:1]), "Only the first merge"),
        (encode_with(lambda t: list(t.encode()), lambda m: []), "no merge applied"),
        (lambda text, merges: [bytes([b]) for b in text.encode()], "should return a list of ints"),
    ],
)
def test_bpe_encode_wrong_answers(fn, fragment):
    fails_with(ex.q3, fn, fragment)
