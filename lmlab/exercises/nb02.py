"""Exercises for notebook 02, "Gradient descent": the gradient of the cross-entropy, an L2 step, momentum.

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
- q2 ``l2_step(params: Tensor, grads: Tensor, lr: float, lam: float) -> Tensor``: one gradient step on the
  loss plus an L2 penalty ``lam * ||params||^2`` (``grads`` is the loss's gradient alone), a new tensor
  ``params - lr * (grads + 2 lam params)``.
- q3 ``momentum_run(params: Tensor, grads: list[Tensor], lr: float, mu: float) -> Tensor``: the parameters after
  one SGD-with-momentum step per gradient, as ``torch.optim.SGD(momentum=mu)``: ``v = mu v + g``,
  ``params = params - lr v``, the velocity starting at 0.

Tolerances: rtol 1e-4, atol 1e-6.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from lmlab.exercises.core import CheckFailed, Exercise, ExerciseSet, call_safely, compare_tensors, diagnosing
from lmlab.exercises.describe import type_name

__all__ = ["q1", "q2", "q3", "EXERCISES", "progress", "ref_softmax_grad", "ref_l2_step", "ref_momentum_run"]

RTOL, ATOL = 1e-4, 1e-6

# ----------------------------------------------------------------------------------------------------
# References


def ref_softmax_grad(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Reference for q1: d mean-CE / d logits = (softmax - one-hot) / N. Shape: (N, V), (N,) -> (N, V)"""
    N, V = logits.shape
    probs = torch.softmax(logits.double(), dim=1)  # (N, V)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(targets).long(), V).double()  # (N, V)
    return ((probs - onehot) / N).to(logits.dtype)


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
# q2 l2_step


def ref_l2_step(params: torch.Tensor, grads: torch.Tensor, lr: float, lam: float) -> torch.Tensor:
    """Reference for q2: one gradient step on L + lam * ||params||^2: params - lr * (grads + 2 lam params)."""
    return params - lr * (grads + 2 * lam * params)


_Q2_CASES: list[tuple[torch.Tensor, torch.Tensor, float, float]] = [
    (torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.0, -1.0]), 0.1, 0.25),
    (_logits(3, 4, 4), _logits(3, 4, 5), 0.5, 0.01),
    (torch.tensor([[2.0, 3.0]]), torch.tensor([[0.0, 0.0]]), 0.1, 1.0),  # no loss gradient: only the decay
    (torch.tensor([1.0, 2.0]), torch.tensor([4.0, 4.0]), 0.3, 0.0),  # lam 0: a plain SGD step
]


def _q2_hidden(rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor, float, float]]:
    cases = []
    for shape in [(rng.randint(1, 6),), (rng.randint(1, 4), rng.randint(1, 5))]:
        g = torch.Generator().manual_seed(rng.randrange(2**31))
        cases.append((torch.randn(shape, generator=g), torch.randn(shape, generator=g), rng.choice([0.01, 0.3, 1.5]),
                      rng.choice([0.05, 0.2, 0.7])))
    return cases


def _check_l2_step(fn: Any, timeout: float, cases: list[tuple[torch.Tensor, torch.Tensor, float, float]]) -> None:
    for params, grads, lr, lam in cases:
        shown = f"params={params.tolist()}, grads={grads.tolist()}, lr={lr:g}, lam={lam:g}"
        got = call_safely(fn, params.clone(), grads.clone(), lr, lam, timeout=timeout, show_input=shown)
        _check_tensor(got, tuple(params.shape), "l2_step", shown)
        expected = ref_l2_step(params, grads, lr, lam)
        if _close(got, expected):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got.float())
        with diagnosing():
            if _close(got, params - lr * (grads + lam * params)):
                raise fail("The penalty is lam * ||params||^2, and the derivative of lam * w^2 is 2 * lam * w: "
                           "the factor 2 is missing.")
            if _close(got, params - lr * (grads - 2 * lam * params)):
                raise fail("The penalty's gradient has the wrong sign: it should pull the weights towards 0, "
                           "so the step subtracts lr * 2 * lam * params.")
            if lam > 0 and _close(got, params - lr * grads):
                raise fail("This is a plain SGD step: the penalty's gradient 2 * lam * params is missing.")
            if _close(got, (1 - 2 * lam) * params - lr * grads):
                raise fail("The decay must be scaled by the learning rate too: the step is "
                           "-lr * (grads + 2 * lam * params), so params shrink by the factor (1 - 2 * lr * lam).")
            if _close(got, params - lr * grads - 2 * lam):
                raise fail("The penalty's gradient is 2 * lam * params, proportional to each weight, not the "
                           "constant 2 * lam.")
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="The result of `l2_step`", show_input=shown)


