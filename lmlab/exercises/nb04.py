"""Exercises for notebook 04, "From a table of logits to recurrent networks": an LSTM step, a GRU step, clipping.

In the notebook::

    from lmlab.exercises import nb04 as ex

    def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh): ...
    ex.q1.check(lstm_cell)      # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (checked on several inputs against the small references below, written
with plain torch; B batch, T time, E input size, H hidden size, V vocabulary size):

- q1 ``lstm_cell(x (B, E), h (B, H), c (B, H), W_ih (4H, E), W_hh (4H, H), b_ih (4H,), b_hh (4H,))
  -> (h_new (B, H), c_new (B, H))``: one step of ``nn.LSTM``, gates in PyTorch's order i, f, g, o.
- q2 ``gru_cell(x (B, E), h (B, H), W_ih (3H, E), W_hh (3H, H), b_ih (3H,), b_hh (3H,)) -> h_new (B, H)``:
  one step of ``nn.GRUCell``, blocks in PyTorch's order r, z, n, the reset gate applied to W_hn h + b_hn.
- q3 ``clip_grad_norm(grads: list of tensors, max_norm) -> list of tensors``: every gradient scaled by
  min(1, max_norm / global norm), as ``nn.utils.clip_grad_norm_`` (new tensors; the inputs unchanged).

Tolerances: rtol 1e-4, atol 1e-5 (float32).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from lmlab.exercises.core import (
    CheckFailed,
    Exercise,
    ExerciseSet,
    call_safely,
    compare_tensors,
    diagnosing,
    tensors_close,
)
from lmlab.exercises.describe import type_name

__all__ = ["q1", "q2", "q3", "EXERCISES", "progress", "ref_lstm_cell", "ref_gru_cell", "ref_clip_grad_norm",
           "lstm_variant", "gru_variant", "lstm_case", "gru_case"]

RTOL, ATOL = 1e-4, 1e-5

# ----------------------------------------------------------------------------------------------------
# References


def lstm_variant(x, h, c, W_ih, W_hh, b_ih, b_hh, order="ifgo", tanh_c=True, g_act="tanh"):
    """One LSTM step with the gate blocks read in `order` (the reference is "ifgo"); variants for diagnosis."""
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    blocks = dict(zip(order, gates.chunk(4, dim=1)))  # each (B, H)
    i, f, o = torch.sigmoid(blocks["i"]), torch.sigmoid(blocks["f"]), torch.sigmoid(blocks["o"])
    g = torch.tanh(blocks["g"]) if g_act == "tanh" else torch.sigmoid(blocks["g"])
    c_new = f * c + i * g  # (B, H)
    h_new = o * (torch.tanh(c_new) if tanh_c else c_new)  # (B, H)
    return h_new, c_new


def ref_lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """Reference for q1: the same numbers as ``nn.LSTMCell`` with these weights."""
    return lstm_variant(x, h, c, W_ih, W_hh, b_ih, b_hh)


# ----------------------------------------------------------------------------------------------------
# q1 lstm_cell


def lstm_case(B: int, E: int, H: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random x (B, E), h and c (B, H), W_ih (4H, E), W_hh (4H, H), b_ih and b_hh (4H,) from `seed`."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, E), (B, H), (B, H), (4 * H, E), (4 * H, H), (4 * H,), (4 * H,)]
    scales = [1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0]
    return tuple(torch.randn(*shape, generator=g) * scale for shape, scale in zip(shapes, scales))


_Q1_CASES = [(2, 3, 4, 0), (1, 5, 2, 1), (3, 4, 6, 2)]


def _q1_hidden(rng: random.Random) -> list[tuple[int, int, int, int]]:
    return [(rng.randint(1, 4), rng.randint(1, 6), rng.randint(1, 6), rng.randrange(2**31)) for _ in range(3)]


def _close(a: torch.Tensor, b: Any) -> bool:
    return tensors_close(a, b, rtol=RTOL, atol=ATOL)


def _check_lstm_cell(fn: Any, timeout: float, cases: list[tuple[int, int, int, int]]) -> None:
    for B, E, H, seed in cases:
        args = lstm_case(B, E, H, seed)
        shown = f"B={B}, E={E}, H={H} (random x, h, c, weights; seed {seed})"
        got = call_safely(fn, *[a.clone() for a in args], timeout=timeout, show_input=shown)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            extra = " Did you forget a `return` statement?" if got is None else ""
            raise CheckFailed(f"`lstm_cell` should return a tuple (h_new, c_new) of two tensors of shape ({B}, {H}), "
                              f"but it returned {'None' if got is None else type_name(got)}.{extra}", input=shown)
        h_got, c_got = got
        h_exp, c_exp = ref_lstm_cell(*args)
        if _close(h_exp, h_got) and _close(c_exp, c_got):
            continue
        with diagnosing():
            _diagnose_lstm(args, h_got, c_got, CheckFailed.at(input=shown, expected=h_exp, got=h_got))
        compare_tensors(c_exp, c_got, rtol=RTOL, atol=ATOL, name="Your c_new", show_input=shown)
        compare_tensors(h_exp, h_got, rtol=RTOL, atol=ATOL, name="Your h_new", show_input=shown)


def _diagnose_lstm(args: tuple[torch.Tensor, ...], h_got: Any, c_got: Any, fail: Any) -> None:
    h_exp, c_exp = ref_lstm_cell(*args)
    if _close(c_exp, h_got) and _close(h_exp, c_got):
        raise fail("h and c are swapped: return (h_new, c_new), in that order.")
    for order in ("ifog", "figo", "iofg", "giof", "oifg"):
        h_w, c_w = lstm_variant(*args, order=order)
        if _close(h_w, h_got) and _close(c_w, c_got):
            raise fail(f"The gates are read in the order {', '.join(order)}. PyTorch stacks the four blocks of "
                       "W_ih, W_hh and the biases in the order i, f, g, o (input, forget, cell candidate, "
                       "output): i, f, g, o = gates.chunk(4, dim=1).")
    h_w, c_w = lstm_variant(*args, tanh_c=False)
    if _close(h_w, h_got) and _close(c_exp, c_got):
        raise fail("c_new is right but h_new is not: the new hidden state squashes the cell first, "
                   "h_new = o * tanh(c_new), not o * c_new.")
    h_w, c_w = lstm_variant(*args, g_act="sigmoid")
    if _close(h_w, h_got) and _close(c_w, c_got):
        raise fail("The cell candidate g uses tanh (values in (-1, 1), so the cell can also decrease), "
                   "not a sigmoid; i, f and o use the sigmoid.")
    if _close(c_exp, c_got):
        raise fail("c_new is right but h_new is not: h_new = o * tanh(c_new), with o = sigmoid of the 4th block.")


q1 = Exercise(
    name="q1",
    title="lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh)",
    points=2,
    prompt=(
        "Write `lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh)` that computes one LSTM step exactly as nn.LSTM does "
        "and returns (h_new, c_new). Shapes: x (B, E), h and c (B, H), W_ih (4H, E), W_hh (4H, H), b_ih and "
        "b_hh (4H,). The 4H rows hold the gate blocks in PyTorch's order i, f, g, o: "
        "i, f, o = sigmoid(...), g = tanh(...), c_new = f * c + i * g, h_new = o * tanh(c_new)."
    ),
    checker=_check_lstm_cell,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    hints=[
        "First compute all four pre-activations at once: gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh, shape (B, 4H).",
        "Split along dim 1 into four (B, H) blocks in the order i, f, g, o: gates.chunk(4, dim=1). "
        "Sigmoid for i, f, o; tanh for g.",
        "c_new = f * c + i * g; h_new = o * torch.tanh(c_new); return h_new, c_new",
    ],
    solution_code='''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh      # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)                  # each (B, H), PyTorch's order
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g                               # keep some old memory, write some new
    h_new = o * torch.tanh(c_new)                       # expose a squashed view of the cell
    return h_new, c_new
''',
    explanation=(
        "The cell state c is a running memory: the forget gate f (in (0, 1)) scales what is kept, the input "
        "gate i scales what is written, and the candidate g (tanh, in (-1, 1)) is what could be written. "
        "Because c_new = f * c + ... is additive, gradients flow through many steps when f is near 1. The "
        "output gate o decides how much of tanh(c_new) becomes the hidden state h that the next layer and the "
        "next step see. The block order i, f, g, o is a convention of PyTorch (and cuDNN); copying weights "
        "between implementations with another order silently gives a different model."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 gru_cell


def gru_variant(x, h, W_ih, W_hh, b_ih, b_hh, order="rzn", reset_bias_inside=True, swap_update=False):
    """One GRU step with switches for the typical mistakes (the defaults give nn.GRUCell's numbers)."""
    gi = dict(zip(order, (x @ W_ih.T + b_ih).chunk(3, dim=1)))  # input parts, each (B, H)
    gh = dict(zip(order, (h @ W_hh.T + b_hh).chunk(3, dim=1)))  # state parts, each (B, H)
    r, z = torch.sigmoid(gi["r"] + gh["r"]), torch.sigmoid(gi["z"] + gh["z"])
    if reset_bias_inside:
        n = torch.tanh(gi["n"] + r * gh["n"])  # r * (W_hn h + b_hn), as PyTorch
    else:
        b_hn = dict(zip(order, b_hh.chunk(3)))["n"]
        n = torch.tanh(gi["n"] + r * (gh["n"] - b_hn) + b_hn)  # r * (W_hn h) + b_hn
    return z * n + (1 - z) * h if swap_update else (1 - z) * n + z * h


def ref_gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    """Reference for q2: the same numbers as ``nn.GRUCell`` with these weights."""
    return gru_variant(x, h, W_ih, W_hh, b_ih, b_hh)


def gru_case(B: int, E: int, H: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random x (B, E), h (B, H), W_ih (3H, E), W_hh (3H, H), b_ih and b_hh (3H,) from `seed`."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, E), (B, H), (3 * H, E), (3 * H, H), (3 * H,), (3 * H,)]
    scales = [1.0, 1.0, 0.6, 0.6, 1.0, 1.0]
    return tuple(torch.randn(*shape, generator=g) * scale for shape, scale in zip(shapes, scales))


def _check_gru_cell(fn: Any, timeout: float, cases: list[tuple[int, int, int, int]]) -> None:
    for B, E, H, seed in cases:
        args = gru_case(B, E, H, seed)
        shown = f"B={B}, E={E}, H={H} (random x, h, weights; seed {seed})"
        got = call_safely(fn, *[a.clone() for a in args], timeout=timeout, show_input=shown)
        expected = ref_gru_cell(*args)
        if _close(expected, got):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        if got is None:
            raise CheckFailed("`gru_cell` returned None. Did you forget a `return` statement?", input=shown)
        if isinstance(got, (tuple, list)):
            raise fail(f"`gru_cell` should return one tensor h_new of shape ({B}, {H}) (a GRU has no cell state), "
                       f"but it returned a {type_name(got)}.")
        with diagnosing():
            _diagnose_gru(args, got, fail)
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your h_new", show_input=shown)


def _diagnose_gru(args: tuple[torch.Tensor, ...], got: Any, fail: Any) -> None:
    if _close(gru_variant(*args, swap_update=True), got):
        raise fail("z and 1 - z are swapped: PyTorch keeps the old state with z, h_new = (1 - z) * n + z * h. "
                   "(The GRU paper writes it the other way round; what matters is matching nn.GRUCell.)")
    if _close(gru_variant(*args, reset_bias_inside=False), got):
        raise fail("The reset gate multiplies W_hn h but not its bias b_hn. In PyTorch it multiplies both: "
                   "n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). Compute h @ W_hh.T + b_hh first, then chunk.")
    for order in ("zrn", "nrz", "rnz"):
        if _close(gru_variant(*args, order=order), got):
            raise fail(f"The gate blocks are read in the order {', '.join(order)}. nn.GRUCell stacks them as "
                       "r, z, n (reset, update, candidate): r, z, n = gates.chunk(3, dim=1).")
    x, h, W_ih, W_hh, b_ih, b_hh = args
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 3H): all summed, as an LSTM would
    i_r, i_z, i_n = gates.chunk(3, dim=1)
    r, z = torch.sigmoid(i_r), torch.sigmoid(i_z)
    if _close((1 - z) * torch.tanh(i_n) + z * h, got):
        raise fail("The candidate ignores the reset gate: input and state parts were summed before the chunk, as "
                   "in an LSTM. Keep them apart for n: n = tanh(i_n + r * h_n) with i_n from x @ W_ih.T + b_ih "
                   "and h_n from h @ W_hh.T + b_hh.")


q2 = Exercise(
    name="q2",
    title="gru_cell(x, h, W_ih, W_hh, b_ih, b_hh)",
    points=2,
    prompt=(
        "Write `gru_cell(x, h, W_ih, W_hh, b_ih, b_hh)` that computes one GRU step exactly as nn.GRUCell does and "
        "returns h_new. Shapes: x (B, E), h (B, H), W_ih (3H, E), W_hh (3H, H), b_ih and b_hh (3H,); the blocks "
        "are stacked in the order r, z, n. r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise, "
        "n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h_new = (1 - z) * n + z * h."
    ),
    checker=_check_gru_cell,
    cases=[(2, 3, 4, 0), (1, 5, 2, 1), (3, 4, 6, 2)],
    hidden=_q1_hidden,
    hints=[
        "Unlike the LSTM you cannot add the input and state parts before splitting: the reset gate multiplies the "
        "state's part of n only. Compute gi = x @ W_ih.T + b_ih and gh = h @ W_hh.T + b_hh, both (B, 3H).",
        "Chunk each into three (B, H) blocks in the order r, z, n. r and z are sigmoids of the sums of their "
        "blocks; n = tanh(gi_n + r * gh_n).",
        "return (1 - z) * n + z * h   # z near 1 keeps the old state",
    ],
    solution_code='''\
import torch

def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    i_r, i_z, i_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)   # the input's parts, each (B, H)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)   # the state's parts
    r = torch.sigmoid(i_r + h_r)                           # reset: how much of the state the candidate sees
    z = torch.sigmoid(i_z + h_z)                           # update: how much of the old state to keep
    n = torch.tanh(i_n + r * h_n)                          # candidate
    return (1 - z) * n + z * h
''',
    explanation=(
        "The update gate z plays the forget gate's role and the input gate's at once: the new state is a convex "
        "mix of the old state (weight z) and the candidate (weight 1 - z), so with z near 1 the state, and the "
        "gradient through it, passes a step almost unchanged, as along the LSTM's cell path. The reset gate r "
        "decides how much of the old state the candidate may look at. A GRU has 3H rows of weights where an LSTM "
        "has 4H, and no separate cell state. PyTorch applies r after adding b_hn, which is why the input and "
        "state parts must be kept apart until then."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 clip_grad_norm


def ref_clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    """Reference for q3: the gradients scaled by min(1, max_norm / global norm), as nn.utils.clip_grad_norm_."""
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    scale = min(1.0, max_norm / (float(total) + 1e-6))
    return [g * scale for g in grads]


def _grads_case(shapes: list[tuple[int, ...]], scale: float, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) * scale for shape in shapes]


_Q3_CASES = [  # (shapes, scale, max_norm, seed)
    ([(3, 4), (4,)], 1.0, 1.0, 0),  # norm about 4: clipped
    ([(2, 2), (5,), (3, 1, 2)], 0.05, 1.0, 1),  # norm about 0.2: unchanged
    ([(6,)], 3.0, 0.5, 2),  # one tensor
    ([(4, 4), (4,), (4, 2)], 2.0, 5.0, 3),
]


def _q3_hidden(rng: random.Random) -> list[tuple[list[tuple[int, ...]], float, float, int]]:
    shapes = [(rng.randint(1, 5), rng.randint(1, 5)) for _ in range(rng.randint(2, 4))]
    return [(shapes, rng.choice([2.0, 5.0]), rng.choice([0.5, 1.0]), rng.randrange(2**31)),
            (shapes[:1], 0.01, 1.0, rng.randrange(2**31))]


def _check_clip(fn: Any, timeout: float, cases: list[tuple[list[tuple[int, ...]], float, float, int]]) -> None:
    for shapes, scale, max_norm, seed in cases:
        grads = _grads_case(shapes, scale, seed)
        norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
        shown = (f"{len(grads)} random tensors of shapes {shapes} (global norm {norm:.3g}, seed {seed}), "
                 f"max_norm={max_norm}")
        got = call_safely(fn, [g.clone() for g in grads], max_norm, timeout=timeout, show_input=shown)
        expected = ref_clip_grad_norm(grads, max_norm)
        same_length = isinstance(got, (list, tuple)) and len(got) == len(expected)
        if same_length and all(_close(e, g) for e, g in zip(expected, got)):
            continue
        if got is None:
            raise CheckFailed("`clip_grad_norm` returned None. Did you forget a `return` statement? (Return new "
                              "tensors; do not change the gradients in place.)", input=shown)
        if not (isinstance(got, (list, tuple)) and len(got) == len(expected)):
            raise CheckFailed(f"`clip_grad_norm` should return a list of {len(expected)} tensors (one per gradient), "
                              f"but it returned {type_name(got)}.", input=shown)
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        with diagnosing():
            _diagnose_clip(grads, max_norm, norm, list(got), fail)
        for i, (e, g) in enumerate(zip(expected, got)):
            compare_tensors(e, g, rtol=RTOL, atol=ATOL, name=f"Your tensor {i}", show_input=shown)


def _diagnose_clip(grads: list[torch.Tensor], max_norm: float, norm: float, got: list[Any], fail: Any) -> None:
    if norm < max_norm and all(_close(g * (max_norm / norm), r) for g, r in zip(grads, got)):
        raise fail(f"The global norm {norm:.3g} is already below max_norm={max_norm}, but your gradients were scaled "
                   "UP to max_norm. Clipping only shrinks: scale by min(1, max_norm / norm).")
    per_tensor = [g * min(1.0, max_norm / (float(g.norm()) + 1e-6)) for g in grads]
    if len(grads) > 1 and all(_close(p, r) for p, r in zip(per_tensor, got)):
        raise fail("Each tensor was clipped by its own norm. The norm is global: sqrt of the sum of the squares of "
                   "ALL entries of all the tensors; then every tensor is scaled by the same factor, which keeps the "
                   "direction of the whole update.")
    squared = sum((g.double() ** 2).sum() for g in grads).item()
    if all(_close(g * min(1.0, max_norm / squared), r) for g, r in zip(grads, got)):
        raise fail("The norm is missing its square root: norm = sqrt(sum of squares).")
    clamped = [g.clamp(-max_norm, max_norm) for g in grads]
    if all(_close(c, r) for c, r in zip(clamped, got)):
        raise fail("Each entry was clamped to [-max_norm, max_norm] (that is clip_grad_value_). Clipping by norm "
                   "scales all the gradients by one factor, so the direction of the update stays the same.")


q3 = Exercise(
    name="q3",
    title="clip_grad_norm(grads, max_norm)",
    points=1,
    prompt=(
        "Write `clip_grad_norm(grads, max_norm)` for a list of gradient tensors of any shapes: compute their global "
        "norm sqrt(sum over all tensors of the sum of squares), and return a NEW list of tensors, each multiplied "
        "by min(1, max_norm / norm) (as torch.nn.utils.clip_grad_norm_ scales the .grad tensors in place). "
        "Leave the input tensors unchanged."
    ),
    checker=_check_clip,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    forbidden=("torch.nn.utils.clip_grad.clip_grad_norm_", "torch.nn.utils.clip_grad_norm_"),
    hints=[
        "One norm for all of them: add up (g ** 2).sum() over every tensor g, then take the square root.",
        "The factor is max_norm / norm when the norm is above max_norm, and 1 otherwise: min(1.0, max_norm / norm). "
        "(clip_grad_norm_ adds 1e-6 to the norm to avoid dividing by 0.)",
        "total = torch.sqrt(sum((g ** 2).sum() for g in grads)); scale = min(1.0, max_norm / (total.item() + 1e-6)); "
        "return [g * scale for g in grads]",
    ],
    solution_code='''\
import torch

def clip_grad_norm(grads, max_norm):
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))   # the global norm
    scale = min(1.0, max_norm / (total.item() + 1e-6))                # shrink only, never grow
    return [g * scale for g in grads]                                  # new tensors: the inputs stay as they are
''',
    explanation=(
        "All the gradients together form one vector, the direction in which the loss rises fastest. Scaling every "
        "tensor by the same factor keeps that direction and caps the step length at lr * max_norm, so a rare "
        "huge gradient (an exploding product of Jacobians in an RNN, a bad batch) cannot throw the weights far. "
        "Clipping each tensor by its own norm, or each entry to a range, changes the direction. The factor is "
        "1 when the norm is already small, so ordinary steps are untouched."
    ),
)

EXERCISES = ExerciseSet("nb04", "04 · From an MLP to an LSTM language model", [q1, q2, q3])
progress = EXERCISES.progress
