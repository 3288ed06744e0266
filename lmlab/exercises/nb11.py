"""Exercises for notebook 11, "Reproducibility and maintenance": a hash of a model's weights, and the
gradient norm of each parameter.

In the notebook::

    from lmlab.exercises import nb11 as ex

    def params_hash(model): ...
    ex.q1.check(params_hash)    # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (checked on small models whose modules are registered out of
alphabetical order, with a buffer, a frozen parameter and an unused layer):

- q1 ``params_hash(model) -> str``: SHA-256 hex digest; for each ``(name, p)`` of
  ``model.named_parameters()`` sorted by name, the name (UTF-8) then ``p``'s raw bytes
  (``p.detach().cpu().contiguous().numpy().tobytes()``). Same as ``lmlab.tracking.params_hash`` for
  float32 models.
- q2 ``grad_norms(model) -> dict[str, float]``: ``{name: ||p.grad||_2}`` for every parameter whose
  ``grad`` is not None, as ``lmlab.tracking.grad_norms``.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from typing import Any

import torch
import torch.nn as nn

from lmlab.exercises.core import (
    CheckFailed,
    Exercise,
    ExerciseSet,
    LearnerError,
    Opaque,
    call_safely,
    diagnosing,
    number_near,
)
from lmlab.exercises.fixtures import make_net, net_with_grads

__all__ = ["q1", "q2", "EXERCISES", "progress", "ref_params_hash", "ref_grad_norms", "make_net", "hash_variant"]

# ----------------------------------------------------------------------------------------------------
# References and typical wrong answers


def hash_variant(items: list[tuple[str, torch.Tensor]], names: bool = True, as_text: bool = False) -> str:
    h = hashlib.sha256()
    for name, t in items:
        if names:
            h.update(name.encode("utf-8"))
        t = t.detach().cpu().contiguous()
        h.update(str(t).encode("utf-8") if as_text else t.numpy().tobytes())
    return h.hexdigest()


def ref_params_hash(model: nn.Module) -> str:
    """Reference for q1."""
    return hash_variant(sorted(model.named_parameters(), key=lambda kv: kv[0]))


def ref_grad_norms(model: nn.Module) -> dict[str, float]:
    """Reference for q2."""
    return {name: p.grad.norm().item() for name, p in model.named_parameters() if p.grad is not None}


# ----------------------------------------------------------------------------------------------------
# q1 params_hash

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _check_params_hash(fn: Any, timeout: float, cases: list[int]) -> None:
    for seed in cases:
        net = make_net(seed)
        shown = f"a small model (nn.Linear, nn.Embedding, nn.LayerNorm, nn.Linear; weights from seed {seed})"
        got = call_safely(fn, net, timeout=timeout, show_input=shown)
        if isinstance(got, (bytes, bytearray)):
            raise CheckFailed("You returned the raw digest bytes; return the 64-character hex string: h.hexdigest().",
                              input=shown)
        if isinstance(got, Opaque) and "hash" in got.type_name.lower():
            raise CheckFailed("You returned the hash object itself; return its text: h.hexdigest().", input=shown)
        if not isinstance(got, str) or not _HEX64.match(got):
            extra = " Did you forget a `return` statement?" if got is None else ""
            raise CheckFailed("`params_hash` should return a SHA-256 hex digest: a str of 64 characters 0-9a-f."
                              + extra, input=shown, got=got)

        nudged = copy.deepcopy(net)
        with torch.no_grad():
            nudged.proj.weight[15, 20] += 1e-6
        got_nudged = call_safely(fn, nudged, timeout=timeout, show_input=shown + ", one weight + 1e-6")
        if got_nudged == got:
            raise CheckFailed(
                "Your hash did not change when one weight of proj.weight (1,200 numbers) changed by 1e-6. Hash the "
                "exact bytes (p.detach().cpu().contiguous().numpy().tobytes()), not str(p): str rounds to 4 "
                "decimals and shows a large tensor only by its first and last rows ('...' in between).",
                input=shown + ", and the same model with proj.weight[15, 20] += 1e-6")

        expected = ref_params_hash(net)
        if got == expected:
            again = call_safely(fn, copy.deepcopy(net), timeout=timeout, show_input=shown)
            if again != got:
                raise CheckFailed("An exact copy of the model gave another hash: the order you visit the parameters "
                                  "in changes from call to call (a set?). Sort the named parameters by name.",
                                  input=shown)
            continue
        with diagnosing():
            _diagnose_hash(got, net, CheckFailed.at(input=shown, expected=expected, got=got))
        raise CheckFailed("The hash is not the expected one. For each (name, p) in sorted(model.named_parameters()): "
                          "h.update(name.encode('utf-8')), then h.update(p.detach().cpu().contiguous().numpy()"
                          ".tobytes()); return h.hexdigest().", input=shown, expected=expected, got=got)


def _diagnose_hash(got: str, net: nn.Module, fail: Any) -> None:
    if got == hash_variant(list(net.named_parameters())):
        raise fail("The parameters are hashed in the order the modules were registered (proj, emb, norm, "
                   "head), not sorted by name. Sort them: sorted(model.named_parameters(), key=lambda kv: kv[0]). "
                   "Then the hash does not depend on how the model's code happens to be written.")
    if got == hash_variant(sorted(net.named_parameters(), key=lambda kv: kv[0]), names=False):
        raise fail("The bytes are right but the names are missing: update the hash with name.encode('utf-8') "
                   "before each parameter's bytes, so that two parameters swapping values changes the hash.")
    if got == hash_variant(sorted(net.state_dict().items())):
        raise fail("You hashed the state_dict, which also holds buffers (here `scale`). Hash the parameters "
                   "only: model.named_parameters().")
    if got == hash_variant(sorted(net.named_parameters(), key=lambda kv: kv[0]), as_text=True):
        raise fail("You hashed str(p). Hash the exact bytes: p.detach().cpu().contiguous().numpy().tobytes().")


q1 = Exercise(
    name="q1",
    title="params_hash(model)",
    points=1,
    prompt=(
        "Write `params_hash(model)` that returns the SHA-256 hex digest (a str of 64 characters) of all the "
        "model's parameters: for each (name, p) of model.named_parameters() SORTED BY NAME, update one "
        "hashlib.sha256() with name.encode('utf-8') and then p.detach().cpu().contiguous().numpy().tobytes()."
    ),
    checker=_check_params_hash,
    cases=[0, 1],
    hidden=lambda rng: [rng.randrange(2**31)],
    forbidden=("lmlab.tracking.params_hash",),
    hints=[
        "h = hashlib.sha256() makes a hash you can feed bytes with h.update(b); h.hexdigest() gives the text.",
        "sorted(model.named_parameters(), key=lambda kv: kv[0]) visits the parameters in name order, whatever "
        "order the modules were created in.",
        "for name, p in sorted(...): h.update(name.encode('utf-8')); h.update(p.detach().cpu().contiguous()"
        ".numpy().tobytes()) -- then return h.hexdigest()",
    ],
    solution_code='''\
import hashlib

def params_hash(model):
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode("utf-8"))                              # which tensor
        h.update(p.detach().cpu().contiguous().numpy().tobytes())   # its exact bits
    return h.hexdigest()
''',
    explanation=(
        "A cryptographic hash changes completely when any input bit changes, so equal hashes mean (with "
        "overwhelming probability) bit-identical weights: the strictest test that two runs did the same "
        "computation. The raw bytes matter: str(p) rounds to 4 decimals and elides large tensors, so it misses "
        "exactly the last-bit differences that thread counts or kernels cause. Sorting by name makes the hash "
        "independent of the order modules were registered in; a set has no stable order at all. The names go in "
        "too, so two parameters swapping values change the hash."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 grad_norms


def _check_grad_norms(fn: Any, timeout: float, cases: list[int]) -> None:
    for seed in cases:
        net = net_with_grads(seed)
        shown = (f"a small model after one backward pass (seed {seed}); emb.weight is frozen and head is unused, "
                 "so their .grad is None")
        try:
            got = call_safely(fn, net, timeout=timeout, show_input=shown)
        except LearnerError as exc:
            if "NoneType" in exc.message:
                raise CheckFailed("Some parameters have no gradient (p.grad is None: frozen, or not used by the "
                                  "forward pass). Skip them: ... for name, p in model.named_parameters() if p.grad "
                                  "is not None.", input=shown, details=exc.details) from None
            raise
        expected = ref_grad_norms(net)
        if isinstance(got, (float, int, torch.Tensor)) and not isinstance(got, bool):
            raise CheckFailed("You returned one number; return a dict with one norm per parameter name, "
                              "{name: norm}.", input=shown, expected=expected, got=got)
        if not isinstance(got, dict):
            extra = " Did you forget a `return` statement?" if got is None else ""
            raise CheckFailed("`grad_norms` should return a dict {name: norm}." + extra, input=shown, got=got)
        if set(got) != set(expected):
            missing, extra_keys = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
            if extra_keys and set(extra_keys) <= {"emb.weight", "head.weight", "head.bias"}:
                raise CheckFailed(f"Leave out parameters without a gradient (p.grad is None): {extra_keys}.",
                                  input=shown, expected=sorted(expected), got=sorted(got))
            raise CheckFailed(f"The keys should be the parameter names from model.named_parameters() that have a "
                              f"gradient. Missing: {missing}; unexpected: {extra_keys}.",
                              input=shown, expected=sorted(expected), got=sorted(got, key=str))
        for name, value in got.items():
            if isinstance(value, torch.Tensor):
                raise CheckFailed(f"The value for {name!r} is a tensor; return plain floats with .item().",
                                  input=shown, got=value)
            if not isinstance(value, (float, int)) or isinstance(value, bool):
                raise CheckFailed(f"The value for {name!r} should be a float, got a {type(value).__name__}.",
                                  input=shown, got=value)
        params = dict(net.named_parameters())
        for name, exp in expected.items():
            value = float(got[name])
            if math.isclose(value, exp, rel_tol=1e-4, abs_tol=1e-7):
                continue
            grad, p = params[name].grad, params[name]
            near = number_near(value, rtol=1e-4, atol=1e-7)
            fail = CheckFailed.at(input=shown + f", parameter {name!r}", expected=exp, got=value)
            if near(p.detach().norm()):
                raise fail("This is the norm of the parameter itself; take the norm of its gradient, p.grad.")
            if near(grad.norm() ** 2):
                raise fail("This is the squared norm (sum of squares); take the square root: p.grad.norm().")
            if near(grad.abs().sum()):
                raise fail("This is the L1 norm (sum of absolute values); the L2 norm is sqrt(sum of squares), "
                           "p.grad.norm().")
            if near(grad.abs().mean()) or near(grad.pow(2).mean().sqrt()):
                raise fail("This is a mean over the entries; the L2 norm sums the squares over all entries: "
                           "p.grad.norm().")
            raise fail(f"Wrong norm for {name!r}: expected the L2 norm of p.grad, p.grad.norm().item().")


q2 = Exercise(
    name="q2",
    title="grad_norms(model)",
    points=1,
    prompt=(
        "Write `grad_norms(model)` that returns a dict {name: norm} with the L2 norm of the gradient (a float) "
        "of every parameter of model.named_parameters() whose .grad is not None (call it after loss.backward())."
    ),
    checker=_check_grad_norms,
    cases=[0, 1],
    hidden=lambda rng: [rng.randrange(2**31)],
    forbidden=("lmlab.tracking.grad_norms",),
    hints=[
        "After backward(), each parameter p holds its gradient in p.grad (same shape as p), or None if it got no "
        "gradient (frozen with requires_grad=False, or not used by the forward pass).",
        "The L2 norm of a tensor over all its entries is t.norm(); .item() turns a 0-dim tensor into a float.",
        "return {name: p.grad.norm().item() for name, p in model.named_parameters() if p.grad is not None}",
    ],
    solution_code='''\
def grad_norms(model):
    return {name: p.grad.norm().item()                  # sqrt of the sum of squares, as a float
            for name, p in model.named_parameters()
            if p.grad is not None}                      # frozen or unused parameters have no gradient
''',
    explanation=(
        "The gradient norm of a parameter says how hard the loss pulls on it. Compared across layers it shows "
        "where training is stuck (norms near 0: a dead or disconnected layer), where it is about to blow up "
        "(norms far larger than the rest), and whether a layer is receiving gradients at all (None). The norm "
        "that gradient clipping bounds is the total sqrt(sum of the squares of these norms)."
    ),
)

EXERCISES = ExerciseSet("nb11", "11 · Reproducibility and maintenance", [q1, q2])
progress = EXERCISES.progress
