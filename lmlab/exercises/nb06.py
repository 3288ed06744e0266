"""Exercises for notebook 06, "A transformer language model": a GPT's parameter count, and a pre-LN block.

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
- q2 ``block_forward(x (B, T, C), ln_1, attn, ln_2, mlp) -> (B, T, C)``: one pre-LayerNorm transformer
  block, ``x + attn(ln_1(x))`` then ``+ mlp(ln_2(.))``, given its parts as functions (B, T, C) -> (B, T, C).

Tolerances (q2): rtol 1e-4, atol 1e-5 (float32).
"""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn as nn

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
from lmlab.exercises.fixtures import FirstOutput
from lmlab.models.gpt import GPTConfig

__all__ = ["q1", "q2", "EXERCISES", "progress", "ref_count_params", "ref_block_forward", "count_variant", "block_parts",
           "wrong_blocks"]

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


def ref_block_forward(x, ln_1, attn, ln_2, mlp):
    """Reference for q2: a pre-LayerNorm block (GPT-2)."""
    x = x + attn(ln_1(x))  # (B, T, C)
    return x + mlp(ln_2(x))  # (B, T, C)


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
# q2 block_forward


def block_parts(C: int, n_head: int, seed: int) -> tuple[nn.Module, ...]:
    """Real parts of a GPT block with random weights, each a module (B, T, C) -> (B, T, C)."""
    from lmlab.models.gpt import MLP, CausalSelfAttention

    with torch.random.fork_rng():  # the parts' init, without touching the caller's random state
        torch.manual_seed(seed)
        cfg = GPTConfig(vocab_size=2, block_size=16, n_layer=1, n_head=n_head, n_embd=C)
        ln_1, ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        attn, mlp = CausalSelfAttention(cfg), MLP(cfg)
        with torch.no_grad():
            for p in (*ln_1.parameters(), *ln_2.parameters(), *attn.parameters(), *mlp.parameters()):
                p.add_(0.3 * torch.randn_like(p))  # no part is close to the identity or to zero
    parts = (ln_1, FirstOutput(attn), ln_2, mlp)  # lmlab's attention returns (y, kv cache, weights): keep y
    for m in parts:
        m.eval()
    return parts


_Q2_CASES = [(2, 5, 16, 2, 0), (1, 7, 8, 1, 1), (3, 4, 12, 3, 2)]


def wrong_blocks() -> list[tuple[Any, str]]:
    """Typical wrong blocks, each (function of x, ln_1, attn, ln_2, mlp; what is wrong)."""
    return [
        (lambda x, l1, a, l2, m: l2((y := l1(x + a(x))) + m(y)),
         "This is the post-LayerNorm block of the original transformer (LN after adding the branch). GPT-2 and "
         "lmlab use pre-LN: normalize the branch's INPUT and add the branch's output to the un-normalized "
         "stream: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))."),
        (lambda x, l1, a, l2, m: m(l2(a(l1(x)))),
         "The residual connections are missing: each sub-layer ADDS to the stream, x = x + attn(ln_1(x)), so "
         "the input can flow through unchanged."),
        (lambda x, l1, a, l2, m: (y := a(l1(x))) + m(l2(y)),
         "The first residual connection is missing: after attention the stream is x + attn(ln_1(x)), not "
         "attn(ln_1(x)) alone."),
        (lambda x, l1, a, l2, m: m(l2(x + a(l1(x)))),
         "The second residual connection is missing: the block returns y + mlp(ln_2(y)), with y the stream "
         "after attention."),
        (lambda x, l1, a, l2, m: (y := l1(x) + a(l1(x))) + m(l2(y)),
         "The normalized input was added back to the stream (ln_1(x) + attn(ln_1(x))). The LayerNorm belongs "
         "inside the branch only: x + attn(ln_1(x))."),
        (lambda x, l1, a, l2, m: x + a(l1(x)) + m(l2(x)),
         "Attention and MLP both read the block's input x (a 'parallel' block). In GPT-2 they are sequential: "
         "the MLP reads the stream after attention was added, y = x + attn(ln_1(x)); return y + mlp(ln_2(y))."),
        (lambda x, l1, a, l2, m: (y := x + m(l1(x))) + a(l2(y)),
         "The sub-layers are in the wrong order: attention first (with ln_1), then the MLP (with ln_2)."),
        (lambda x, l1, a, l2, m: (y := x + a(l2(x))) + m(l1(y)),
         "ln_1 and ln_2 are swapped: ln_1 normalizes attention's input, ln_2 the MLP's."),
    ]


def _q2_hidden(rng: random.Random) -> list[tuple[int, int, int, int, int]]:
    nh = rng.randint(1, 4)
    return [(rng.randint(1, 3), rng.randint(2, 8), nh * rng.randint(2, 6), nh, rng.randrange(2**31))]


def _check_block_forward(fn: Any, timeout: float, cases: list[tuple[int, int, int, int, int]]) -> None:
    for B, T, C, nh, seed in cases:
        parts = block_parts(C, nh, seed)
        x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(seed))
        shown = f"x: random ({B}, {T}, {C}); ln_1, attn ({nh} heads), ln_2, mlp: a GPT block's parts, random weights"
        with torch.no_grad():
            got = call_safely(fn, x.clone(), *parts, timeout=timeout, show_input=shown)
            expected = ref_block_forward(x, *parts)
            if tensors_close(got, expected, rtol=RTOL, atol=ATOL):
                continue
            with diagnosing():
                for wrong, message in wrong_blocks():
                    if tensors_close(got, wrong(x, *parts), rtol=RTOL, atol=ATOL):
                        raise CheckFailed(message, input=shown, expected=expected, got=got)
        compare_tensors(expected, got, rtol=RTOL, atol=ATOL, name="Your block's output", show_input=shown)


q2 = Exercise(
    name="q2",
    title="block_forward(x, ln_1, attn, ln_2, mlp)",
    points=1,
    prompt=(
        "Write `block_forward(x, ln_1, attn, ln_2, mlp)` that returns the output of one pre-LayerNorm transformer "
        "block (as GPT-2) for the residual stream x of shape (B, T, C). The four parts are functions from "
        "(B, T, C) to (B, T, C): two LayerNorms, causal self-attention and the MLP."
    ),
    checker=_check_block_forward,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "Each sub-layer reads a normalized copy of the stream and adds its output back to the stream.",
        "Two steps, attention first: x = x + attn(ln_1(x)), then the MLP the same way with ln_2.",
        "x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)); return x",
    ],
    solution_code='''\
def block_forward(x, ln_1, attn, ln_2, mlp):
    x = x + attn(ln_1(x))    # attention reads a normalized copy; its output is added to the stream
    x = x + mlp(ln_2(x))     # the MLP reads the stream after attention, the same way
    return x
''',
    explanation=(
        "The residual stream x is never normalized in place: each branch sees LN(x) and writes x + branch, so "
        "the block's output is its input plus two corrections, and the whole network is a sum of such "
        "corrections on top of the embeddings. That keeps gradients flowing to early layers without a long "
        "learning-rate warmup, which post-LN (LN(x + branch(x)), the 2017 transformer) needs in deep stacks."
    ),
)

EXERCISES = ExerciseSet("nb06", "06 · A transformer language model", [q1, q2])
progress = EXERCISES.progress
