"""Exercises for notebook 10, "Fine-tuning": precision/recall/F1, macro F1 over several classes, and a LoRA
update merged into a GPT-2 weight.

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
- q2 ``macro_f1(pred (N,), target (N,), n_classes) -> float``: the mean over the n_classes classes of each
  class's F1 (class c against the rest; 0/0 -> 0.0), a variant of q1 for the topic task of section 1.
- q3 ``merge_lora_conv1d(W (in, out), A (r, in), B (out, r), alpha, r) -> (in, out)``: ``W + (alpha / r) (B A)^T``,
  a LoRA update merged into a transformers ``Conv1D`` weight (GPT-2's layout, notebook 12), a variant of
  ``LoRALinear.merged``.

Tolerances: 1e-6 for q1 and q2, rtol 1e-4 / atol 1e-5 for q3.
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

__all__ = ["q1", "q2", "q3", "EXERCISES", "progress", "ref_precision_recall_f1", "ref_macro_f1",
           "ref_merge_lora_conv1d"]

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
# q2 macro_f1


def ref_macro_f1(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> float:
    """Reference for q2: the mean over all n_classes classes of each class's F1 (one class against the rest)."""
    return sum(ref_precision_recall_f1(pred == c, target == c)[2] for c in range(n_classes)) / n_classes


