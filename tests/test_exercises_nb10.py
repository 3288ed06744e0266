"""nb10 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch

from lmlab.exercises import nb10 as ex
from lmlab.exercises.nb10 import ref_lora_forward, ref_precision_recall_f1
from lmlab.lora import LoRALinear
from exercise_helpers import fails_with, passes


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_precision_recall_f1), (ex.q2, ref_lora_forward)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_reference_lora_matches_lmlab():
    layer = LoRALinear(torch.nn.Linear(6, 5), r=3, alpha=6)
    torch.nn.init.normal_(layer.lora_B.weight)
    x = torch.randn(4, 6)
    got = ref_lora_forward(x, layer.base.weight, layer.base.bias, layer.lora_A.weight, layer.lora_B.weight, 6, 3)
    assert torch.allclose(got, layer(x), atol=1e-5)


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


def test_q2_typical_mistakes():
    fails_with(ex.q2, lambda x, W, b, A, B, alpha, r: x @ W.T + b, "only the base layer")
    fails_with(ex.q2, lambda x, W, b, A, B, alpha, r: x @ W.T + b + x @ A.T @ B.T, "not scaled")
    fails_with(ex.q2, lambda x, W, b, A, B, alpha, r: x @ W.T + b + alpha * (x @ A.T @ B.T), "scaled by alpha;")
    fails_with(ex.q2, lambda x, W, b, A, B, alpha, r: x @ W.T + b + (r / alpha) * (x @ A.T @ B.T), "upside down")
    fails_with(ex.q2, lambda x, W, b, A, B, alpha, r: x @ W.T + (alpha / r) * (x @ A.T @ B.T), "bias b")


def test_q2_stub():
    def lora_forward(x, W, b, A, B, alpha, r):
        raise NotImplementedError

    fails_with(ex.q2, lora_forward, "Not yet solved")
