"""Exercises for notebook 10, "Fine-tuning": precision/recall/F1 and the LoRA forward pass.

In the notebook::

    from lmlab.exercises import nb10 as ex

    def precision_recall_f1(pred, target): ...
    ex.q1.check(precision_recall_f1)   # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                       # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()                   # a worked solution with an explanation
    ex.progress()                      # which exercises passed so far

The functions the learner writes (N examples, in/out feature sizes, r the LoRA rank):

- q1 ``precision_recall_f1(pred (N,), target (N,)) -> (precision, recall, f1)``: binary 0/1 tensors, the
  positive class is 1; a ratio that would be 0/0 is 0.0. Numbers (floats or 0-d tensors) are accepted.
- q2 ``lora_forward(x (..., in), W (out, in), b (out,), A (r, in), B (out, r), alpha, r) -> (..., out)``:
  ``x W^T + b + (alpha / r) x A^T B^T``.

Tolerances: 1e-6 for q1, rtol 1e-4 / atol 1e-5 for q2.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from lmlab.exercises.core import (
    CheckFailed,
    Exercise,
    ExerciseSet,
    as_number,
    call_safely,
    compare_tensors,
    diagnosing,
    tensors_close,
)

__all__ = ["q1", "q2", "EXERCISES", "progress", "ref_precision_recall_f1", "ref_lora_forward"]

RTOL, ATOL = 1e-4, 1e-5

# ----------------------------------------------------------------------------------------------------
# References


def _counts(pred: torch.Tensor, target: torch.Tensor) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) for the positive class 1."""
    pred, target = pred.bool(), target.bool()
    return (int((pred & target).sum()), int((pred & ~target).sum()), int((~pred & target).sum()),
            int((~pred & ~target).sum()))


def ref_precision_recall_f1(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float, float]:
    """Reference for q1: precision, recall and F1 of class 1; 0.0 where a ratio would be 0/0."""
    tp, fp, fn, _ = _counts(pred, target)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def ref_lora_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                     alpha: float, r: int) -> torch.Tensor:
    """Reference for q2: a linear layer plus the scaled low-rank update."""
    return x @ W.T + b + (alpha / r) * (x @ A.T @ B.T)  # (..., in) -> (..., out)


# ----------------------------------------------------------------------------------------------------
# q1 precision_recall_f1


def _t(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def _random_labels(seed: int, n: int = 200, rate: float = 0.15, errors: float = 0.1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, generator=g) < rate).long()
    flip = torch.rand(n, generator=g) < errors
    return torch.where(flip, 1 - target, target), target


