"""The bigram tables of notebook 01's exercises: references, and the diagnosis of a wrong table.

q1 (`bigram_probs`) and q4 (`add_k_probs`) both return a (V, V) table of next-token probabilities, so
they share the references and the recognition of typical mistakes (counts instead of probabilities,
columns instead of rows, NaN or zero rows, a transition too many or too few). The exercises themselves
are in `lmlab.exercises.nb01`.
"""

from __future__ import annotations

from typing import Any

import torch

from lmlab.exercises.core import CheckFailed
from lmlab.exercises.describe import type_name

__all__ = ["as_ids", "transitions", "count_table", "bigram_counts", "normalize_rows", "ref_bigram_probs",
           "ref_interpolated_probs", "ref_stationary", "ref_entropy_rate", "show_ids", "tables_close",
           "check_table_type", "diagnose_probs"]

RTOL = 1e-4


# ----------------------------------------------------------------------------------------------------
# References (V: vocabulary size)


def as_ids(ids: Any) -> list[int]:
    return [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]


def count_table(pairs: list[tuple[int, int]], vocab_size: int) -> torch.Tensor:
    counts = torch.zeros(vocab_size, vocab_size)  # (V, V)
    for a, b in pairs:
        counts[a, b] += 1
    return counts


def bigram_counts(ids: Any, vocab_size: int) -> torch.Tensor:
    """count(a -> b) for the transitions of `ids`, as a float (V, V) table. Example: [0, 1, 0], 2 -> [[0, 1], [1, 0]]."""
    return count_table(transitions(ids), vocab_size)


def transitions(ids: Any) -> list[tuple[int, int]]:
    seq = as_ids(ids)
    return list(zip(seq[:-1], seq[1:]))


def normalize_rows(counts: torch.Tensor) -> torch.Tensor:
    """Rows divided by their totals; empty rows uniform."""
    V = counts.shape[1]
    totals = counts.sum(dim=1, keepdim=True)  # (V, 1)
    return torch.where(totals > 0, counts / totals.clamp_min(1e-30), torch.full_like(counts, 1.0 / V))


def ref_bigram_probs(ids: Any, vocab_size: int) -> torch.Tensor:
    """Reference for q1. Example: ids=[0, 1, 0], V=2 -> [[0, 1], [1, 0]]."""
    return normalize_rows(count_table(transitions(ids), vocab_size))


def ref_interpolated_probs(ids: Any, vocab_size: int, lam: float) -> torch.Tensor:
    """Reference for q2: lam * bigram MLE + (1 - lam) * unigram (count(b) / len(ids)). Shape: (V, V)"""
    seq = torch.as_tensor(as_ids(ids))
    unigram = torch.bincount(seq, minlength=vocab_size).double() / len(seq)  # (V,)
    return lam * ref_bigram_probs(ids, vocab_size).double() + (1 - lam) * unigram[None, :]


def ref_stationary(P: torch.Tensor) -> torch.Tensor:
    """The stationary distribution pi (pi P = pi, sum 1) of a transition table with positive entries:
    the left eigenvector of P for eigenvalue 1, normalized. Shape: (V, V) -> (V,) float64"""
    P = P.double()
    values, vectors = torch.linalg.eig(P.T)  # right eigenvectors of P.T are left eigenvectors of P
    pi = vectors[:, int((values - 1).abs().argmin())].real
    return pi / pi.sum()


def ref_entropy_rate(P: torch.Tensor) -> float:
    """Reference for q4: sum_a pi(a) H(P[a]) in nats."""
    P = P.double()
    return float((ref_stationary(P) * -(P * P.log()).sum(dim=1)).sum())


# ----------------------------------------------------------------------------------------------------
# Helpers shared by the checkers


def show_ids(ids: Any) -> str:
    if isinstance(ids, torch.Tensor):
        return f"torch.tensor({ids.tolist()})"
    return repr(ids)


def tables_close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=RTOL, atol=1e-5))


