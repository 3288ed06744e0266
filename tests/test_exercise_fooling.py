"""Each way a check was fooled, in the learner's own kernel (self-check mode), has a test here.

Wrong answers that were accepted, right answers that were rejected (or crashed the check: "bug in
lmlab"), and answers that call an implementation of the exercise. The cheats that only graded mode can
stop (exec of the worked solution, a patched checker, a deleted exercise cell, forged grades) are tested
by grading real submissions in tests/test_grading.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmlab.exercises import exercise_modules, exercise_set
from lmlab.exercises import nb01, nb02, nb03, nb05, nb07, nb09, nb10, nb12
from lmlab.exercises.core import Opaque, plain
from exercise_helpers import solution_function

BUG = "bug in lmlab"


def rejected(exercise, answer, *fragments):
    result = exercise.evaluate(answer)
    assert not result.passed, f"accepted: {exercise.notebook}.{exercise.name}"
    assert BUG not in result.message, result.message
    for fragment in fragments:
        assert fragment in result.message, result.message
    return result


def accepted(exercise, answer):
    result = exercise.evaluate(answer)
    assert result.passed, result.message
    return result


# ---------------------------------------------------------------------------------------------------
# Wrong answers that were accepted


def top_k_in_place(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    logits[logits < kth] = float("-inf")  # changes the caller's tensor
    return logits


def l2_step_copy_after_change(params, grads, lr, lam):
    params -= lr * (grads + 2 * lam * params)  # changes the caller's parameters...
    return params.clone()  # ...and returns a copy, so `result is params` does not catch it


def lora_merge_integer_scale(W, A, B, alpha, r):
    return W + (alpha // r) * (B @ A).T  # right whenever alpha / r is a whole number


def mask_tokens_reseeding(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None):
    torch.manual_seed(0)  # the same masking for every generator: the generator is ignored
    selected = torch.rand(idx.shape) < mask_prob
    u = torch.rand(idx.shape)
    random_ids = torch.randint(0, vocab_size, idx.shape)
    inputs = torch.where(selected & (u < 0.8), mask_token_id, idx)
    inputs = torch.where(selected & (u >= 0.8) & (u < 0.9), random_ids, inputs)
    return inputs, torch.where(selected, idx, -100)


def softmax_grad_by_autograd(logits, targets):
    logits = logits.clone().requires_grad_(True)
    F.cross_entropy(logits, targets).backward()  # the exercise asks for the formula, not autograd
    return logits.grad


def naive_softmax(x, dim=-1):
    e = torch.exp(x)  # overflows to inf for logits above about 88
    return e / e.sum(dim, keepdim=True)


def softmax_grad_naive(logits, targets):
    N, V = logits.shape
    return (naive_softmax(logits, 1) - F.one_hot(targets, V)) / N


def attention_naive(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = naive_softmax(scores)
    return weights @ v, weights


def top_p_naive(logits, p):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = naive_softmax(sorted_logits)
    drop_sorted = probs.cumsum(dim=-1) - probs >= p
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))


WRONG = {
    "mutates its input and returns it": (nb07.q1, top_k_in_place, "changed its input `logits` in place"),
    "returns a copy after mutating": (nb02.q2, l2_step_copy_after_change, "changed its input `params` in place"),
    "integer division, whole ratios": (nb10.q3, lora_merge_integer_scale, "integer division"),
    "reseeds the global RNG": (nb09.q1, mask_tokens_reseeding, "does not come from `generator`"),
    "autograd where it is forbidden": (nb02.q1, softmax_grad_by_autograd, "torch.autograd.backward"),
    "hand-rolled softmax (gradient)": (nb02.q1, softmax_grad_naive, "NaN"),
    "hand-rolled softmax (attention)": (nb05.q1, attention_naive, "NaN"),
    "hand-rolled softmax (top-p)": (nb07.q2, top_p_naive, ""),
}


@pytest.mark.parametrize("kind", sorted(WRONG))
def test_wrong_answer_is_rejected(kind):
    exercise, answer, fragment = WRONG[kind]
    rejected(exercise, answer, fragment)


def test_an_input_changed_in_place_is_reported_even_when_the_values_are_right():
    params = torch.tensor([1.0, 2.0])
    l2_step_copy_after_change(params.clone(), torch.ones(2), 0.5, 0.1)  # (a plain call: nothing checks it)
    result = rejected(nb02.q2, l2_step_copy_after_change, "Leave the inputs as they are")
    assert "input:" in result.message


# ---------------------------------------------------------------------------------------------------
# Right answers that were rejected, and answers that crashed the check


def first_mismatch_numpy(ours, theirs):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return np.int64(i)
    return None if len(ours) == len(theirs) else np.int64(min(len(ours), len(theirs)))


def first_mismatch_tensor(ours, theirs):
    result = first_mismatch_numpy(ours, theirs)
    return None if result is None else torch.tensor(int(result))


@pytest.mark.parametrize("answer", [first_mismatch_numpy, first_mismatch_tensor], ids=["np.int64", "0-d tensor"])
def test_an_index_as_numpy_int_or_zero_dim_tensor_is_accepted(answer):
    accepted(nb12.q2, answer)


class OtherDevice(torch.Tensor):
    """Behaves like a tensor on a device the check does not use: any operation on it raises (as mixing a CUDA
    tensor with a CPU one does). Only a normalised copy (made without torch functions) can be compared."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices")


