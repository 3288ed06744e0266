"""Exercises for notebook 07, "Decoding": top-k from scratch, a min-p filter, a repetition penalty.

In the notebook::

    from lmlab.exercises import nb07 as ex

    def top_k_filter(logits, k): ...
    ex.q1.check(top_k_filter)   # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (checked on several inputs against references; V vocabulary size):

- q1 ``top_k_filter(logits (..., V), k) -> (..., V)``: the k largest logits of each row kept, the others
  set to -inf (as ``lmlab.generate.top_k_filter``; the inputs have no ties).
- q2 ``min_p_filter(logits (..., V), min_p) -> (..., V)``: the tokens whose probability is at least min_p
  times the row's largest kept, the others -inf (the inputs keep away from exact boundaries).
- q3 ``repetition_penalty(logits (V,), previous: list[int], penalty) -> (V,)``: the logit of every token in
  ``previous`` divided by the penalty when positive, multiplied when negative, once per token (CTRL).
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
)
from lmlab.generate import top_k_filter as _lmlab_top_k

__all__ = ["EXERCISES", "progress", "q1", "q2", "q3", "ref_top_k_filter", "ref_min_p_filter", "min_p_variant",
           "ref_repetition_penalty", "penalty_variant"]

# ----------------------------------------------------------------------------------------------------
# References


def ref_top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Reference for q1: ``lmlab.generate.top_k_filter``."""
    return _lmlab_top_k(logits, k)


def _same_kept(expected: torch.Tensor, got: Any) -> bool:
    """Same shape, -inf in the same places, and the kept logits unchanged."""
    if not (isinstance(got, torch.Tensor) and got.shape == expected.shape and got.is_floating_point()):
        return False
    g = got.detach().cpu()
    kept = torch.isfinite(expected)
    return bool(torch.equal(torch.isneginf(g), ~kept) and torch.allclose(g[kept], expected[kept], atol=1e-6))


def _kept_mask(got: torch.Tensor) -> torch.Tensor:
    return ~torch.isneginf(got.detach().cpu())


def _common_filter_failures(name: str, expected: torch.Tensor, got: Any, logits: torch.Tensor, shown: str) -> None:
    """Failures shared by both filters: not a tensor, wrong shape, 0 instead of -inf, probabilities returned."""
    fail = CheckFailed.at(input=shown, expected=expected, got=got)
    if got is None:
        raise CheckFailed(f"`{name}` returned None. Did you forget a `return` statement?", input=shown)
    if not isinstance(got, torch.Tensor):
        compare_tensors(expected, got, name="Your result", show_input=shown)
    if got.shape != expected.shape:
        raise fail(f"The result has shape {tuple(got.shape)}, but it should have the shape of the logits, "
                   f"{tuple(expected.shape)}: filter along the last dim (dim=-1) and keep every row.")
    g = got.detach().cpu()
    kept = torch.isfinite(expected)
    sums = g.sum(-1)
    if bool((g >= 0).all()) and torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise fail("The result is a probability distribution. The filter returns logits: leave the kept logits "
                   "unchanged and set the others to float('-inf'); generate applies the softmax afterwards.")
    if not torch.isneginf(g).any() and bool((g[~kept] == 0).all()) and (~kept).any():
        raise fail("The removed tokens are set to 0, but a logit of 0 still has probability e^0 / Z > 0. "
                   "Set them to float('-inf'), whose probability after the softmax is exactly 0.")
    if torch.equal(_kept_mask(g), kept) and not torch.allclose(g[kept], logits[kept], atol=1e-6):
        probs = torch.softmax(expected, dim=-1)
        if torch.allclose(g[kept], probs[kept], atol=1e-5) or torch.allclose(
                g[kept], torch.softmax(logits, -1)[kept], atol=1e-5):
            raise fail("The kept entries are probabilities. The filter returns logits: leave the kept logits "
                       "unchanged and set the others to -inf; generate applies the softmax afterwards.")
        raise fail("The right tokens are kept but their logits were changed; return the kept logits unchanged.")


