"""nb11 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import hashlib

import pytest

from lmlab.exercises import nb11 as ex
import math

import torch

from lmlab.exercises.fixtures import net_with_grads
from lmlab.exercises.nb11 import make_net, ref_clip_by_total_norm, ref_lr_groups, ref_params_hash
from lmlab.models import GPT, GPTConfig
from lmlab.tracking import grad_norms, params_hash
from exercise_helpers import fails_with, passes, solution_function


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
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    total = ref_clip_by_total_norm(grads, 1.0)[1]
    assert math.isclose(total, math.sqrt(sum(v**2 for v in grad_norms(net).values())), rel_tol=1e-6)


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_params_hash), (ex.q1, params_hash),
                                              (ex.q2, ref_clip_by_total_norm)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_worked_solutions_pass():
    passes(ex.q2, solution_function(ex.q2, "clip_by_total_norm"))


def test_lmlab_tracking_earns_nothing():
    result = ex.q1.evaluate(params_hash)
    assert not result.passed and "lmlab.tracking.params_hash" in result.message


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


def _clip(grads, max_norm, per_tensor=False, scale_up=False, by_value=False, after=False, squared=False):
    total = math.sqrt(sum(g.pow(2).sum().item() for g in grads.values()))
    if by_value:
        out = {n: g.clamp(-max_norm, max_norm) for n, g in grads.items()}
    elif per_tensor:
        out = {n: g * min(1.0, max_norm / g.norm().item()) for n, g in grads.items()}
    else:
        scale = max_norm / total if scale_up else min(1.0, max_norm / total)
        out = {n: g * scale for n, g in grads.items()}
    return out, (min(total, max_norm) if after else total**2 if squared else total)


def test_q2_reference_matches_torch_clip_grad_norm():
    net = net_with_grads(4)
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    clipped, total = ref_clip_by_total_norm(grads, 0.01)
    torch_total = torch.nn.utils.clip_grad_norm_(net.parameters(), 0.01).item()
    assert math.isclose(total, torch_total, rel_tol=1e-5)
    assert all(torch.allclose(clipped[n], p.grad, rtol=1e-4, atol=1e-8) for n, p in net.named_parameters()
               if p.grad is not None)


@pytest.mark.parametrize("kw, fragment", [
    (dict(per_tensor=True), "its own norm"),
    (dict(scale_up=True), "already below max_norm"),
    (dict(by_value=True), "clipping by value"),
    (dict(after=True), "*before* clipping"),
    (dict(squared=True), "squared total norm"),
])
def test_q2_typical_mistakes(kw, fragment):
    fails_with(ex.q2, lambda grads, max_norm: _clip(grads, max_norm, **kw), fragment)


def test_q2_wrong_returns():
    fails_with(ex.q2, lambda grads, max_norm: None, "forget a `return`")
    fails_with(ex.q2, lambda grads, max_norm: (_clip(grads, max_norm)[0], torch.tensor(1.0)), "float")


def test_q2_torch_clip_earns_nothing():
    def with_torch(grads, max_norm):
        params = [torch.nn.Parameter(g.clone()) for g in grads.values()]
        for p, g in zip(params, grads.values()):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        return {n: p.grad for n, p in zip(grads, params)}, total

    result = ex.q2.evaluate(with_torch)
    assert not result.passed and "clip_grad_norm_" in result.message


def _groups(model, lr, decay, wd, off_by_one=False, reversed_=False, wd_everywhere=False, no_wd_key=False,
            embeddings_top=False):
    L = len(model.transformer.h)
    out = []
    for name, p in model.named_parameters():
        if name.startswith("transformer.h."):
            l = int(name.split(".")[2])
            depth = (l + 1) if reversed_ else (L - l - 1 if off_by_one else L - l)
        else:
            depth = L + 1 if name.startswith(("transformer.wte", "transformer.wpe")) and not embeddings_top else 0
        group = {"names": [name], "lr": lr * decay**depth}
        if not no_wd_key:
            group["weight_decay"] = wd if (p.dim() >= 2 or wd_everywhere) else 0.0
        out.append(group)
    return out


def test_q3_reference_and_worked_solution_pass_and_make_an_optimizer():
    passes(ex.q3, ref_lr_groups)
    passes(ex.q3, solution_function(ex.q3, "lr_groups"))
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))
    params = dict(model.named_parameters())
    groups = ref_lr_groups(model, 1e-3, 0.5, 0.1)
    opt = torch.optim.AdamW([{"params": [params[n] for n in g["names"]], "lr": g["lr"],
                              "weight_decay": g["weight_decay"]} for g in groups])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(params)
    lrs = {n: g["lr"] for g in groups for n in g["names"]}
    assert lrs["transformer.ln_f.weight"] == 1e-3 and lrs["transformer.h.1.mlp.c_fc.weight"] == 5e-4
    assert lrs["transformer.h.0.attn.c_attn.bias"] == 2.5e-4 and lrs["transformer.wte.weight"] == 1.25e-4


@pytest.mark.parametrize("kw, fragment", [
    (dict(off_by_one=True), "Off by one"),
    (dict(reversed_=True), "wrong way"),
    (dict(wd_everywhere=True), "LayerNorm parameters (1-D)"),
    (dict(no_wd_key=True), "'weight_decay'"),
    (dict(embeddings_top=True), "below every block"),
])
def test_q3_typical_mistakes(kw, fragment):
    fails_with(ex.q3, lambda m, lr, decay, wd: _groups(m, lr, decay, wd, **kw), fragment)


def test_q3_duplicates_and_missing():
    def twice(m, lr, decay, wd):
        groups = ref_lr_groups(m, lr, decay, wd)
        return groups + [dict(groups[0])]

    fails_with(ex.q3, twice, "one group only")
    fails_with(ex.q3, lambda m, lr, decay, wd: ref_lr_groups(m, lr, decay, wd)[1:], "Missing")


def test_q3_stub_not_solved():
    def lr_groups(model, lr, decay, weight_decay):
        raise NotImplementedError

    fails_with(ex.q3, lr_groups, "Not yet solved")