q2 = Exercise(
    name="q2",
    title="l2_step(params, grads, lr, lam)",
    points=2,
    prompt=(
        "Write `l2_step(params, grads, lr, lam)`: the parameters after one gradient-descent step on the loss "
        "with an L2 penalty, L(params) + lam * ||params||^2, where `grads` is the gradient of L alone (without "
        "the penalty). Return a new tensor of the same shape (do not modify `params` in place)."
    ),
    checker=_check_l2_step,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "The gradient of a sum is the sum of the gradients: you have the gradient of L; add the gradient of "
        "lam * ||params||^2 = lam * sum of params ** 2.",
        "d/dw (lam * w^2) = 2 * lam * w, for every weight w at once: 2 * lam * params. Then take the usual step.",
        "return params - lr * (grads + 2 * lam * params)",
    ],
    solution_code='''\
def l2_step(params, grads, lr, lam):
    total_grad = grads + 2 * lam * params     # gradient of L + lam * ||params||^2
    return params - lr * total_grad           # = (1 - 2 lr lam) params - lr grads
''',
    explanation=(
        "The penalty's gradient 2 lam w points away from 0, so a step against it shrinks every weight: "
        "params - lr * (grads + 2 lam params) = (1 - 2 lr lam) params - lr grads. For plain SGD an L2 penalty "
        "is therefore the same as 'weight decay', shrinking the weights by a constant factor each step. With "
        "Adam it is not: the penalty's gradient would be rescaled with the rest, which is why AdamW applies "
        "the decay separately (section 9)."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 momentum_run


def ref_momentum_run(params: torch.Tensor, grads: list[torch.Tensor], lr: float, mu: float) -> torch.Tensor:
    """Reference for q3: as torch.optim.SGD(momentum=mu): v <- mu v + g (v = g at the first step), p <- p - lr v."""
    v = torch.zeros_like(params)
    for g in grads:
        v = mu * v + g
        params = params - lr * v
    return params


def _momentum_case(n: int, shape: tuple[int, ...], seed: int, lr: float, mu: float) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g), [torch.randn(shape, generator=g) for _ in range(n)], lr, mu)


_Q3_CASES: list[tuple] = [
    (torch.tensor([0.0]), [torch.tensor([1.0])] * 3, 0.1, 0.5),  # by hand: v = 1, 1.5, 1.75; p = -0.425
    _momentum_case(4, (3,), 0, 0.2, 0.9),
    _momentum_case(6, (2, 3), 1, 0.05, 0.8),
    _momentum_case(3, (2,), 2, 0.5, 0.0),  # mu = 0: plain SGD
    _momentum_case(1, (3,), 3, 0.3, 0.9),  # a single step: v = g
]


def _q3_hidden(rng: random.Random) -> list[tuple]:
    return [_momentum_case(rng.randint(2, 8), (rng.randint(1, 4),), rng.randrange(2**31), rng.choice([0.05, 0.3]),
                           rng.choice([0.5, 0.9, 0.99])) for _ in range(3)]