def _q2_random(seed: int, n: int, k: int, errors: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    g = torch.Generator().manual_seed(seed)
    target = torch.multinomial(torch.linspace(1.0, 4.0, k), n, replacement=True, generator=g)  # unequal classes
    noise = torch.randint(0, k, (n,), generator=g)
    return torch.where(torch.rand(n, generator=g) < errors, noise, target), target, k


_Q2_CASES = [
    ("three unbalanced classes", _t([1, 1, 2, 1, 2, 1, 2, 2]), _t([1, 1, 0, 1, 2, 1, 1, 1]), 3),
    ("a class that is never predicted", _t([0, 0, 1, 1, 0, 1]), _t([0, 2, 1, 1, 2, 1]), 3),
    ("a class absent from both (its F1 counts as 0)", _t([0, 1, 1, 0]), _t([0, 1, 0, 0]), 3),
    ("four unbalanced classes", *_q2_random(5, 300, 4, 0.3)),
]


def _q2_hidden(rng: random.Random) -> list[tuple[Any, ...]]:
    return [("random classes", *_q2_random(rng.randrange(2**31), rng.randint(30, 300), rng.randint(2, 6),
                                           rng.uniform(0.1, 0.5)))]


def _check_macro_f1(fn: Any, timeout: float, cases: list[tuple[Any, ...]]) -> None:
    for name, pred, target, k in cases:
        shown = (f"{name}: pred={pred.tolist() if len(pred) <= 12 else f'random ({len(pred)},)'}, "
                 f"target={target.tolist() if len(target) <= 12 else f'random ({len(target)},)'}, n_classes={k}")
        got = as_number(call_safely(fn, pred.clone(), target.clone(), k, timeout=timeout, show_input=shown),
                        "macro_f1", show_input=shown)
        expected = ref_macro_f1(pred, target, k)
        if _close(got, expected):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        with diagnosing():
            _diagnose_macro_f1(got, pred, target, k, fail)
        raise fail("Compute precision, recall and F1 of each class c (pred == c against target == c), then average "
                   "the n_classes F1 values.")


def _diagnose_macro_f1(got: float, pred: torch.Tensor, target: torch.Tensor, k: int, fail: Any) -> None:
    per_class = [ref_precision_recall_f1(pred == c, target == c) for c in range(k)]
    present = sorted(set(pred.tolist()) | set(target.tolist()))
    if _close(got, float((pred == target).float().mean())):
        raise fail("This is the accuracy (which is also the micro-averaged F1 of a one-label-per-example task). "
                   "Macro F1 averages the per-class F1 values, so a rare class counts as much as a common one.")
    if len(present) < k and _close(got, sum(per_class[c][2] for c in present) / len(present)):
        raise fail("Average over all n_classes classes: a class that neither occurs nor is predicted has F1 0 here "
                   "(n_classes says how many classes the task has).")
    p = sum(x[0] for x in per_class) / k
    r = sum(x[1] for x in per_class) / k
    if _close(got, 2 * p * r / (p + r) if p + r else 0.0):
        raise fail("This is the F1 of the averaged precision and recall. Macro F1 is the average of the "
                   "per-class F1 values, which is not the same.")
    support = [int((target == c).sum()) for c in range(k)]
    if _close(got, sum(f * s for (_, _, f), s in zip(per_class, support)) / len(target)):
        raise fail("This average is weighted by how often each class occurs; macro F1 gives every class weight 1.")
    if _close(got, per_class[1][2]):
        raise fail("This is the F1 of class 1 only (the binary case). Compute it for every class and average.")


q2 = Exercise(
    name="q2",
    title="macro_f1(pred, target, n_classes)",
    points=2,
    prompt=(
        "Write `macro_f1(pred, target, n_classes)` for class ids 0..n_classes-1: for each class c, precision, recall "
        "and F1 of 'c against the rest' (as in q1, with 0/0 -> 0.0); return the mean of the n_classes F1 values "
        "as a number."
    ),
    checker=_check_macro_f1,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "(pred == c) and (target == c) turn the task into a binary one for class c; its F1 is the one of q1.",
        "Every class counts once, however rare: a class nobody predicted and that never occurs still adds an F1 of "
        "0 to the sum.",
        "return sum(f1_of_class(c) for c in range(n_classes)) / n_classes",
    ],
    solution_code='''\
def macro_f1(pred, target, n_classes):
    total = 0.0
    for c in range(n_classes):
        tp = int(((pred == c) & (target == c)).sum())
        fp = int(((pred == c) & (target != c)).sum())
        fn = int(((pred != c) & (target == c)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        total += 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return total / n_classes                            # every class weighs the same
''',
    explanation=(
        "With several classes, accuracy is dominated by the common ones. Macro F1 scores each class on its own "
        "and averages, so a classifier that ignores a rare class loses a whole 1 / n_classes of the score. The "
        "weighted average (by support) and the micro average (the accuracy, for one label per example) answer "
        "other questions; scikit-learn's f1_score(average='macro', labels=range(n_classes), zero_division=0) "
        "computes this one."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 merge_lora_conv1d


def ref_merge_lora_conv1d(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    """Reference for q3: a Conv1D weight (in, out) plus the transposed LoRA update (alpha / r) (B A)^T."""
    return W + (alpha / r) * (B @ A).T  # (in, out) + ((out, r) x (r, in))^T


_Q3_CASES = [(5, 5, 3, 8.0, 2), (8, 12, 2, 4.0, 0), (6, 5, 3, 5.0, 1)]  # (in, out, r, alpha, seed); square first


def _check_merge(fn: Any, timeout: float, cases: list[tuple[Any, ...]]) -> None:
    for d_in, d_out, r, alpha, seed in cases:
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(d_in, d_out, generator=g)
        A, B = torch.randn(r, d_in, generator=g), torch.randn(d_out, r, generator=g)
        shown = f"W ({d_in}, {d_out}) in Conv1D layout, A ({r}, {d_in}), B ({d_out}, {r}), alpha={alpha:g}, r={r}"
        got = call_safely(fn, W.clone(), A.clone(), B.clone(), alpha, r, timeout=timeout, show_input=shown)
        expected = ref_merge_lora_conv1d(W, A, B, alpha, r)
        if tensors_close(got, expected, rtol=RTOL, atol=ATOL):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        with diagnosing():
            delta = (B @ A).T  # (in, out)
            linear_layout = W + (alpha / r) * delta.T if d_in == d_out else None  # B A not transposed
            if (linear_layout is not None and tensors_close(got, linear_layout, rtol=RTOL, atol=ATOL)) or (
                    isinstance(got, torch.Tensor) and d_in != d_out and got.shape == (d_out, d_in)):
                raise fail("B A is (out, in), the nn.Linear layout; a Conv1D weight is (in, out), so add its "
                           "transpose: W + (alpha / r) (B A)^T = W + (alpha / r) A^T B^T.")
            for wrong, why in ((1.0, "not scaled: multiply by alpha / r"), (alpha, "scaled by alpha, not alpha / r"),
                               (r / alpha, "scaled by r / alpha: the scaling is alpha / r"),
                               (alpha // r, "scaled by alpha // r (integer division): use alpha / r")):
                if tensors_close(got, W + wrong * delta, rtol=RTOL, atol=ATOL):
                    raise fail(f"The update is {why}.")
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your merged weight", show_input=shown)


q3 = Exercise(
    name="q3",
    title="merge_lora_conv1d(W, A, B, alpha, r)",
    points=1,
    prompt=(
        "Write `merge_lora_conv1d(W, A, B, alpha, r)`: merge a LoRA update into a GPT-2 (transformers Conv1D) weight "
        "W of shape (in, out), with A (r, in) and B (out, r) as peft stores them (lora_A.weight, lora_B.weight). "
        "Return the merged weight, shaped like W."
    ),
    checker=_check_merge,
    cases=_Q3_CASES,
    hidden=lambda rng: [(rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 4), float(rng.choice([3, 5, 8])),
                         rng.randrange(2**31))],
    hints=[
        "For an nn.Linear weight (out, in) the merged weight is W + (alpha / r) B A (MyLoRALinear, lmlab.lora).",
        "GPT-2's Conv1D computes x W' with W' of shape (in, out) = the transpose of the nn.Linear weight.",
        "return W + (alpha / r) * (B @ A).T",
    ],
    solution_code='''\
def merge_lora_conv1d(W, A, B, alpha, r):
    update = (B @ A).T                  # (out, r) x (r, in) = (out, in), transposed to Conv1D's (in, out)
    return W + (alpha / r) * update
''',
    explanation=(
        "The update B A lives in the nn.Linear layout (out, in). GPT-2 stores its projections transposed (notebook "
        "12), which is why peft needs fan_in_fan_out=True for it (section 5) and why merging there adds (B A)^T. "
        "For a non-square layer a missing transpose fails on the shapes; for a square one (attention's c_proj, "
        "(C, C)) it adds the wrong matrix silently, so compare outputs before and after merging."
    ),
)

EXERCISES = ExerciseSet("nb10", "10 · Fine-tuning", [q1, q2, q3])
progress = EXERCISES.progress