_Q1_CASES = [
    ("an imbalanced set with errors of both kinds", _t([1, 0, 0, 1, 0, 0, 1, 0, 0, 0]), _t([1, 1, 0, 0, 0, 0, 1, 1, 0, 0])),
    ("precision and recall differ a lot", _t([1, 1, 1, 1, 1, 1, 0, 0, 0, 0]), _t([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
    ("nothing predicted positive (precision would be 0/0)", _t([0, 0, 0, 0, 0, 0]), _t([0, 1, 0, 1, 0, 0])),
    ("no positives at all", _t([0, 0, 0, 0]), _t([0, 0, 0, 0])),
    ("a larger random set", *_random_labels(3)),
]


def _q1_hidden(rng: random.Random) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    return [("a random set", *_random_labels(rng.randrange(2**31), rng.randint(20, 200), rng.uniform(0.1, 0.5),
                                             rng.uniform(0.05, 0.3))) for _ in range(2)]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=1e-6)


def _check_prf(fn: Any, timeout: float, cases: list[tuple[str, torch.Tensor, torch.Tensor]]) -> None:
    for name, pred, target in cases:
        shown = (f"{name}: pred={pred.tolist() if len(pred) <= 12 else f'random ({len(pred)},)'}, "
                 f"target={target.tolist() if len(target) <= 12 else f'random ({len(target)},)'}")
        got = call_safely(fn, pred.clone(), target.clone(), timeout=timeout, show_input=shown)
        if not (isinstance(got, (tuple, list)) and len(got) == 3):
            extra = " Did you forget a `return` statement?" if got is None else ""
            raise CheckFailed(f"`precision_recall_f1` should return three numbers (precision, recall, f1).{extra}",
                              input=shown, got=got)
        p, r, f = (as_number(v, "precision_recall_f1", show_input=shown) for v in got)
        ep, er, ef = ref_precision_recall_f1(pred, target)
        if any(math.isnan(v) for v in (p, r, f)):
            raise CheckFailed("A result is NaN: a ratio was 0/0. When nothing is predicted positive, precision is "
                              "0/0; when there are no positives, recall is 0/0; and F1 is 0/0 when both are 0. "
                              "Return 0.0 in those cases (if tp + fp > 0 else 0.0).", input=shown)
        if _close(p, ep) and _close(r, er) and _close(f, ef):
            continue
        fail = CheckFailed.at(input=shown, expected=(ep, er, ef), got=(p, r, f))
        if _close(p, er) and _close(r, ep) and not _close(ep, er):
            raise fail("Precision and recall are swapped. Precision = TP / (TP + FP): of the predicted positives, "
                       "how many are right. Recall = TP / (TP + FN): of the true positives, how many were found.")
        acc = float((pred == target).float().mean())
        if _close(f, acc) and not _close(acc, ef):
            raise fail("The third number is the accuracy. F1 is the harmonic mean of precision and recall, "
                       "2 * p * r / (p + r); with imbalanced classes it can be far from the accuracy.")
        if _close(f, (p + r) / 2) and not _close(ef, (ep + er) / 2):
            raise fail("F1 is the harmonic mean 2 * p * r / (p + r), not the arithmetic mean (p + r) / 2.")
        tp, fp, fn, tn = _counts(pred, target)
        flipped = ref_precision_recall_f1(1 - pred, 1 - target)
        if _close(p, flipped[0]) and _close(r, flipped[1]) and not (_close(ep, flipped[0]) and _close(er, flipped[1])):
            raise fail("These are the scores of class 0. The positive class is 1 (e.g. spam).")
        raise fail(f"The scores are not right. On this input TP = {tp}, FP = {fp}, FN = {fn}, TN = {tn}.")


q1 = Exercise(
    name="q1",
    title="precision_recall_f1(pred, target)",
    points=2,
    prompt=(
        "Write `precision_recall_f1(pred, target)` for binary 0/1 tensors of the same shape, positive class 1. "
        "Return (precision, recall, f1) as numbers: precision = TP / (TP + FP), recall = TP / (TP + FN), "
        "f1 = 2 * precision * recall / (precision + recall). A ratio that would be 0/0 is 0.0."
    ),
    checker=_check_prf,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    hints=[
        "Count TP = predicted 1 and truly 1, FP = predicted 1 but truly 0, FN = predicted 0 but truly 1. "
        "((pred == 1) & (target == 1)).sum() counts TP.",
        "Precision divides by everything predicted positive (TP + FP), recall by everything truly positive (TP + FN).",
        "Guard each division: precision = tp / (tp + fp) if tp + fp > 0 else 0.0, and the same for recall and F1.",
    ],
    solution_code='''\
def precision_recall_f1(pred, target):
    tp = int(((pred == 1) & (target == 1)).sum())
    fp = int(((pred == 1) & (target == 0)).sum())
    fn = int(((pred == 0) & (target == 1)).sum())
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0     # of the flagged, how many are positive
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0        # of the positives, how many were flagged
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1
''',
    explanation=(
        "With 13% spam a model that never flags anything is 87% accurate, so accuracy hides what matters. Precision "
        "asks how trustworthy a flag is, recall how much of the positive class is caught; F1, their harmonic mean, "
        "is high only when both are (it equals 2TP / (2TP + FP + FN)). A model that predicts no positives has "
        "precision 0/0: reporting 0.0 (as scikit-learn does by default, with a warning) keeps the numbers finite."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 lora_forward


def _q2_case(shape: tuple[int, ...], d_in: int, d_out: int, r: int, alpha: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, d_in, generator=g)
    W, b = torch.randn(d_out, d_in, generator=g) * 0.3, torch.randn(d_out, generator=g)
    A, B = torch.randn(r, d_in, generator=g) * 0.3, torch.randn(d_out, r, generator=g) * 0.3
    return x, W, b, A, B, alpha, r


_Q2_CASES = [((2, 5), 8, 12, 2, 4.0, 0), ((3,), 6, 6, 3, 6.0, 1), ((2, 3, 4), 10, 7, 4, 16.0, 2),
             ((2, 3), 5, 4, 4, 6.0, 3)]  # alpha / r = 1.5: integer division (alpha // r) gives 1


def _q2_hidden(rng: random.Random) -> list[tuple[Any, ...]]:
    r = rng.randint(2, 5)
    return [((rng.randint(1, 3), rng.randint(1, 4)), rng.randint(2, 9), rng.randint(2, 9), r, r * rng.randint(1, 4) + 1.0,
             rng.randrange(2**31))]


def _check_lora_forward(fn: Any, timeout: float, cases: list[tuple[Any, ...]]) -> None:
    for shape, d_in, d_out, r, alpha, seed in cases:
        args = _q2_case(shape, d_in, d_out, r, alpha, seed)
        shown = (f"x {(*shape, d_in)}, W ({d_out}, {d_in}), b ({d_out},), A ({r}, {d_in}), B ({d_out}, {r}), "
                 f"alpha={alpha:g}, r={r}")
        got = call_safely(fn, *[a.clone() if isinstance(a, torch.Tensor) else a for a in args],
                          timeout=timeout, show_input=shown)
        expected = ref_lora_forward(*args)
        if tensors_close(got, expected, rtol=RTOL, atol=ATOL):
            continue
        with diagnosing():
            _diagnose_lora(got, args, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your output", show_input=shown)


def _diagnose_lora(got: Any, args: tuple[Any, ...], fail: Any) -> None:
    x, W, b, A, B, alpha, r = args
    base = x @ W.T + b
    delta = x @ A.T @ B.T

    def near(t: torch.Tensor) -> bool:
        return tensors_close(got, t, rtol=RTOL, atol=ATOL)

    if alpha % r and near(base + (alpha // r) * delta):
        raise fail("The scale is rounded down: alpha // r is integer division. LoRA scales by alpha / r, which "
                   "need not be a whole number.")
    if near(base):
        raise fail("This is only the base layer x W^T + b: add the low-rank update (alpha / r) x A^T B^T.")
    if near(base + delta):
        raise fail("The update is not scaled: multiply x A^T B^T by alpha / r.")
    if near(base + alpha * delta):
        raise fail("The update is scaled by alpha; LoRA scales it by alpha / r.")
    if near(base + (r / alpha) * delta):
        raise fail("The scaling is upside down: it is alpha / r, not r / alpha.")
    if near(x @ W.T + (alpha / r) * delta):
        raise fail("The bias b of the base layer is missing.")


q2 = Exercise(
    name="q2",
    title="lora_forward(x, W, b, A, B, alpha, r)",
    points=1,
    prompt=(
        "Write `lora_forward(x, W, b, A, B, alpha, r)`: the output of a linear layer with weight W (out, in) and "
        "bias b (out,) on x (..., in), plus the LoRA update (alpha / r) * x A^T B^T with A (r, in) and B (out, r)."
    ),
    checker=_check_lora_forward,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    forbidden=("lmlab.lora.LoRALinear.forward",),
    hints=[
        "The base layer is x @ W.T + b, as nn.Linear computes it.",
        "The update goes through the rank-r bottleneck: x @ A.T has shape (..., r), then @ B.T gives (..., out).",
        "return x @ W.T + b + (alpha / r) * (x @ A.T @ B.T)",
    ],
    solution_code='''\
def lora_forward(x, W, b, A, B, alpha, r):
    base = x @ W.T + b                        # (..., out): the frozen layer
    update = x @ A.T @ B.T                    # (..., in) -> (..., r) -> (..., out)
    return base + (alpha / r) * update
''',
    explanation=(
        "LoRA never forms the (out, in) matrix B A during training: x goes through A down to r numbers and back up "
        "through B, costing r * (in + out) multiplications per token. The scaling alpha / r keeps the size of the "
        "update roughly independent of the rank, so changing r does not require a new learning rate. After "
        "training, W + (alpha / r) B A is a plain weight again."
    ),
)

EXERCISES = ExerciseSet("nb10", "10 · Fine-tuning", [q1, q2])
progress = EXERCISES.progress