def _damped(params: torch.Tensor, grads: list[torch.Tensor], lr: float, mu: float) -> torch.Tensor:
    v = torch.zeros_like(params)
    for g in grads:
        v = mu * v + (1 - mu) * g
        params = params - lr * v
    return params


def _update_first(params: torch.Tensor, grads: list[torch.Tensor], lr: float, mu: float) -> torch.Tensor:
    v = torch.zeros_like(params)
    for g in grads:
        params = params - lr * v
        v = mu * v + g
    return params


def _check_momentum_run(fn: Any, timeout: float, cases: list[tuple]) -> None:
    for params, grads, lr, mu in cases:
        shown = (f"params={[round(x, 4) for x in params.flatten().tolist()]} (shape {tuple(params.shape)}), "
                 f"{len(grads)} gradients, lr={lr:g}, mu={mu:g}")
        got = call_safely(fn, params.clone(), [g.clone() for g in grads], lr, mu, timeout=timeout, show_input=shown)
        _check_tensor(got, tuple(params.shape), "momentum_run", shown)
        expected = ref_momentum_run(params, grads, lr, mu)
        if _close(got, expected):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got.float())
        with diagnosing():
            if mu > 0 and _close(got, ref_momentum_run(params, grads, lr, 0.0)):
                raise fail("These are plain SGD steps: the velocity is missing. Keep v between steps: "
                           "v = mu * v + g, then params = params - lr * v.")
            if mu > 0 and _close(got, _damped(params, grads, lr, mu)):
                raise fail("This is a running average, v = mu * v + (1 - mu) * g ('dampening'). PyTorch's SGD "
                           "momentum adds the whole gradient: v = mu * v + g.")
            if len(grads) > 1 and _close(got, _update_first(params, grads, lr, mu)):
                raise fail("The parameters move with the OLD velocity: update v first (v = mu * v + g), then "
                           "step with the new v.")
            if _close(got, params - lr * sum(grads)):
                raise fail("This is one step with the sum of the gradients. Take one step per gradient, in order.")
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="The result of `momentum_run`", show_input=shown)


q3 = Exercise(
    name="q3",
    title="momentum_run(params, grads, lr, mu)",
    points=2,
    prompt=(
        "Write `momentum_run(params, grads, lr, mu)`: the parameters after len(grads) steps of SGD with "
        "momentum, one step per gradient in the list `grads` (each has the shape of `params`), as "
        "torch.optim.SGD(momentum=mu) does them: the velocity starts at 0 and each step does v = mu * v + g, "
        "then params = params - lr * v. Return a new tensor (do not modify the inputs)."
    ),
    checker=_check_momentum_run,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    forbidden=("torch.optim.SGD.step",),
    hints=[
        "You need one extra tensor that lives across the steps: the velocity v, zeros of the shape of params.",
        "For each g in grads: first v = mu * v + g, then params = params - lr * v. (With mu = 0 this is plain SGD.)",
        "v = torch.zeros_like(params); for g in grads: v = mu * v + g; params = params - lr * v; return params",
    ],
    solution_code='''\
def momentum_run(params, grads, lr, mu):
    v = torch.zeros_like(params)          # the velocity, kept between steps
    for g in grads:
        v = mu * v + g                    # a sum of past gradients, older ones weighted by mu ** age
        params = params - lr * v          # a new tensor: the caller's params are not changed
    return params
''',
    explanation=(
        "Unrolled, v_t = g_t + mu g_(t-1) + mu^2 g_(t-2) + ...: the velocity remembers past gradients with "
        "weights that fade by mu per step. Where the gradient keeps its direction, the steps add up to about "
        "1 / (1 - mu) times a plain step (10 times for mu = 0.9); where it flips sign from step to step, the "
        "terms cancel. That is why momentum speeds up along long, shallow valleys (the rare rows of the bigram "
        "table, section 7) without overshooting across steep ones."
    ),
)

EXERCISES = ExerciseSet("nb02", "02 · Gradient descent", [q1, q2, q3])
progress = EXERCISES.progress
