"""Exercises for notebook 06, "A transformer language model": a GPT's parameter count, and dropout by hand.

In the notebook::

    from lmlab.exercises import nb06 as ex

    def count_params(config): ...
    ex.q1.check(count_params)   # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (checked on several inputs against the references below; B batch,
T time, C channels):

- q1 ``count_params(config: GPTConfig) -> int``: the number of parameters of ``lmlab.GPT(config)``, each
  tensor once (the output layer is tied to the token embedding), from the config's fields alone.
- q2 ``dropout(x, p, u) -> tensor of x's shape``: inverted dropout with given uniform numbers u (x's shape):
  0 where u < p, x / (1 - p) elsewhere; zeros for p = 1.

Tolerances (q2): rtol 1e-4, atol 1e-5 (float32).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from lmlab.exercises.core import (
    CheckFailed,
    Exercise,
    ExerciseSet,
    as_number,
    call_safely,
    compare_tensors,
    diagnosing,
    tensors_close,
)
from lmlab.models.gpt import GPTConfig

__all__ = ["q1", "q2", "EXERCISES", "progress", "ref_count_params", "ref_dropout", "count_variant", "dropout_case"]

RTOL, ATOL = 1e-4, 1e-5

# ----------------------------------------------------------------------------------------------------
# References


def count_variant(config: GPTConfig, *, tied: bool = True, linear_bias: bool | None = None,
                  ln_bias: bool | None = None, block_ln: bool = True, final_ln: bool = True, pos: bool = True) -> int:
    """Parameters of GPT(config); the keyword arguments make the typical wrong counts, for diagnosis."""
    V, T, L, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    lb = config.bias if linear_bias is None else linear_bias
    nb = config.bias if ln_bias is None else ln_bias
    ln = C + (C if nb else 0)  # gamma (and beta)
    attn = 3 * C * C + (3 * C if lb else 0) + C * C + (C if lb else 0)  # c_attn, c_proj
    mlp = 4 * C * C + (4 * C if lb else 0) + 4 * C * C + (C if lb else 0)  # c_fc, c_proj
    n = V * C + (T * C if pos else 0) + L * (attn + mlp + (2 * ln if block_ln else 0)) + (ln if final_ln else 0)
    return n if tied else n + V * C


def ref_count_params(config: GPTConfig) -> int:
    """Reference for q1: V C + T C + L (12 C^2 + 13 C) + 2 C with biases; equals sum of numel of GPT(config)."""
    return count_variant(config)


# ----------------------------------------------------------------------------------------------------
# q1 count_params

_Q1_CONFIGS = [
    GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=64),
    GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16),
    GPTConfig(vocab_size=50, block_size=128, n_layer=3, n_head=3, n_embd=48, bias=False),
    GPTConfig(vocab_size=100, block_size=32, n_layer=4, n_head=8, n_embd=32),
]


def _show(c: GPTConfig) -> str:
    return (f"GPTConfig(vocab_size={c.vocab_size}, block_size={c.block_size}, n_layer={c.n_layer}, "
            f"n_head={c.n_head}, n_embd={c.n_embd}, bias={c.bias})")


def _q1_hidden(rng: random.Random) -> list[GPTConfig]:
    configs = []
    for bias in (True, False):
        n_head = rng.randint(1, 4)
        configs.append(GPTConfig(vocab_size=rng.randint(5, 300), block_size=rng.randint(4, 256),
                                 n_layer=rng.randint(1, 6), n_head=n_head, n_embd=n_head * rng.randint(2, 24),
                                 bias=bias))
    return configs


def _check_count_params(fn: Any, timeout: float, cases: list[GPTConfig]) -> None:
    for config in cases:
        shown = _show(config)
        raw = call_safely(fn, GPTConfig(**vars(config)), timeout=timeout, show_input=shown)
        got = as_number(raw, "count_params", show_input=shown)
        expected = ref_count_params(config)
        if got == expected:
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=raw)
        with diagnosing():
            _diagnose_count(got, config, fail)
        raise fail(f"count_params gives {got:,.0f} but GPT({shown}) has {expected:,} parameters. Count per part: "
                   "embeddings, then per block attention + MLP + two LayerNorms, then ln_f.")


def _diagnose_count(got: float, config: GPTConfig, fail: Any) -> None:
    V, T, C = config.vocab_size, config.block_size, config.n_embd
    if got == count_variant(config, tied=False):
        raise fail(f"The output layer is counted twice: lm_head.weight IS the token embedding wte.weight (weight "
                   f"tying, one Parameter used twice), so its V * C = {V * C:,} weights count once.")
    if got == count_variant(config, pos=False):
        raise fail(f"The position embedding is missing: GPT learns a table of block_size x n_embd = {T * C:,} "
                   "weights, one vector per position. (model.num_params() leaves it out by default; "
                   "sum(p.numel() for p in model.parameters()) does not.)")
    if config.bias:
        if got in (count_variant(config, linear_bias=False), count_variant(config, linear_bias=False, ln_bias=False)):
            raise fail("The biases are missing. With bias=True every Linear layer has one: 3C in the q/k/v "
                       "projection, C in the attention output, 4C and C in the MLP (13C per block with the "
                       "LayerNorms' 4C), and each LayerNorm has a bias beta beside its weight gamma.")
        if got == count_variant(config, ln_bias=False):
            raise fail("The LayerNorms' biases are missing: with bias=True each LayerNorm has a weight gamma "
                       "AND a bias beta, 2C parameters.")
    elif got in (count_variant(config, linear_bias=True, ln_bias=True), count_variant(config, linear_bias=True),
                 count_variant(config, ln_bias=True)):
        raise fail("With bias=False there are no biases at all: Linear layers have only weights and each "
                   "LayerNorm only its weight gamma (C parameters).")
    if got in (count_variant(config, block_ln=False, final_ln=False), count_variant(config, block_ln=False)):
        raise fail("The LayerNorms are missing: two per block (ln_1, ln_2) and a final one (ln_f), each with "
                   "a weight gamma" + (" and a bias beta (2C parameters)." if config.bias else " (C parameters)."))
    if got == count_variant(config, final_ln=False):
        raise fail("The final LayerNorm ln_f (after the last block, before the output layer) is missing.")


q1 = Exercise(
    name="q1",
    title="count_params(config)",
    points=2,
    prompt=(
        "Write `count_params(config)` that returns the number of parameters of lmlab's GPT(config) as an int, "
        "each tensor counted once, using only config.vocab_size (V), config.block_size (T), config.n_layer (L), "
        "config.n_embd (C) and config.bias. Parts: token and position embeddings; per block two LayerNorms, "
        "the attention (q/k/v projection C -> 3C and output projection C -> C) and the MLP (C -> 4C -> C); a "
        "final LayerNorm; and the output layer, whose weight is tied to the token embedding."
    ),
    checker=_check_count_params,
    cases=_Q1_CONFIGS,
    hidden=_q1_hidden,
    hints=[
        "Check yourself on a model: sum(p.numel() for p in GPT(config).parameters()) is the answer. "
        "List model.named_parameters() to see every part.",
        "A Linear layer from a to b has a * b weights plus b biases (when config.bias); a LayerNorm of width C "
        "has C weights plus C biases (when config.bias). The tied output layer adds nothing.",
        "With biases: V*C + T*C + L*(12*C*C + 13*C) + 2*C. Without: V*C + T*C + L*(12*C*C + 2*C) + C.",
    ],
    solution_code='''\
def count_params(config):
    V, T, L, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    b = 1 if config.bias else 0
    ln = C + b * C                                    # gamma (and beta)
    attn = (3 * C * C + b * 3 * C) + (C * C + b * C)  # c_attn (q, k, v) and c_proj
    mlp = (4 * C * C + b * 4 * C) + (4 * C * C + b * C)  # c_fc and c_proj
    return V * C + T * C + L * (2 * ln + attn + mlp) + ln   # + ln_f; lm_head is wte
''',
    explanation=(
        "Almost all parameters sit in the blocks' matrices: 4C^2 for attention (q, k, v and the output) and 8C^2 "
        "for the MLP, so N is about 12 L C^2 once C is large; that is the usual back-of-the-envelope size of a "
        "GPT. The embeddings add V C + T C, which dominates in tiny models like ours. Weight tying makes the "
        "output layer free: lm_head.weight and transformer.wte.weight are the same Parameter, which "
        "model.parameters() yields once (a state_dict lists it under both names)."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 dropout


def ref_dropout(x: torch.Tensor, p: float, u: torch.Tensor) -> torch.Tensor:
    """Reference for q2: inverted dropout with the given uniform numbers u; p = 1 gives zeros."""
    if p >= 1.0:
        return torch.zeros_like(x)
    return x * (u >= p) / (1.0 - p)  # keep where u >= p (probability 1 - p), scale the survivors


def dropout_case(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x standard normal and u uniform in [0, 1), both of `shape`, from `seed`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g), torch.rand(*shape, generator=g)


_Q2_CASES = [((4, 5), 0.2, 0), ((2, 3, 4), 0.5, 1), ((10,), 0.0, 2), ((6,), 0.9, 3), ((3, 3), 1.0, 4)]


def _q2_hidden(rng: random.Random) -> list[tuple[tuple[int, ...], float, int]]:
    return [((rng.randint(2, 6), rng.randint(2, 6)), rng.choice([0.1, 0.3, 0.6]), rng.randrange(2**31)),
            ((rng.randint(5, 20),), 1.0, rng.randrange(2**31))]


def _check_dropout(fn: Any, timeout: float, cases: list[tuple[tuple[int, ...], float, int]]) -> None:
    for shape, p, seed in cases:
        x, u = dropout_case(shape, seed)
        shown = f"x: random {shape}, p={p}, u: uniform random numbers of the same shape (seed {seed})"
        got = call_safely(fn, x.clone(), p, u.clone(), timeout=timeout, show_input=shown)
        expected = ref_dropout(x, p, u)
        if tensors_close(got, expected, rtol=RTOL, atol=ATOL):
            continue
        with diagnosing():
            _diagnose_dropout(x, p, u, got, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your result", show_input=shown)


def _diagnose_dropout(x: torch.Tensor, p: float, u: torch.Tensor, got: Any, fail: Any) -> None:
    if not isinstance(got, torch.Tensor) or got.shape != x.shape:
        return
    if p >= 1.0 and bool(torch.isnan(got).any()):
        raise fail("With p = 1 every entry is dropped, and 0 / (1 - p) is 0 / 0 = NaN. Treat p = 1 on its own: "
                   "return torch.zeros_like(x).")
    keep, drop = u >= p, u < p
    wrong = [(x * keep, "The survivors are not rescaled: divide them by 1 - p, so that the expected value of "
                        "every entry stays x (otherwise the next layer sees smaller inputs in training than at "
                        "evaluation, when dropout is off)."),
             (x * keep * (1 - p), "The survivors are multiplied by 1 - p; they must be DIVIDED by it, to make up "
                                  "for the dropped ones: E[output] = (1 - p) * x / (1 - p) = x."),
             (x * drop / max(1 - p, 1e-12), "You keep the entries with u < p, which happens with probability p: "
                                            "those are the ones to drop. Keep where u >= p.")]
    for w, message in wrong:
        if p < 1.0 and tensors_close(got, w, rtol=RTOL, atol=ATOL):
            raise fail(message)
    if 0.0 < p < 1.0 and not torch.equal(got == 0, drop):
        raise fail("The dropped entries are not those where u < p. Use the given numbers u (as a real dropout "
                   "layer would use torch.rand_like(x)), not new random numbers: the mask is u >= p.")


q2 = Exercise(
    name="q2",
    title="dropout(x, p, u)",
    points=2,
    prompt=(
        "Write inverted dropout by hand: `dropout(x, p, u)` gets a tensor x, the drop probability p and a tensor u "
        "of uniform random numbers in [0, 1) with x's shape (what torch.rand_like(x) would give). Drop (set to 0) "
        "the entries where u < p, and divide the others by 1 - p, so that every entry keeps its expected value. "
        "For p = 1 return zeros; for p = 0, x unchanged."
    ),
    checker=_check_dropout,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    forbidden=("torch.nn.functional.dropout", "torch.dropout"),
    hints=[
        "The mask of survivors is a boolean tensor: keep = u >= p. Each entry survives with probability 1 - p.",
        "x * keep zeroes the dropped entries. The survivors' expected share is 1 - p, so divide by 1 - p.",
        "if p >= 1: return torch.zeros_like(x)\nreturn x * (u >= p) / (1 - p)",
    ],
    solution_code="""\
import torch

def dropout(x, p, u):
    if p >= 1:                      # everything dropped (and 1 / (1 - p) would divide by zero)
        return torch.zeros_like(x)
    keep = u >= p                   # True with probability 1 - p
    return x * keep / (1 - p)       # survivors scaled up: E[output] = x
""",
    explanation=(
        "Each entry is kept with probability 1 - p and then worth x / (1 - p), so its expected value is "
        "(1 - p) * x / (1 - p) = x. This 'inverted' scaling at training time means evaluation needs nothing at "
        "all: model.eval() switches dropout off and the next layer sees inputs of the same size as in training. "
        "(The original paper scaled the weights by 1 - p at test time instead: the same expectation, more "
        "bookkeeping.) nn.Dropout does exactly this with u = torch.rand_like(x), a fresh mask at every call, so "
        "the network cannot count on any single unit being there."
    ),
)

EXERCISES = ExerciseSet("nb06", "06 · A transformer language model", [q1, q2])
progress = EXERCISES.progress