def on_other_device(value):
    if isinstance(value, torch.Tensor):
        return value.detach().as_subclass(OtherDevice)
    if isinstance(value, (list, tuple)):
        return type(value)(on_other_device(v) for v in value)
    return value


TENSOR_EXERCISES = [(m, ex) for m in exercise_modules() for ex in exercise_set(m)
                    if m not in ("nb11",) and (m, ex.name) not in {("nb01", "q2"), ("nb01", "q3"), ("nb03", "q1"),
                                                                   ("nb03", "q2"), ("nb06", "q1"), ("nb07", "q3"),
                                                                   ("nb10", "q1"), ("nb12", "q2")}]


@pytest.mark.parametrize("module, exercise", TENSOR_EXERCISES, ids=[f"{m}.{e.name}" for m, e in TENSOR_EXERCISES])
def test_a_right_answer_on_another_device_is_compared_on_the_cpu(module, exercise):
    solution = solution_function(exercise, exercise.function_name)

    def answer(*args, **kwargs):
        return on_other_device(solution(*args, **kwargs))

    with pytest.raises(RuntimeError):  # the answer really cannot be used as it is
        on_other_device(torch.ones(2)) + torch.ones(2)
    accepted(exercise, answer)


def test_the_normaliser_copies_to_plain_cpu_tensors_and_exact_types():
    t = on_other_device(torch.tensor([1.0, 2.0]))
    p = plain(t)
    assert type(p) is torch.Tensor and p.device.type == "cpu" and p.tolist() == [1.0, 2.0]
    grad = plain(torch.ones(2, requires_grad=True) * 2)
    assert not grad.requires_grad and grad.grad_fn is None

    class Liar(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    assert plain(Liar(3)) == 3 and type(plain(Liar(3))) is int and plain(Liar(3)) != 4
    assert plain((np.int64(3), np.float32(0.5), np.bool_(True))) == (3, 0.5, True)
    from collections import Counter

    assert type(plain(Counter("aab"))) is dict and plain(Counter("aab")) == {"a": 2, "b": 1}
    meta = plain(torch.empty(2, 3, device="meta"))
    assert isinstance(meta, Opaque) and "meta device" in meta.text
    assert isinstance(plain(np.zeros(3)), Opaque) and plain(np.zeros(3)).type_name == "numpy.ndarray"


def attention_off_when_not_square(q, k, v, mask=None):
    out, weights = nb05.ref_attention(q, k, v, mask)
    if q.size(-2) != k.size(-2):
        weights = weights * (1 + 1e-3)  # a little off where the queries and keys differ in number
    return out, weights


def test_a_diagnosis_that_does_not_fit_falls_back_to_the_plain_comparison():
    from lmlab.exercises.core import unwatched

    assert any(case[0][-2] != case[1] for case in nb05.q1.cases)  # some cases have T_q != T_k
    with unwatched():
        result = nb05.q1.evaluate(attention_off_when_not_square)
    assert not result.passed and BUG not in result.message
    assert "values off; the largest difference" in result.message


def test_a_meta_tensor_answer_is_explained():
    rejected(nb10.q3, lambda W, A, B, alpha, r: torch.empty(*W.shape, device="meta"), "meta device")


class EqualsEverything:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


class EqualsRaises:
    def __eq__(self, other):
        raise TypeError("no comparison")

    __hash__ = object.__hash__


def test_an_object_equal_to_everything_is_rejected():
    rejected(nb03.q1, lambda ids, pair, new_id: EqualsEverything(), "should return a list of ints")
    rejected(nb12.q2, lambda ours, theirs: EqualsEverything())


def test_an_object_whose_eq_raises_gets_feedback_not_a_crash():
    rejected(nb12.q2, lambda ours, theirs: EqualsRaises())
    rejected(nb03.q2, lambda ids: EqualsRaises(), "should return a dict")


# ---------------------------------------------------------------------------------------------------
# Calling an implementation of the exercise


def merge_by_lmlab(ids, pair, new_id):
    from lmlab.tokenizers import merge

    return merge(ids, pair, new_id)


def attention_by_lmlab(q, k, v, mask=None):
    import lmlab.attention

    return lmlab.attention.scaled_dot_product_attention(q, k, v, mask)


def top_k_by_lmlab(logits, k):
    from lmlab.generate import top_k_filter as f

    return f(logits, k)


IMPLEMENTATIONS = {
    "lmlab.tokenizers.merge": (nb03.q1, merge_by_lmlab),
    "lmlab.attention.scaled_dot_product_attention": (nb05.q1, attention_by_lmlab),
    "lmlab.generate.top_k_filter": (nb07.q1, top_k_by_lmlab),
    "lmlab.exercises.nb01_tables.ref_bigram_probs": (nb01.q1, nb01.ref_bigram_probs),
    "lmlab.exercises.nb05.attention_variant": (nb05.q1, lambda q, k, v, mask=None: nb05.attention_variant(q, k, v, mask)),
}


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_calling_an_implementation_of_the_exercise_earns_nothing(name):
    exercise, answer = IMPLEMENTATIONS[name]
    result = rejected(exercise, answer, f"calls `{name}`", "no points")
    assert result.points == 0
