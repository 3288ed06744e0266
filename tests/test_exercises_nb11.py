"""nb11 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import hashlib

import pytest

from lmlab.exercises import nb11 as ex
from lmlab.exercises.nb11 import make_net, ref_grad_norms, ref_params_hash
from lmlab.tracking import grad_norms, params_hash
from exercise_helpers import fails_with, passes


def _hash(items, names=True, as_text=False):
    h = hashlib.sha256()
    for name, t in items:
        if names:
            h.update(name.encode())
        h.update(str(t).encode() if as_text else t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def _sorted(model):
    return sorted(model.named_parameters(), key=lambda kv: kv[0])


def test_references_agree_with_lmlab_tracking():
    net = make_net(3)
    assert ref_params_hash(net) == params_hash(net)
    ((net(make_net(0).emb.weight.new_zeros(2, 3).long()) ** 2).sum()).backward()
    assert ref_grad_norms(net) == grad_norms(net)
    assert set(grad_norms(net)) == {"proj.weight", "proj.bias", "norm.weight", "norm.bias"}


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_params_hash), (ex.q2, ref_grad_norms),
                                              (ex.q1, params_hash), (ex.q2, grad_norms)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


@pytest.mark.parametrize("exercise, answer", [(ex.q1, params_hash), (ex.q2, grad_norms)])
def test_lmlab_tracking_earns_nothing(exercise, answer):
    result = exercise.evaluate(answer)
    assert not result.passed and f"lmlab.tracking.{answer.__name__}" in result.message


def test_q1_registration_order():
    fails_with(ex.q1, lambda m: _hash(list(m.named_parameters())), "not sorted by name")


def test_q1_unordered_set():
    def params_hash_set(model):
        h = hashlib.sha256()
        for p in set(model.parameters()):  # order depends on object ids
            h.update(p.detach().numpy().tobytes())
        return h.hexdigest()

    fails_with(ex.q1, params_hash_set)


def test_q1_str_of_tensor():
    fails_with(ex.q1, lambda m: _hash(_sorted(m), as_text=True), "did not change", "str(p)")


def test_q1_no_names():
    fails_with(ex.q1, lambda m: _hash(_sorted(m), names=False), "names are missing")


def test_q1_state_dict():
    fails_with(ex.q1, lambda m: _hash(sorted(m.state_dict().items())), "buffers")


def test_q1_wrong_return_types():
    def digest_bytes(model):
        h = hashlib.sha256()
        for name, p in _sorted(model):
            h.update(name.encode())
            h.update(p.detach().numpy().tobytes())
        return h.digest()

    fails_with(ex.q1, digest_bytes, "hex string")
    fails_with(ex.q1, lambda m: hashlib.sha256(b""), "hash object itself")
    fails_with(ex.q1, lambda m: None, "forget a `return`")


def test_q1_stub_not_solved():
    def params_hash(model):
        raise NotImplementedError("Exercise q1: write your solution here")

    fails_with(ex.q1, params_hash, "Not yet solved")


def test_q2_none_grads_not_skipped():
    fails_with(ex.q2, lambda m: {n: p.grad.norm().item() for n, p in m.named_parameters()}, "Skip them")


def test_q2_none_grads_kept_as_zero():
    def with_zeros(model):
        return {n: (p.grad.norm().item() if p.grad is not None else 0.0) for n, p in model.named_parameters()}

    fails_with(ex.q2, with_zeros, "Leave out parameters without a gradient")


@pytest.mark.parametrize("wrong, fragment", [
    (lambda p: p.detach().norm().item(), "norm of the parameter itself"),
    (lambda p: (p.grad.norm() ** 2).item(), "squared norm"),
    (lambda p: p.grad.abs().sum().item(), "L1 norm"),
    (lambda p: p.grad.abs().mean().item(), "mean over the entries"),
])
def test_q2_wrong_norms(wrong, fragment):
    fails_with(ex.q2, lambda m: {n: wrong(p) for n, p in m.named_parameters() if p.grad is not None}, fragment)


def test_q2_tensors_and_single_number():
    fails_with(ex.q2, lambda m: {n: p.grad.norm() for n, p in m.named_parameters() if p.grad is not None}, ".item()")
    fails_with(ex.q2, lambda m: 1.0, "one number")
    fails_with(ex.q2, lambda m: None, "forget a `return`")


def test_q2_stub_not_solved():
    def grad_norms(model):
        raise NotImplementedError

    fails_with(ex.q2, grad_norms, "Not yet solved")
