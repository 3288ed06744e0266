"""Exercises for notebook 02, "Gradient descent": the gradient of the cross-entropy and one SGD step.

In the notebook::

    from lmlab.exercises import nb02 as ex

    def softmax_grad(logits, targets): ...
    ex.q1.check(softmax_grad)   # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (checked against the small references below, plain torch):

- q1 ``softmax_grad(logits: Tensor (N, V), targets: LongTensor (N,)) -> Tensor (N, V)``: the gradient of
  the MEAN cross-entropy ``F.cross_entropy(logits, targets)`` with respect to ``logits``:
  ``(softmax(logits, dim=1) - one_hot(targets)) / N``.
- q2 ``sgd_step(params: Tensor, grads: Tensor, lr: float) -> Tensor``: one plain gradient-descent
  update, a new tensor ``params - lr * grads`` (the input is not modified).

Tolerances: rtol 1e-4, atol 1e-6.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from lmlab.exercises.core import CheckFailed, Exercise, ExerciseSet, call_safely, compare_tensors, diagnosing
from lmlab.exercises.describe import type_name

__all__ = ["q1", "q2", "EXERCISES", "progress", "ref_softmax_grad", "ref_sgd_step"]

RTOL, ATOL = 1e-4, 1e-6

# ----------------------------------------------------------------------------------------------------
# References


def ref_softmax_grad(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Reference for q1: d mean-CE / d logits = (softmax - one-hot) / N. Shape: (N, V), (N,) -> (N, V)"""
    N, V = logits.shape
    probs = torch.softmax(logits.double(), dim=1)  # (N, V)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(targets).long(), V).double()  # (N, V)
    return ((probs - onehot) / N).to(logits.dtype)


def ref_sgd_step(params: torch.Tensor, grads: torch.Tensor, lr: float) -> torch.Tensor:
    """Reference for q2: params - lr * grads (a new tensor)."""
    return params - lr * grads


def _close(a: Any, b: torch.Tensor) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and a.is_floating_point()
        and bool(torch.allclose(a.detach().double(), b.double(), rtol=RTOL, atol=ATOL))
    )


def _check_tensor(got: Any, shape: tuple[int, ...], name: str, shown: str) -> None:
    if not isinstance(got, torch.Tensor):
        extra = " Did you forget a `return` statement?" if got is None else ""
        raise CheckFailed(
            f"`{name}` should return a torch.Tensor of shape {shape}, but it returned "
            f"{'None' if got is None else type_name(got)}.{extra}",
            input=shown,
            got=got,
        )
    if tuple(got.shape) != shape:
        raise CheckFailed(f"`{name}` returned a tensor of shape {tuple(got.shape)}; it should have shape {shape}.",
                          input=shown, got=got)


# ----------------------------------------------------------------------------------------------------
# q1 softmax_grad


