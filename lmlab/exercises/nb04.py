"""Exercises for notebook 04, "An LSTM language model": one LSTM step by hand, and the LM loss on (B, T, V) logits.

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
- q2 ``lm_loss(logits (B, T, V), targets (B, T)) -> scalar tensor``: the mean cross-entropy over all
  B * T positions, as ``F.cross_entropy`` on flattened tensors.

Tolerances: rtol 1e-4, atol 1e-5 (float32).
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
import torch.nn.functional as F

from lmlab.exercises.core import (
    CheckFailed,
    Exercise,
    ExerciseSet,
    LearnerError,
    as_number,
    call_safely,
    compare_numbers,
    compare_tensors,
    diagnosing,
    number_near,
    tensors_close,
)
from lmlab.exercises.describe import type_name

__all__ = ["q1", "q2", "EXERCISES", "progress", "ref_lstm_cell", "ref_lm_loss", "lstm_variant", "lstm_case"]

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


def ref_lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Reference for q2: mean cross-entropy over all B * T positions."""
    V = logits.size(-1)
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


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
# q2 lm_loss


def _q2_case(B: int, T: int, V: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, V, generator=g) * 2, torch.randint(0, V, (B, T), generator=g)


_Q2_CASES = [(2, 3, 5, 0), (4, 6, 6, 1), (3, 7, 7, 2), (1, 4, 3, 3)]  # two with T == V: no error, wrong number


def _q2_hidden(rng: random.Random) -> list[tuple[int, int, int, int]]:
    T = rng.randint(2, 7)
    return [(rng.randint(2, 4), T, T, rng.randrange(2**31)),  # T == V
            (rng.randint(1, 4), rng.randint(2, 7), rng.randint(8, 12), rng.randrange(2**31))]


def _check_lm_loss(fn: Any, timeout: float, cases: list[tuple[int, int, int, int]]) -> None:
    for B, T, V, seed in cases:
        logits, targets = _q2_case(B, T, V, seed)
        shown = f"logits: random ({B}, {T}, {V}), targets: random ({B}, {T}) ids"
        try:
            raw = call_safely(fn, logits.clone(), targets.clone(), timeout=timeout, show_input=shown)
        except LearnerError as exc:
            if "Expected target size" in exc.message or "expected target size" in exc.message.lower():
                raise CheckFailed(
                    "F.cross_entropy got the (B, T, V) logits as they are: it reads dim 1 as the classes, so it "
                    "expected targets of shape (B, V) and failed. Flatten both first: "
                    "F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1)) (or move the classes to dim 1 "
                    "with logits.transpose(1, 2)).", input=shown, details=exc.details) from None
            raise
        got = as_number(raw, "lm_loss", show_input=shown)
        expected = float(ref_lm_loss(logits, targets))
        if math.isclose(got, expected, rel_tol=RTOL, abs_tol=ATOL):
            continue
        with diagnosing():
            _diagnose_lm_loss(got, expected, logits, targets, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_numbers(expected, got, rtol=RTOL, atol=ATOL, name="Your loss", show_input=shown)


def _diagnose_lm_loss(got: float, expected: float, logits: torch.Tensor, targets: torch.Tensor, fail: Any) -> None:
    B, T, V = logits.shape
    near = number_near(got, rtol=RTOL, atol=ATOL)
    if T == V and near(F.cross_entropy(logits, targets)):
        raise fail(f"With T == V = {V} the unflattened call F.cross_entropy(logits, targets) runs without an "
                   "error but is wrong: it reads dim 1 (time) as the classes and dim 2 as time. Flatten first: "
                   "F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1)).")
    if B > 1 and near(F.cross_entropy(logits.transpose(0, 1).reshape(-1, V), targets.reshape(-1))):
        raise fail("The logits were flattened in (T, B) order (after a transpose(0, 1), as with batch_first=False) "
                   "but the targets in (B, T) order, so each prediction is scored against another position's "
                   "target. Flatten both the same way: logits.reshape(-1, V) and targets.reshape(-1).")
    if B > 1 and near(F.cross_entropy(logits.reshape(-1, V), targets.T.reshape(-1))):
        raise fail("The targets were transposed (targets.T) before flattening, so they no longer line up with "
                   "the logits. Flatten both in (B, T) order: targets.reshape(-1).")
    if near(expected * B * T):
        raise fail(f"This is the sum over the {B * T} positions; the loss is the mean (reduction='mean', the default).")
    if near(-expected):
        raise fail("The sign is flipped: the loss is the NEGATIVE mean log-probability of the targets.")


q2 = Exercise(
    name="q2",
    title="lm_loss(logits, targets)",
    points=1,
    prompt=(
        "Write `lm_loss(logits, targets)` that returns the language-model loss as a scalar tensor: the mean "
        "cross-entropy over all B * T positions, where logits has shape (B, T, V) and targets (B, T) holds the "
        "ids of the next tokens. F.cross_entropy wants (N, V) logits and (N,) targets."
    ),
    checker=_check_lm_loss,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "F.cross_entropy(input, target) treats dim 1 of `input` as the classes. In (B, T, V) logits dim 1 is time.",
        "Merge batch and time into one dimension of N = B * T predictions, the same way for logits and targets.",
        "V = logits.size(-1); return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))",
    ],
    solution_code='''\
import torch.nn.functional as F

def lm_loss(logits, targets):
    V = logits.size(-1)
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))   # (B*T, V) vs (B*T,)
''',
    explanation=(
        "Every position of every row is one classification problem over V tokens, so the loss is the mean of "
        "B * T cross-entropies. reshape(-1, V) merges B and T in row-major order and targets.reshape(-1) does the "
        "same, so prediction n lines up with target n. Passing (B, T, V) directly makes PyTorch read dim 1 as "
        "the classes: an error in general, and a silently wrong number when T happens to equal V."
    ),
)

EXERCISES = ExerciseSet("nb04", "04 · An LSTM language model", [q1, q2])
progress = EXERCISES.progress
