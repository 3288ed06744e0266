"""Exercises for notebook 11, "Reproducibility and maintenance": a hash of a model's weights, gradient
clipping by the total norm, and layer-wise learning-rate groups.

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
- q2 ``clip_by_total_norm(grads, max_norm) -> (clipped, total)``: for a dict {name: gradient}, the total
  norm sqrt(sum ||g||^2) and the gradients scaled by min(1, max_norm / total), as
  ``torch.nn.utils.clip_grad_norm_`` (a variant of the notebook's per-parameter norms).
- q3 ``lr_groups(model, lr, decay, weight_decay) -> list[dict]``: layer-wise learning rates for an lmlab GPT
  (ln_f at lr, block l of L at lr * decay**(L - l), embeddings at lr * decay**(L + 1)) and weight decay on
  matrices only, as groups {"names", "lr", "weight_decay"} (names, not tensors: plain data the check can
  compare). A variant of notebook 10's ``param_groups``.
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
    Opaque,
    call_safely,
    compare_tensors,
    diagnosing,
    tensors_close,
)
from lmlab.exercises.fixtures import make_net, net_with_grads

__all__ = ["q1", "q2", "q3", "EXERCISES", "progress", "ref_params_hash", "ref_clip_by_total_norm", "ref_lr_groups",
           "make_net", "hash_variant"]

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


def ref_clip_by_total_norm(grads: dict[str, torch.Tensor], max_norm: float) -> tuple[dict[str, torch.Tensor], float]:
    """Reference for q2: every gradient scaled by min(1, max_norm / total norm); the total norm before clipping."""
    total = math.sqrt(sum(g.double().pow(2).sum().item() for g in grads.values()))
    scale = min(1.0, max_norm / total)
    return {name: g * scale for name, g in grads.items()}, total


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
# q2 clip_by_total_norm


def _grads_of(seed: int) -> dict[str, torch.Tensor]:
    """The gradients of a small model after one backward pass (parameters without a gradient left out)."""
    return {name: p.grad.clone() for name, p in net_with_grads(seed).named_parameters() if p.grad is not None}


def _q2_case(seed: int, share: float) -> tuple[dict[str, torch.Tensor], float]:
    """Gradients and a max_norm of `share` times their total norm (below 1: clipped; above: unchanged)."""
    grads = _grads_of(seed)
    total = math.sqrt(sum(g.pow(2).sum().item() for g in grads.values()))
    return grads, round(share * total, 4)


_Q2_CASES = [(0, 0.05), (1, 3.0), (2, 0.5)]


def _check_clip(fn: Any, timeout: float, cases: list[tuple[int, float]]) -> None:
    for seed, share in cases:
        grads, max_norm = _q2_case(seed, share)
        shown = f"the gradients of a small model (seed {seed}, {len(grads)} tensors), max_norm={max_norm}"
        got = call_safely(fn, {k: g.clone() for k, g in grads.items()}, max_norm, timeout=timeout, show_input=shown)
        clipped, total = ref_clip_by_total_norm(grads, max_norm)
        if not (isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[0], dict)):
            extra = " Did you forget a `return` statement?" if got is None else ""
            raise CheckFailed("Return a pair: (a dict {name: clipped gradient}, the total norm before clipping)."
                              + extra, input=shown, got=got)
        got_grads, got_total = got
        if set(got_grads) != set(grads):
            raise CheckFailed("The dict should have the same names as `grads`.", input=shown,
                              expected=sorted(grads), got=sorted(got_grads, key=str))
        if not isinstance(got_total, (float, int)) or isinstance(got_total, bool):
            raise CheckFailed("The total norm should be a float (use .item() on a 0-dim tensor).", input=shown,
                              got=got_total)
        fail = CheckFailed.at(input=shown, expected=total, got=got_total)
        with diagnosing():
            if math.isclose(got_total, total**2, rel_tol=1e-4) and not math.isclose(total, 1.0, rel_tol=1e-2):
                raise fail("This is the squared total norm: take the square root of the sum of squares.")
            if math.isclose(got_total, min(total, max_norm), rel_tol=1e-4) and total > max_norm:
                raise fail("Return the total norm *before* clipping: it is what you log to see how often and how "
                           "hard clipping acts.")
        if not math.isclose(got_total, total, rel_tol=1e-4):
            raise fail("The total norm is sqrt(sum over all tensors of the sum of their squared entries).")
        if all(tensors_close(got_grads[n], e, rtol=1e-4, atol=1e-7) for n, e in clipped.items()):
            continue
        fail = CheckFailed.at(input=shown, expected=f"every gradient times {min(1.0, max_norm / total):.4g}",
                              got="other tensors")
        with diagnosing():
            _diagnose_clip(got_grads, grads, max_norm, total, fail)
        for name, expected in clipped.items():
            compare_tensors(expected, got_grads[name], rtol=1e-4, atol=1e-7, name=f"The clipped {name!r}",
                            show_input=shown)


def _diagnose_clip(got: dict[str, Any], grads: dict[str, torch.Tensor], max_norm: float, total: float,
                   fail: Any) -> None:
    def same(other: dict[str, torch.Tensor]) -> bool:
        return all(tensors_close(got[n], t, rtol=1e-4, atol=1e-7) for n, t in other.items())

    if same({n: g * min(1.0, max_norm / g.norm().item()) for n, g in grads.items()}):
        raise fail("Each tensor was clipped to its own norm. Clipping by the *total* norm scales all tensors by one "
                   "factor, max_norm / total, so their directions relative to each other are kept.")
    if same({n: g.clamp(-max_norm, max_norm) for n, g in grads.items()}):
        raise fail("This clips each entry to [-max_norm, max_norm] (clipping by value). Scale the whole gradient "
                   "by max_norm / total instead.")
    if total <= max_norm and same({n: g * (max_norm / total) for n, g in grads.items()}):
        raise fail(f"The total norm {total:.4g} is already below max_norm: leave the gradients unchanged (clipping "
                   "only ever scales down).")
    if total > max_norm and same(grads):
        raise fail(f"The total norm {total:.4g} is above max_norm = {max_norm}: scale every gradient by "
                   "max_norm / total.")


q2 = Exercise(
    name="q2",
    title="clip_by_total_norm(grads, max_norm)",
    points=2,
    prompt=(
        "Write `clip_by_total_norm(grads, max_norm)` for a dict {name: gradient tensor}: the total norm is "
        "sqrt(sum over the tensors of their squared L2 norms). If it is above max_norm, scale every gradient by "
        "max_norm / total; otherwise keep them. Return (a new dict of the clipped gradients, the total norm before "
        "clipping as a float). This is what `grad_clip` in `TrainConfig` (torch.nn.utils.clip_grad_norm_) does."
    ),
    checker=_check_clip,
    cases=_Q2_CASES,
    hidden=lambda rng: [(rng.randrange(2**31), rng.choice([0.2, 0.9, 1.5]))],
    forbidden=("torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grads_with_norm_",
               "torch.nn.utils.get_total_norm"),
    hints=[
        "First the total: total = sqrt(sum of g.pow(2).sum() over the tensors), one number for the whole model "
        "(the square root of the sum of the squared per-tensor norms that grad_norms gives).",
        "One scale for every tensor: scale = min(1.0, max_norm / total). A larger total means a smaller scale.",
        "return {name: g * scale for name, g in grads.items()}, total",
    ],
    solution_code='''\
def clip_by_total_norm(grads, max_norm):
    total = math.sqrt(sum(g.pow(2).sum().item() for g in grads.values()))   # one norm for all tensors
    scale = min(1.0, max_norm / total)                  # only ever scale down
    return {name: g * scale for name, g in grads.items()}, total
''',
    explanation=(
        "Clipping by the total norm bounds the size of one update without changing its direction: all gradients "
        "are scaled by the same factor. Clipping each tensor on its own, or each entry (by value), changes the "
        "direction, favouring the parameters with small gradients. torch.nn.utils.clip_grad_norm_ does this in "
        "place (adding 1e-6 to the total to avoid dividing by 0) and returns the total before clipping, which is "
        "the number to log: a run whose total norm keeps hitting the bound is training at the edge of stability."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 lr_groups


def ref_lr_groups(model: nn.Module, lr: float, decay: float, weight_decay: float) -> list[dict[str, Any]]:
    """Reference for q3: one group per (depth, matrix or not). ln_f at lr, block l of L at lr * decay**(L - l),
    the embeddings at lr * decay**(L + 1); weight decay on matrices only."""
    L = len(model.transformer.h)
    groups: dict[tuple[float, float], list[str]] = {}
    for name, p in model.named_parameters():
        if name.startswith("transformer.h."):
            depth = L - int(name.split(".")[2])
        else:
            depth = L + 1 if name.startswith(("transformer.wte.", "transformer.wpe.")) else 0
        key = (lr * decay**depth, weight_decay if p.dim() >= 2 else 0.0)
        groups.setdefault(key, []).append(name)
    return [{"names": names, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), names in groups.items()]


_Q3_CASES = [(2, 1e-3, 0.5, 0.1), (3, 3e-4, 0.8, 0.01)]


def _q3_model(n_layer: int) -> nn.Module:
    from lmlab.models import GPT, GPTConfig

    with torch.random.fork_rng():
        torch.manual_seed(n_layer)
        return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=n_layer, n_head=2, n_embd=8))


def _check_lr_groups(fn: Any, timeout: float, cases: list[tuple[int, float, float, float]]) -> None:
    for n_layer, lr, decay, wd in cases:
        model = _q3_model(n_layer)
        shown = f"a GPT with {n_layer} blocks, lr={lr:g}, decay={decay}, weight_decay={wd}"
        got = call_safely(fn, model, lr, decay, wd, timeout=timeout, show_input=shown)
        expected = _per_name(ref_lr_groups(model, lr, decay, wd))
        if not (isinstance(got, list) and all(isinstance(g, dict) for g in got)):
            extra = " Did you forget a `return` statement?" if got is None else ""
            raise CheckFailed("Return a list of dicts, each {'names': [...], 'lr': ..., 'weight_decay': ...}." + extra,
                              input=shown, got=got)
        for g in got:
            if set(g) != {"names", "lr", "weight_decay"}:
                raise CheckFailed("Every group needs exactly the keys 'names', 'lr' and 'weight_decay' (a group "
                                  "without 'weight_decay' would get AdamW's default, 0.01).", input=shown, got=g)
        names = [n for g in got for n in g["names"]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise CheckFailed(f"A parameter may be in one group only (AdamW refuses duplicates): {twice[:3]}.",
                              input=shown)
        if set(names) != set(expected):
            raise CheckFailed(f"Every parameter of model.named_parameters() needs a group. Missing: "
                              f"{sorted(set(expected) - set(names))[:4]}; unknown: {sorted(set(names) - set(expected))[:4]}.",
                              input=shown)
        per_name = _per_name(got)
        for name, (g_lr, g_wd) in per_name.items():
            e_lr, e_wd = expected[name]
            if not math.isclose(g_lr, e_lr, rel_tol=1e-6):
                raise CheckFailed.at(input=shown + f", parameter {name!r}", expected=e_lr, got=g_lr)(
                    _lr_advice(name, per_name, n_layer, lr, decay))
            if not math.isclose(g_wd, e_wd, rel_tol=1e-9, abs_tol=0.0):
                raise CheckFailed.at(input=shown + f", parameter {name!r}", expected=e_wd, got=g_wd)(
                    "Weight decay applies to matrices (p.dim() >= 2: linear weights, embeddings); biases and "
                    "LayerNorm parameters (1-D) get weight_decay 0.0.")


def _per_name(groups: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    return {n: (float(g["lr"]), float(g["weight_decay"])) for g in groups for n in g["names"]}


def _lr_advice(name: str, got: dict[str, tuple[float, float]], L: int, lr: float, decay: float) -> str:
    blocks = {n: int(n.split(".")[2]) for n in got if n.startswith("transformer.h.")}

    def blocks_at(depth: Any) -> bool:
        return all(math.isclose(got[n][0], lr * decay ** depth(l), rel_tol=1e-6) for n, l in blocks.items())

    if name.startswith("transformer.h."):
        if blocks_at(lambda l: L - 1 - l):
            return ("Off by one: the final LayerNorm (at the top) gets lr, so the top block gets lr * decay, and "
                    "block l of L gets lr * decay ** (L - l).")
        if blocks_at(lambda l: l + 1):
            return "The decay runs the wrong way: the lowest block (l = 0) moves the least, the top block the most."
        return f"Block {blocks[name]} of {L} gets lr * decay ** ({L} - {blocks[name]})."
    if name.startswith(("transformer.wte.", "transformer.wpe.")):
        return (f"The embeddings are below every block: lr * decay ** (L + 1) with L = {L}. (wte is also the output "
                "layer, lm_head, through weight tying, but it is listed once, as transformer.wte.weight.)")
    return "The final LayerNorm, at the top, gets the full lr."


q3 = Exercise(
    name="q3",
    title="lr_groups(model, lr, decay, weight_decay)",
    points=2,
    prompt=(
        "Write `lr_groups(model, lr, decay, weight_decay)` for an lmlab GPT with L blocks: a list of groups "
        "{'names': [parameter names], 'lr': ..., 'weight_decay': ...} that together hold every name of "
        "model.named_parameters() once. Learning rates: transformer.ln_f at lr, block l (transformer.h.l) at "
        "lr * decay ** (L - l), the embeddings (wte, wpe) at lr * decay ** (L + 1). Weight decay: weight_decay "
        "for tensors with 2 or more dimensions, 0.0 for biases and LayerNorm parameters."
    ),
    checker=_check_lr_groups,
    cases=_Q3_CASES,
    hidden=lambda rng: [(rng.randint(1, 4), rng.choice([1e-3, 3e-4]), rng.choice([0.5, 0.7, 0.9]), 0.05)],
    hints=[
        "Give each parameter a depth: 0 for ln_f, L - l for a parameter of block l (l = int(name.split('.')[2])), "
        "L + 1 for the embeddings; its learning rate is lr * decay ** depth.",
        "Parameters that share a learning rate and a weight decay can share a group: a dict keyed by "
        "(learning rate, weight decay) collecting names does it.",
        "key = (lr * decay ** depth, weight_decay if p.dim() >= 2 else 0.0); groups.setdefault(key, []).append(name)",
    ],
    solution_code='''\
def lr_groups(model, lr, decay, weight_decay):
    L = len(model.transformer.h)
    groups = {}                                          # (lr, weight decay) -> names
    for name, p in model.named_parameters():
        if name.startswith("transformer.h."):
            depth = L - int(name.split(".")[2])          # top block 1, lowest block L
        elif name.startswith(("transformer.wte.", "transformer.wpe.")):
            depth = L + 1                                # the embeddings, below every block
        else:
            depth = 0                                    # the final LayerNorm
        key = (lr * decay ** depth, weight_decay if p.dim() >= 2 else 0.0)
        groups.setdefault(key, []).append(name)
    return [{"names": names, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), names in groups.items()]
''',
    explanation=(
        "Notebook 10's layer-wise decay for a classifier, here for a language model that keeps training on new "
        "data (section 8): the lower layers hold the most general features, so they move the least, which also "
        "limits forgetting. The weight-decay split is nanoGPT's: decay pulls weights toward 0, which suits "
        "matrices but not a LayerNorm gain (its neutral value is 1) or a bias. To use the groups, turn names into "
        "tensors: params = dict(model.named_parameters()); torch.optim.AdamW([{'params': [params[n] for n in "
        "g['names']], 'lr': g['lr'], 'weight_decay': g['weight_decay']} for g in groups])."
    ),
)

EXERCISES = ExerciseSet("nb11", "11 · Reproducibility and maintenance", [q1, q2, q3])
progress = EXERCISES.progress