# ----------------------------------------------------------------------------------------------------
# q1 top_k_filter


def _logits_case(shape: tuple[int, ...], seed: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


_Q1_CASES = [((7,), 3, 0), ((4, 10), 1, 1), ((3, 12), 5, 2), ((2, 3, 9), 4, 3), ((6,), 6, 4)]  # (shape, k, seed)


def _q1_hidden(rng: random.Random) -> list[tuple[tuple[int, ...], int, int]]:
    shapes = [(rng.randint(3, 20),), (rng.randint(1, 4), rng.randint(3, 20))]
    return [(shape, rng.randint(1, shape[-1]), rng.randrange(2**31)) for shape in shapes]


def _check_top_k(fn: Any, timeout: float, cases: list[tuple[tuple[int, ...], int, int]]) -> None:
    for shape, k, seed in cases:
        logits = _logits_case(shape, seed)
        shown = f"logits: random {shape} (seed {seed}), k={k}"
        got = call_safely(fn, logits.clone(), k, timeout=timeout, show_input=shown)
        expected = ref_top_k_filter(logits, k)
        if _same_kept(expected, got):
            continue
        with diagnosing():
            _common_filter_failures("top_k_filter", expected, got, logits, shown)
            _diagnose_top_k(got, expected, logits, k, CheckFailed.at(input=shown, expected=expected, got=got))
        compare_tensors(expected, got, name="Your result", show_input=shown)


def _diagnose_top_k(got: torch.Tensor, expected: torch.Tensor, logits: torch.Tensor, k: int, fail: Any) -> None:
    shape = tuple(logits.shape)
    n_kept = _kept_mask(got).sum(-1)
    V = shape[-1]
    if k < V and bool((n_kept == k + 1).all()):
        raise fail(f"Each row keeps {k + 1} tokens instead of k={k}: an off-by-one. The threshold is the k-th "
                   "largest logit, torch.topk(logits, k).values[..., -1:], and tokens below it are removed "
                   "(logits < kth), so exactly k remain.")
    if k > 1 and bool((n_kept == k - 1).all()):
        raise fail(f"Each row keeps {k - 1} tokens instead of k={k}: the k-th largest logit itself must be kept. "
                   "Remove only the logits strictly below it (logits < kth, not <=).")
    smallest = torch.topk(logits, k, dim=-1, largest=False).values[..., -1:]
    if torch.equal(_kept_mask(got), logits <= smallest):
        raise fail("The k SMALLEST logits are kept. torch.topk returns the largest by default; keep the tokens "
                   "whose logit is >= the k-th largest.")
    if len(shape) > 1:
        flat_kth = torch.topk(logits.reshape(-1), k).values[-1]
        if torch.equal(_kept_mask(got), logits >= flat_kth):
            raise fail("The k largest logits of the WHOLE tensor are kept, not of each row. Work along the "
                       "last dim: torch.topk(logits, k, dim=-1).values[..., -1:] (keep the last dim for "
                       "broadcasting).")


q1 = Exercise(
    name="q1",
    title="top_k_filter(logits, k)",
    points=1,
    prompt=(
        "Write `top_k_filter(logits, k)` that keeps the k largest logits along the last dim (each row of a "
        "batch separately) and sets all the others to float('-inf'). The kept logits stay unchanged; the "
        "result has the shape of `logits`."
    ),
    checker=_check_top_k,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    forbidden=("lmlab.generate.top_k_filter",),
    hints=[
        "Find the k-th largest logit of each row; everything strictly below it goes.",
        "torch.topk(logits, k, dim=-1).values is sorted from the largest; its last column [..., -1:] is the k-th "
        "largest, with the last dim kept so it broadcasts against logits.",
        "kth = torch.topk(logits, k, dim=-1).values[..., -1:]; "
        "return logits.masked_fill(logits < kth, float('-inf'))",
    ],
    solution_code='''\
import torch

def top_k_filter(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]       # (..., 1) the k-th largest logit
    return logits.masked_fill(logits < kth, float("-inf"))     # (..., V) the rest can never be sampled
''',
    explanation=(
        "A logit of -inf has probability exp(-inf) / Z = 0 after the softmax, so only the k kept tokens can be "
        "sampled, and their probabilities are renormalised automatically. Comparing with the k-th largest value "
        "(strictly less is removed) keeps exactly k tokens when there are no ties; with ties at the boundary "
        "lmlab and transformers keep all the tied tokens. top-k ignores how sure the model is: k = 10 keeps 10 "
        "tokens whether the model is certain of one or hesitates between 40."
    ),
)

def _hand_case(probs: list[float]) -> torch.Tensor:
    return torch.log(torch.tensor(probs))


# ----------------------------------------------------------------------------------------------------
# q2 min_p_filter


def ref_min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Reference for q2: keep the tokens whose probability is at least min_p times the row's largest."""
    probs = torch.softmax(logits, dim=-1)  # (..., V)
    keep = probs >= min_p * probs.max(dim=-1, keepdim=True).values  # (..., V)
    return logits.masked_fill(~keep, float("-inf"))


def min_p_variant(logits: torch.Tensor, min_p: float, mistake: str) -> torch.Tensor:
    """The typical wrong min-p filters, for diagnosis."""
    probs = torch.softmax(logits, dim=-1)
    if mistake == "absolute":  # threshold not scaled by the largest probability
        keep = probs >= min_p
    elif mistake == "global max":  # the largest probability of the whole tensor, not of each row
        keep = probs >= min_p * probs.max()
    else:  # "logits": the threshold applied to logits
        keep = logits >= min_p * logits.max(dim=-1, keepdim=True).values
    return logits.masked_fill(~keep, float("-inf"))


def _q2_case(shape: tuple[int, ...], seed: int, min_p: float, scale: float = 2.0) -> tuple[torch.Tensor, float, str]:
    """Random logits away from the boundary: no probability within 1e-3 (relative) of min_p * max."""
    while True:
        logits = _logits_case(shape, seed, scale)
        probs = torch.softmax(logits.double(), dim=-1)
        ratio = probs / probs.max(dim=-1, keepdim=True).values
        if bool(((ratio - min_p).abs() > 1e-3).all()):
            return logits, min_p, f"logits: random {shape} (seed {seed}) times {scale:g}, min_p={min_p}"
        seed += 1


_Q2_CASES = [
    (_hand_case([0.5, 0.3, 0.15, 0.05]), 0.2, "probabilities [0.5, 0.3, 0.15, 0.05], min_p=0.2"),
    (_hand_case([0.9, 0.06, 0.04]), 0.05, "probabilities [0.9, 0.06, 0.04], min_p=0.05"),
    _q2_case((4, 20), 5, 0.1),
    _q2_case((3, 30), 6, 0.3, 1.0),
    _q2_case((2, 3, 15), 7, 0.05),
    _q2_case((3, 12), 8, 0.1, 60.0),  # exp() would overflow without a softmax
]


def _q2_hidden(rng: random.Random) -> list[tuple[torch.Tensor, float, str]]:
    return [_q2_case((rng.randint(1, 4), rng.randint(4, 30)), rng.randrange(2**31), rng.choice([0.05, 0.1, 0.3]),
                     rng.choice([1.0, 2.0, 4.0])) for _ in range(3)]


def _check_min_p(fn: Any, timeout: float, cases: list[tuple[torch.Tensor, float, str]]) -> None:
    for logits, min_p, shown in cases:
        got = call_safely(fn, logits.clone(), min_p, timeout=timeout, show_input=shown)
        expected = ref_min_p_filter(logits, min_p)
        if _same_kept(expected, got):
            continue
        with diagnosing():
            _common_filter_failures("min_p_filter", expected, got, logits, shown)
            kept = _kept_mask(got)
            fail = CheckFailed.at(input=shown, expected=expected, got=got)
            messages = {
                "absolute": "Your threshold is min_p itself. Min-p scales it by the most likely token's probability: "
                            "keep token i when p_i >= min_p * max_j p_j, so the cut moves with the model's confidence.",
                "global max": "The largest probability is taken over the whole tensor; take it per row: "
                              "probs.max(dim=-1, keepdim=True).values.",
                "logits": "The threshold is applied to the logits. Compare probabilities, p_i >= min_p * p_max "
                          "(softmax first); on logits that is logit_i >= max_logit + log(min_p), not a product.",
            }
            for mistake, message in messages.items():
                if torch.equal(kept, torch.isfinite(min_p_variant(logits, min_p, mistake))):
                    raise fail(message)
        compare_tensors(expected, got, name="Your result", show_input=shown)


q2 = Exercise(
    name="q2",
    title="min_p_filter(logits, min_p)",
    points=2,
    prompt=(
        "Min-p sampling (Nguyen et al., 2024) cuts the tail relative to the model's confidence: along the last "
        "dim, keep token i when its probability is at least min_p times the probability of the most likely "
        "token, p_i >= min_p * max_j p_j, and set the other logits to float('-inf'). Write "
        "`min_p_filter(logits, min_p)`; kept logits stay unchanged."
    ),
    checker=_check_min_p,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "Probabilities first: probs = torch.softmax(logits, dim=-1). The threshold of each row is "
        "min_p * (the row's largest probability).",
        "probs.max(dim=-1, keepdim=True).values has shape (..., 1), so it broadcasts against probs (..., V).",
        "keep = probs >= min_p * probs.max(dim=-1, keepdim=True).values; "
        "return logits.masked_fill(~keep, float('-inf'))",
    ],
    solution_code="""\
import torch

def min_p_filter(logits, min_p):
    probs = torch.softmax(logits, dim=-1)                          # (..., V)
    p_max = probs.max(dim=-1, keepdim=True).values                 # (..., 1): each row's most likely token
    return logits.masked_fill(probs < min_p * p_max, float("-inf"))
""",
    explanation=(
        "When the model is sure (p_max = 0.9) the threshold min_p * 0.9 is high and few tokens survive; when it "
        "hesitates (p_max = 0.1) the threshold drops and many do. Like top-p the number kept adapts, but the rule "
        "needs no sort and no cumulative sum, and it reads as 'no token less than min_p times as likely as the "
        "best'. Since p_i / p_max = exp(z_i - z_max), the same filter on logits is z_i >= z_max + log(min_p): "
        "the softmax's normaliser cancels."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 repetition_penalty


def ref_repetition_penalty(logits: torch.Tensor, previous: list[int], penalty: float) -> torch.Tensor:
    """Reference for q3 (CTRL; Hugging Face's RepetitionPenaltyLogitsProcessor): logits (V,) of a new tensor."""
    out = logits.clone()
    seen = torch.tensor(sorted(set(previous)), dtype=torch.long)
    if len(seen):
        z = out[seen]
        out[seen] = torch.where(z > 0, z / penalty, z * penalty)  # less likely either way
    return out


def penalty_variant(logits: torch.Tensor, previous: list[int], penalty: float, mistake: str) -> torch.Tensor:
    """The typical wrong penalties, for diagnosis."""
    out = logits.clone()
    for t in (previous if mistake == "per occurrence" else sorted(set(previous))):
        out[t] = out[t] / penalty if (mistake == "divide all" or out[t] > 0) else out[t] * penalty
    return out


_Q3_CASES = [(8, [1, 2, 2, 5], 1.5, 0), (6, [], 2.0, 1), (10, [0, 9, 3, 3, 3], 1.2, 2), (5, [4, 4], 1.0, 3),
             (12, [2, 7, 11, 7], 3.0, 4)]


def _q3_hidden(rng: random.Random) -> list[tuple[int, list[int], float, int]]:
    V = rng.randint(5, 20)
    return [(V, [rng.randrange(V) for _ in range(rng.randint(2, 10))], rng.choice([1.3, 2.0]), rng.randrange(2**31))]


def _check_penalty(fn: Any, timeout: float, cases: list[tuple[int, list[int], float, int]]) -> None:
    for V, previous, penalty, seed in cases:
        logits = _logits_case((V,), seed)
        shown = f"logits: random ({V},) (seed {seed}), previous={previous}, penalty={penalty}"
        got = call_safely(fn, logits.clone(), list(previous), penalty, timeout=timeout, show_input=shown)
        expected = ref_repetition_penalty(logits, previous, penalty)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(got, expected, atol=1e-6):
            continue
        with diagnosing():
            fail = CheckFailed.at(input=shown, expected=expected, got=got)
            if got is None:
                raise CheckFailed("`repetition_penalty` returned None. Did you forget a `return` statement?",
                                  input=shown)
            messages = {
                "divide all": "Every seen logit is divided by the penalty. A negative logit divided by 1.5 moves "
                              "toward 0, so the token becomes MORE likely. Multiply negative logits by the "
                              "penalty and divide positive ones.",
                "per occurrence": "A token that occurs several times is penalised once per occurrence. The penalty "
                                  "applies once to each token that occurred, however often (use set(previous)).",
            }
            for mistake, message in messages.items():
                w = penalty_variant(logits, previous, penalty, mistake)
                if isinstance(got, torch.Tensor) and got.shape == w.shape and torch.allclose(got, w, atol=1e-6):
                    raise fail(message)
        compare_tensors(expected, got, name="Your result", show_input=shown)


q3 = Exercise(
    name="q3",
    title="repetition_penalty(logits, previous, penalty)",
    points=2,
    prompt=(
        "A repetition penalty (Keskar et al., 2019, the CTRL model; `repetition_penalty` in Hugging Face) makes "
        "tokens that already occurred less likely. Write `repetition_penalty(logits, previous, penalty)` for "
        "logits of shape (V,), a list `previous` of token ids generated so far and a penalty >= 1: return new "
        "logits in which every token that occurs in `previous` has its logit divided by the penalty if it is "
        "positive and multiplied by the penalty if it is negative (once per token, however often it occurred). "
        "The other logits are unchanged."
    ),
    checker=_check_penalty,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    hints=[
        "Work on a copy (logits.clone()) and visit each distinct token of previous once: set(previous).",
        "Why two rules? Dividing a negative logit by 1.5 brings it closer to 0, which RAISES its probability. "
        "For z < 0 multiply instead: both ways the logit moves down.",
        "out = logits.clone(); for t in set(previous): out[t] = out[t] / penalty if out[t] > 0 else out[t] * penalty",
    ],
    solution_code="""\
import torch

def repetition_penalty(logits, previous, penalty):
    out = logits.clone()                      # leave the caller's logits alone
    for t in set(previous):                   # each seen token once
        z = out[t]
        out[t] = z / penalty if z > 0 else z * penalty   # lower the logit, whatever its sign
    return out
""",
    explanation=(
        "Both branches lower the logit: a positive one shrinks toward 0, a negative one moves further below 0. "
        "The penalty acts on logits, so it changes the next-token probabilities multiplicatively in an "
        "unusual way: a token with a large positive logit loses much, one near 0 hardly anything. It breaks the "
        "loops of greedy decoding, but it also punishes tokens that should repeat (spaces, 'the', a name), "
        "which is why penalties close to 1 (1.1 to 1.3) are used; notebook 07's greedy loop of 'the the' is the "
        "case it was made for."
    ),
)

EXERCISES = ExerciseSet("nb07", "07 · Decoding", [q1, q2, q3])
progress = EXERCISES.progress
