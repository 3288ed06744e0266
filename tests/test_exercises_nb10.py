"""nb10 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch

from lmlab.exercises import nb10 as ex
from lmlab.exercises.nb10 import ref_macro_f1, ref_merge_lora_conv1d, ref_precision_recall_f1
from lmlab.lora import LoRALinear
from exercise_helpers import fails_with, passes, solution_function


def test_reference_passes():
    passes(ex.q1, ref_precision_recall_f1)


def test_reference_prf_hand_example():
    # TP = 2, FP = 1, FN = 2: precision 2/3, recall 1/2, F1 = 4/7
    p, r, f1 = ref_precision_recall_f1(torch.tensor([1, 1, 1, 0, 0, 0]), torch.tensor([1, 1, 0, 1, 1, 0]))
    assert (p, r) == (2 / 3, 1 / 2) and abs(f1 - 4 / 7) < 1e-12


def test_q1_swapped():
    def answer(pred, target):
        p, r, f = ref_precision_recall_f1(pred, target)
        return r, p, f

    fails_with(ex.q1, answer, "swapped")


def test_q1_accuracy_instead_of_f1():
    def answer(pred, target):
        p, r, _ = ref_precision_recall_f1(pred, target)
        return p, r, float((pred == target).float().mean())

    fails_with(ex.q1, answer, "accuracy")


def test_q1_zero_division():
    def answer(pred, target):
        tp = ((pred == 1) & (target == 1)).sum().float()
        p = tp / (pred == 1).sum()
        r = tp / (target == 1).sum()
        return p, r, 2 * p * r / (p + r)

    fails_with(ex.q1, answer, "0/0")


def test_q1_arithmetic_mean():
    def answer(pred, target):
        p, r, _ = ref_precision_recall_f1(pred, target)
        return p, r, (p + r) / 2

    fails_with(ex.q1, answer, "harmonic mean")


def test_q1_stub():
    def precision_recall_f1(pred, target):
        raise NotImplementedError

    fails_with(ex.q1, precision_recall_f1, "Not yet solved")
    fails_with(ex.q1, lambda p, t: None, "forget a `return`")


def _per_class(pred, target, k):
    return [ref_precision_recall_f1(pred == c, target == c) for c in range(k)]


def test_reference_macro_f1_hand_example():
    # class 0: P 1, R 1/2, F1 2/3; class 1: P 1/3, R 1, F1 1/2; class 2: never predicted, F1 0 -> mean 7/18
    pred, target = torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 2])
    assert abs(ref_macro_f1(pred, target, 3) - 7 / 18) < 1e-12


@pytest.mark.parametrize("exercise, answer", [(ex.q2, ref_macro_f1), (ex.q3, ref_merge_lora_conv1d)])
def test_references_pass(exercise, answer):
    passes(exercise, answer)


@pytest.mark.parametrize("exercise, name", [(ex.q2, "macro_f1"), (ex.q3, "merge_lora_conv1d")])
def test_worked_solutions_pass(exercise, name):
    passes(exercise, solution_function(exercise, name))


def test_q2_typical_mistakes():
    fails_with(ex.q2, lambda p, t, k: float((p == t).float().mean()), "accuracy")
    fails_with(ex.q2, lambda p, t, k: ref_precision_recall_f1(p == 1, t == 1)[2], "class 1 only")

    def present_only(p, t, k):
        present = sorted(set(p.tolist()) | set(t.tolist()))
        return sum(ref_precision_recall_f1(p == c, t == c)[2] for c in present) / len(present)

    fails_with(ex.q2, present_only, "all n_classes")

    def f1_of_means(p, t, k):
        per = _per_class(p, t, k)
        mp, mr = sum(x[0] for x in per) / k, sum(x[1] for x in per) / k
        return 2 * mp * mr / (mp + mr)

    fails_with(ex.q2, f1_of_means, "averaged precision and recall")

    def weighted(p, t, k):
        return sum(f * int((t == c).sum()) for c, (_, _, f) in enumerate(_per_class(p, t, k))) / len(t)

    fails_with(ex.q2, weighted, "weighted")


def test_q3_merge_matches_a_peft_style_conv1d_layer():
    lin = LoRALinear(torch.nn.Linear(6, 4), r=2, alpha=5)
    torch.nn.init.normal_(lin.lora_B.weight)
    W_conv = lin.base.weight.T.clone()  # GPT-2 Conv1D layout (in, out)
    merged = ref_merge_lora_conv1d(W_conv, lin.lora_A.weight, lin.lora_B.weight, 5, 2)
    x = torch.randn(3, 6)
    assert torch.allclose(x @ merged + lin.base.bias, lin(x), atol=1e-5)


def test_q3_typical_mistakes():
    fails_with(ex.q3, lambda W, A, B, alpha, r: W + (alpha / r) * (B @ A), "transpose")
    fails_with(ex.q3, lambda W, A, B, alpha, r: W + (B @ A).T, "not scaled")
    fails_with(ex.q3, lambda W, A, B, alpha, r: W + alpha * (B @ A).T, "scaled by alpha,")
    fails_with(ex.q3, lambda W, A, B, alpha, r: W + (r / alpha) * (B @ A).T, "r / alpha")
    fails_with(ex.q3, lambda W, A, B, alpha, r: W + (alpha // r) * (B @ A).T, "integer division")


def test_q2_q3_stubs():
    def macro_f1(pred, target, n_classes):
        raise NotImplementedError

    fails_with(ex.q2, macro_f1, "Not yet solved")
    fails_with(ex.q3, lambda W, A, B, alpha, r: None, "")