def _logits(N: int, V: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(N, V, generator=g)


_Q1_CASES: list[tuple[torch.Tensor, torch.Tensor]] = [
    (_logits(4, 3, 0), torch.tensor([0, 2, 1, 1])),
    (_logits(5, 6, 1, scale=3.0), torch.tensor([5, 0, 0, 3, 2])),
    (torch.zeros(3, 4), torch.tensor([1, 1, 3])),  # uniform softmax: 1/4 everywhere
    (_logits(1, 5, 2), torch.tensor([4])),  # a single example: N = 1
    (_logits(6, 6, 3), torch.tensor([0, 1, 2, 3, 4, 5])),  # square: a softmax over dim=0 still has this shape
    (_logits(3, 5, 4, scale=60.0), torch.tensor([1, 4, 0])),  # large logits: exp() alone overflows float32
]


def _q1_hidden(rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cases = []
    for scale in (1.0, 3.0, 80.0):
        N, V = rng.randint(1, 7), rng.randint(2, 8)
        g = torch.Generator().manual_seed(rng.randrange(2**31))
        cases.append((scale * torch.randn(N, V, generator=g), torch.randint(0, V, (N,), generator=g)))
    return cases


def _check_softmax_grad(fn: Any, timeout: float, cases: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for logits, targets in cases:
        N, V = logits.shape
        shown = f"logits of shape ({N}, {V}), targets={targets.tolist()}"
        got = call_safely(fn, logits.clone(), targets.clone(), timeout=timeout, show_input=shown)
        _check_tensor(got, (N, V), "softmax_grad", shown)
        expected = ref_softmax_grad(logits, targets)
        if _close(got, expected):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got.float())
        with diagnosing():
            _diagnose_softmax_grad(got, expected, logits, targets, fail)
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="The result of `softmax_grad`", show_input=shown)


def _diagnose_softmax_grad(got: torch.Tensor, expected: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                           fail: Any) -> None:
    N, V = logits.shape
    onehot = torch.nn.functional.one_hot(targets, V).double()
    if _close(got, expected * N):
        raise fail(f"This is N = {N} times too big: it is the gradient of the SUM of the losses. The loss is "
                   f"the MEAN over the N examples, so divide by N (logits.shape[0]).")
    if _close(got, -expected):
        raise fail("The sign is flipped: the gradient is softmax - one_hot (predicted minus target), "
                   "not one_hot - softmax.")
    if _close(got, (torch.softmax(logits.double(), dim=0) - onehot) / N) or _close(
        got, torch.softmax(logits.double(), dim=0) - onehot
    ):
        raise fail("The softmax is taken over the wrong axis (dim=0, across examples). Each row is one "
                   "example's distribution over the V next tokens: use torch.softmax(logits, dim=1), "
                   "so that every row sums to 1.")
    if _close(got, torch.softmax(logits.double(), dim=1) / N):
        raise fail("The one-hot target is missing: subtract 1 at each row's target column, "
                   "(softmax - one_hot(targets)) / N.")


q1 = Exercise(
    name="q1",
    title="softmax_grad(logits, targets)",
    points=2,
    prompt=(
        "Write `softmax_grad(logits, targets)` that returns the gradient of the mean cross-entropy "
        "F.cross_entropy(logits, targets) with respect to `logits`, a tensor of shape (N, V) like `logits`. "
        "`targets` is a LongTensor of N class ids. Do not use autograd: use the formula from the notebook."
    ),
    checker=_check_softmax_grad,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    forbidden=("torch.autograd.backward", "torch.autograd.grad"),
    hints=[
        "For one example the gradient of -log softmax(z)[y] with respect to z is softmax(z) - one_hot(y). "
        "The loss is the mean over N examples.",
        "probs = torch.softmax(logits, dim=1) gives one distribution per row; subtract 1 at (i, targets[i]) "
        "for every row i, then divide everything by N.",
        "g = torch.softmax(logits, dim=1); g[torch.arange(N), targets] -= 1; return g / N",
    ],
    solution_code='''\
def softmax_grad(logits, targets):
    N, V = logits.shape
    probs = torch.softmax(logits, dim=1)                  # (N, V): each row sums to 1
    onehot = torch.nn.functional.one_hot(targets, V)      # (N, V): 1 at the target column
    return (probs - onehot) / N                           # mean over N examples
''',
    explanation=(
        "The cross-entropy of one example is -z_y + log sum_j exp(z_j). Its derivative with respect to z_j is "
        "softmax(z)_j - [j == y]: the model's probability minus the target's. The gradient pushes the target "
        "logit up and every other logit down, in proportion to the probability the model gave it. Averaging "
        "the loss over N examples divides every gradient by N; the softmax runs over each row (dim=1) because "
        "each row is one example's distribution over the V classes."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 sgd_step

_Q2_CASES: list[tuple[torch.Tensor, torch.Tensor, float]] = [
    (torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.0, -1.0]), 0.1),
    (_logits(3, 4, 4), _logits(3, 4, 5), 0.5),
    (torch.tensor([[2.0, 3.0]]), torch.tensor([[1.0, -1.0]]), 1.0),
    (torch.tensor([1.0, 2.0]), torch.tensor([4.0, 4.0]), 0.0),  # lr 0: nothing moves
]


def _q2_hidden(rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    cases = []
    for shape in [(rng.randint(1, 6),), (rng.randint(1, 4), rng.randint(1, 5))]:
        g = torch.Generator().manual_seed(rng.randrange(2**31))
        cases.append((torch.randn(shape, generator=g), torch.randn(shape, generator=g), rng.choice([0.01, 0.3, 1.5])))
    return cases


def _check_sgd_step(fn: Any, timeout: float, cases: list[tuple[torch.Tensor, torch.Tensor, float]]) -> None:
    for params, grads, lr in cases:
        shown = f"params={params.tolist()}, grads={grads.tolist()}, lr={lr:g}"
        got = call_safely(fn, params.clone(), grads.clone(), lr, timeout=timeout, show_input=shown)
        _check_tensor(got, tuple(params.shape), "sgd_step", shown)
        expected = ref_sgd_step(params, grads, lr)
        if _close(got, expected):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got.float())
        with diagnosing():
            if _close(got, params + lr * grads):
                raise fail("You stepped uphill: params + lr * grads increases the loss. Gradient DESCENT "
                           "moves against the gradient: params - lr * grads.")
            if _close(got, -lr * grads):
                raise fail("This is only the update, -lr * grads; add it to the parameters: params - lr * grads.")
            if _close(got, params - grads):
                raise fail("The learning rate is missing: scale the gradient by lr, params - lr * grads.")
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="The result of `sgd_step`", show_input=shown)


q2 = Exercise(
    name="q2",
    title="sgd_step(params, grads, lr)",
    points=1,
    prompt=(
        "Write `sgd_step(params, grads, lr)` that returns the parameters after one step of plain gradient "
        "descent, a new tensor of the same shape as `params` (do not modify `params` in place)."
    ),
    checker=_check_sgd_step,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "The gradient points in the direction in which the loss grows fastest. Which way should you move?",
        "Take a step of size lr against the gradient.",
        "return params - lr * grads",
    ],
    solution_code='''\
def sgd_step(params, grads, lr):
    return params - lr * grads       # a new tensor: params itself is unchanged
''',
    explanation=(
        "To first order, L(theta - lr g) = L(theta) - lr |g|^2 + ..., so a small step against the gradient "
        "lowers the loss. The learning rate sets the step size: too small and training crawls, too big and "
        "the second-order terms win and the loss grows. torch.optim.SGD does the same update in place, "
        "inside torch.no_grad(), on every parameter tensor."
    ),
)

EXERCISES = ExerciseSet("nb02", "02 · Gradient descent", [q1, q2])
progress = EXERCISES.progress