def check_table_type(got: Any, V: int, name: str, shown: str, counts: torch.Tensor | None = None) -> torch.Tensor:
    """A (V, V) floating tensor, or a kind CheckFailed about the type, shape or dtype."""
    if isinstance(got, (list, tuple)):
        raise CheckFailed(
            f"`{name}` returned {type_name(got)}; it should return a torch.Tensor of shape ({V}, {V}). "
            f"Build it with torch.zeros(...) and tensor operations, or wrap your result in torch.tensor(...).",
            input=shown,
        )
    if isinstance(got, torch.Tensor) and got.shape == (V, V) and not got.is_floating_point():
        if counts is not None and torch.equal(got.double(), counts.double()):
            raise CheckFailed(
                "These look like counts, not probabilities: divide each row by its total (as floats), "
                "counts / counts.sum(dim=1, keepdim=True), so that every row sums to 1.",
                input=shown,
                got=got,
            )
        raise CheckFailed(
            f"`{name}` returned an integer tensor ({got.dtype}). Probabilities are fractions: use a float "
            f"tensor, e.g. torch.zeros(V, V) (float32 by default), or convert counts with .float() before dividing.",
            input=shown,
            got=got,
        )
    if not isinstance(got, torch.Tensor):
        extra = " Did you forget a `return` statement?" if got is None else ""
        raise CheckFailed(
            f"`{name}` should return a torch.Tensor of shape ({V}, {V}), but it returned "
            f"{'None' if got is None else type_name(got)}.{extra}",
            input=shown,
            got=got,
        )
    if tuple(got.shape) != (V, V):
        raise CheckFailed(
            f"`{name}` returned a tensor of shape {tuple(got.shape)}; it should have shape (V, V) = ({V}, {V}): "
            f"one row per context token a, one column per next token b.",
            input=shown,
            got=got,
        )
    if not got.is_floating_point():
        raise CheckFailed(f"`{name}` returned a {got.dtype} tensor; it should be a float tensor.", input=shown, got=got)
    return got.detach().cpu().double()


def diagnose_probs(got: torch.Tensor, expected: torch.Tensor, ids: Any, V: int, name: str, shown: str) -> None:
    """Recognise the typical mistakes of a bigram probability table; raise CheckFailed about the first found."""
    counts = count_table(transitions(ids), V).double()
    seen = counts.sum(dim=1) > 0  # (V,) contexts followed by at least one token
    unseen = ~seen
    fail = CheckFailed.at(input=shown, expected=expected, got=got.float())

    if tables_close(got, counts) and not tables_close(counts, expected):
        raise fail("These look like counts, not probabilities: divide each row by its total, "
                   "counts / counts.sum(dim=1, keepdim=True), so that every row sums to 1.")
    seen_ok = tables_close(got[seen], expected[seen].double())
    if seen_ok and unseen.any():
        bad_rows = [int(i) for i in unseen.nonzero().flatten()]
        rows = got[unseen]
        if torch.isnan(rows).any():
            raise fail(f"Rows {bad_rows} are NaN: those tokens are never followed by anything, so their row "
                       f"is 0/0. The question asks for a uniform row there: every entry 1/V = 1/{V}.")
        if (rows == 0).all():
            raise fail(f"Rows {bad_rows} are all zeros: those tokens are never followed by anything. "
                       f"A row must still be a probability distribution: make it uniform, 1/V = 1/{V} each.")
        raise fail(f"Rows for contexts that are never followed by anything ({bad_rows}) should be "
                   f"uniform, 1/V = 1/{V} each; the other rows are right.")
    if torch.isnan(got).any():
        raise fail("Your table contains NaN (not a number), probably from 0/0 when a row total is zero. "
                   "Handle empty rows separately: make them uniform, 1/V.")
    row_sums = got.sum(dim=1)
    col_sums = got.sum(dim=0)
    col_seen = counts.sum(dim=0) > 0
    if not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-4) and torch.allclose(
        col_sums[col_seen], torch.ones_like(col_sums[col_seen]), atol=1e-4
    ):
        raise fail("Your columns sum to 1 instead of your rows. P[a, b] is the probability of b after a, so "
                   "each row a must sum to 1: normalize over dim=1 (counts.sum(dim=1, keepdim=True)).")
    seq = as_ids(ids)
    mistakes = [
        (list(zip(seq, seq)), "Each token is paired with itself (like zip(ids, ids)). A bigram pairs a token "
         "with the NEXT one: zip(ids[:-1], ids[1:])."),
        (list(zip(seq[1:-1], seq[2:])), "The first transition (ids[0] -> ids[1]) seems to be missing. "
         "Pair every token with the next one, starting at the first: zip(ids[:-1], ids[1:])."),
        (list(zip(seq[:-2], seq[1:-1])), "The last transition (ids[-2] -> ids[-1]) seems to be missing. "
         "Pair every token with the next one: zip(ids[:-1], ids[1:]) has len(ids) - 1 pairs."),
        (list(zip(seq, seq[1:] + seq[:1])), "There is an extra transition from the last token back to the "
         "first. There are only len(ids) - 1 transitions: zip(ids[:-1], ids[1:])."),
    ]
    for pairs, message in mistakes:
        cand_counts = count_table(pairs, V).double()
        cand_seen = cand_counts.sum(dim=1) > 0
        cand = normalize_rows(cand_counts)
        if cand_seen.any() and not tables_close(cand, expected) and tables_close(got[cand_seen], cand[cand_seen]):
            raise fail(message)
    if not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-4):
        a = int((row_sums - 1).abs().argmax())
        raise fail(f"Every row of the table should sum to 1 (it is a distribution over the next token), "
                   f"but row {a} sums to {float(row_sums[a]):.4g}.")
