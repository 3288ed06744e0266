"""Exercises for notebook 09, "Pretraining objectives": BERT's masking recipe and the masked-LM loss.

In the notebook::

    from lmlab.exercises import nb09 as ex

    def mask_tokens(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None): ...
    ex.q1.check(mask_tokens)    # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()            # a worked solution with an explanation
    ex.progress()               # which exercises passed so far

The functions the learner writes (B batch, T time, V vocabulary size):

- q1 ``mask_tokens(idx (B, T), mask_token_id, vocab_size, mask_prob=0.15, generator=None)
  -> (inputs (B, T), targets (B, T))``: BERT's recipe. The result is random, so it is checked
  statistically on 200,000 positions: every observed proportion must be within five standard errors of
  its expected value, and the deterministic parts (unselected positions unchanged, targets equal to the
  original ids or -100) must hold exactly.
- q2 ``mlm_loss(logits (B, T, V), labels (B, T)) -> scalar tensor``: the mean cross-entropy over the
  positions whose label is not -100.
- q3 ``whole_word_mask(idx (T,), word_ids (T,), chosen, mask_token_id) -> (inputs (T,), targets (T,))``:
  whole-word masking (a variant of q1 for subword tokenizers): every token of each chosen word becomes
  [MASK]; the targets hold the original ids there and -100 elsewhere. Deterministic, checked exactly.

Tolerances: rtol 1e-4, atol 1e-5 (float32) for q2.
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
    as_number,
    call_safely,
    number_near,
)

__all__ = ["q1", "q2", "q3", "EXERCISES", "progress", "ref_mask_tokens", "ref_mlm_loss", "ref_loss_by_treatment",
           "ref_whole_word_mask", "word_mask_variant"]

RTOL, ATOL = 1e-4, 1e-5
IGNORE = -100

# ----------------------------------------------------------------------------------------------------
# References


def ref_mask_tokens(idx: torch.Tensor, mask_token_id: int, vocab_size: int, mask_prob: float = 0.15,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference for q1: select with `mask_prob`; of the selected 80% [MASK], 10% random id, 10% unchanged."""
    selected = torch.rand(idx.shape, generator=generator) < mask_prob  # (B, T)
    u = torch.rand(idx.shape, generator=generator)  # (B, T) which treatment
    random_ids = torch.randint(0, vocab_size, idx.shape, generator=generator)  # (B, T)
    inputs = torch.where(selected & (u < 0.8), mask_token_id, idx)
    inputs = torch.where(selected & (u >= 0.8) & (u < 0.9), random_ids, inputs)
    targets = torch.where(selected, idx, IGNORE)
    return inputs, targets


def ref_mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference for q2: mean cross-entropy over the positions with a label (not -100)."""
    V = logits.size(-1)
    return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=IGNORE)


# ----------------------------------------------------------------------------------------------------
# q1 mask_tokens

# ("stats", rows, T, vocab_size, mask_prob, seed): ids drawn from [0, vocab_size - 1), the last id is [MASK];
# ("generator", seed_a, seed_b): the same seed twice gives the same result, two seeds two results.
_Q1_CASES = [("stats", 400, 500, 30, 0.15, 0), ("stats", 400, 500, 12, 0.3, 1), ("generator", 5, 6)]


def _q1_hidden(rng: random.Random) -> list[tuple[Any, ...]]:
    return [("stats", 400, 500, rng.randint(8, 40), rng.choice([0.1, 0.15, 0.25]), rng.randrange(2**31)),
            ("generator", rng.randrange(2**31), rng.randrange(2**31))]


def _q1_input(rows: int, T: int, V: int, seed: int) -> torch.Tensor:
    return torch.randint(0, V - 1, (rows, T), generator=torch.Generator().manual_seed(1000 + seed % 2**31))


def _within(observed: float, p: float, n: int, k: float = 5.0) -> bool:
    return n > 0 and abs(observed - p) <= k * math.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-12


def _check_mask_tokens(fn: Any, timeout: float, cases: list[tuple[Any, ...]]) -> None:
    for kind, *params in cases:
        if kind == "generator":
            _check_generator_use(fn, timeout, *params)
        else:
            _check_masking(fn, timeout, *params)


def _masked(fn: Any, timeout: float, idx: torch.Tensor, V: int, p: float, seed: int, shown: str) -> tuple[Any, Any]:
    """Call the learner's mask_tokens with a generator seeded `seed`; a kind CheckFailed unless two tensors come back."""
    got = call_safely(fn, idx.clone(), V - 1, V, p, torch.Generator().manual_seed(seed), timeout=timeout,
                      show_input=shown)
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
        extra = " Did you forget a `return` statement?" if got is None else ""
        raise CheckFailed(f"`mask_tokens` should return a tuple (inputs, targets) of two tensors of shape "
                          f"{tuple(idx.shape)}.{extra}", input=shown, got=got)
    inputs, targets = got
    for name, t in (("inputs", inputs), ("targets", targets)):
        if tuple(t.shape) != tuple(idx.shape) or t.is_floating_point():
            raise CheckFailed(f"`{name}` should be an integer tensor of shape {tuple(idx.shape)} like idx.",
                              input=shown, got=t)
    return inputs, targets


def _check_masking(fn: Any, timeout: float, rows: int, T: int, V: int, p: float, seed: int) -> None:
    idx = _q1_input(rows, T, V, seed)
    shown = (f"idx: random ids of shape ({rows}, {T}) in [0, {V - 1}), mask_token_id={V - 1}, "
             f"vocab_size={V}, mask_prob={p}, generator seeded with {seed}")
    inputs, targets = _masked(fn, timeout, idx, V, p, seed, shown)
    mask_id = V - 1
    sel = targets != IGNORE
    n_sel = int(sel.sum())
    if n_sel == idx.numel() or (n_sel > 0 and not (targets == IGNORE).any()):
        raise CheckFailed("Every position has a label. Only the selected positions are predicted: set the "
                          "targets to -100 at the unselected positions (F.cross_entropy ignores -100), "
                          "e.g. targets = torch.where(selected, idx, -100).", input=shown)
    if n_sel == 0:
        raise CheckFailed("No position has a label (targets are all -100): the targets must hold the original "
                          "ids at the selected positions.", input=shown)
    if not torch.equal(targets[sel], idx[sel]):
        if bool((targets[sel] == inputs[sel]).all()):
            raise CheckFailed("The targets hold the corrupted inputs. They must hold the ORIGINAL ids (what the "
                              "model should recover) at the selected positions.", input=shown)
        raise CheckFailed("At the selected positions (targets != -100) the targets must equal the original ids.",
                          input=shown)
    if not torch.equal(inputs[~sel], idx[~sel]):
        raise CheckFailed("Some positions that were not selected (targets == -100) were changed in the inputs. "
                          "Only selected positions are corrupted; the rest of the input stays as it was.",
                          input=shown)
    frac_sel = n_sel / idx.numel()
    if not _within(frac_sel, p, idx.numel()):
        hint = (" It looks like mask_prob is ignored (0.15 hard-coded?)." if abs(frac_sel - 0.15) < 0.01 else "")
        raise CheckFailed(f"{frac_sel:.3f} of the positions were selected; each position should be selected with "
                          f"probability mask_prob = {p}.{hint}", input=shown)
    masked = int((inputs[sel] == mask_id).sum()) / n_sel
    same = int((inputs[sel] == idx[sel]).sum()) / n_sel
    other = 1.0 - masked - same
    exp_mask, exp_same = 0.8 + 0.1 / V, 0.1 + 0.1 / V
    exp_other = 0.1 * (1 - 2 / V)
    if masked > 0.99:
        raise CheckFailed("Every selected position became [MASK]. BERT's recipe replaces only 80% of them by "
                          "[MASK], 10% by a random token and leaves 10% unchanged, so that the model also "
                          "learns about tokens it can see.", input=shown)
    if inputs.min() < 0 or inputs.max() >= V:
        raise CheckFailed(f"Some inputs are outside [0, vocab_size={V}): draw the random tokens with "
                          "torch.randint(0, vocab_size, ...).", input=shown)
    if not (_within(masked, exp_mask, n_sel) and _within(same, exp_same, n_sel)
            and _within(other, exp_other, n_sel)):
        raise CheckFailed(
            f"Among the selected positions, {masked:.3f} became [MASK], {same:.3f} kept their token and "
            f"{other:.3f} got another token; expected about {exp_mask:.3f}, {exp_same:.3f} and {exp_other:.3f} "
            "(80/10/10, where a random token can by chance be [MASK] or the original). Decide each selected "
            "position's treatment with ONE uniform draw u: u < 0.8 -> [MASK], 0.8 <= u < 0.9 -> random, "
            "else unchanged. Two independent draws (0.8, then 0.1 of the rest) give the wrong proportions.",
            input=shown)


def _check_generator_use(fn: Any, timeout: float, seed_a: int, seed_b: int) -> None:
    idx = _q1_input(50, 40, 20, seed_a)
    shown = (f"idx: random ids of shape (50, 40), vocab_size=20, mask_prob=0.15, generators seeded with {seed_a} "
             f"and {seed_b}")
    with torch.random.fork_rng():  # the learner's global random state is left as it was
        torch.manual_seed(1 + seed_a % 1000)  # two different states of the global generator
        a = _masked(fn, timeout, idx, 20, 0.15, seed_a, shown)
        torch.manual_seed(1001 + seed_a % 1000)
        again = _masked(fn, timeout, idx, 20, 0.15, seed_a, shown)
        other = _masked(fn, timeout, idx, 20, 0.15, seed_b, shown)
    if not (torch.equal(a[0], again[0]) and torch.equal(a[1], again[1])):
        raise CheckFailed("Two calls with generators seeded the same way gave different results. Pass "
                          "generator=generator to every random draw (torch.rand, torch.randint) so that a "
                          "seeded generator reproduces the masking.", input=shown)
    if torch.equal(a[0], other[0]) and torch.equal(a[1], other[1]):
        raise CheckFailed(f"Generators seeded with {seed_a} and {seed_b} gave exactly the same masking: the result "
                          f"does not come from `generator`. Do not reseed (torch.manual_seed) inside the function; "
                          f"pass generator=generator to every random draw.", input=shown)


q1 = Exercise(
    name="q1",
    title="mask_tokens(idx, mask_token_id, vocab_size, mask_prob, generator)",
    points=2,
    prompt=(
        "Write `mask_tokens(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None)` that returns "
        "(inputs, targets) for masked-language-model training. Select each position of idx (B, T) independently "
        "with probability mask_prob. Of the selected positions, 80% become mask_token_id, 10% a random id drawn "
        "uniformly from [0, vocab_size), 10% keep their token. targets holds the original id at selected positions "
        "and -100 elsewhere. Pass `generator` to every random draw."
    ),
    checker=_check_mask_tokens,
    cases=_Q1_CASES,
    hidden=_q1_hidden,
    forbidden=("lmlab.models.masked.mask_tokens",),
    hints=[
        "Draw a (B, T) tensor of uniforms with torch.rand(idx.shape, generator=generator); selected = u1 < mask_prob.",
        "A second uniform u2 decides the treatment of each position: u2 < 0.8 -> [MASK]; 0.8 <= u2 < 0.9 -> random; "
        "the rest unchanged. Combine each condition with `selected`.",
        "inputs = torch.where(selected & (u2 < 0.8), mask_token_id, idx); then the random ones with "
        "torch.randint(0, vocab_size, idx.shape, generator=generator); targets = torch.where(selected, idx, -100)",
    ],
    solution_code='''\
def mask_tokens(idx, mask_token_id, vocab_size, mask_prob=0.15, generator=None):
    selected = torch.rand(idx.shape, generator=generator) < mask_prob      # (B, T)
    u = torch.rand(idx.shape, generator=generator)                         # one draw picks the treatment
    random_ids = torch.randint(0, vocab_size, idx.shape, generator=generator)
    inputs = torch.where(selected & (u < 0.8), mask_token_id, idx)         # 80%: [MASK]
    inputs = torch.where(selected & (u >= 0.8) & (u < 0.9), random_ids, inputs)  # 10%: random
    targets = torch.where(selected, idx, -100)                             # 10% unchanged; -100 = no label
    return inputs, targets
''',
    explanation=(
        "Only the selected 15% of positions are predicted, so only they get a label; -100 is the ignore_index of "
        "F.cross_entropy. If every selected token became [MASK], the model would learn that a visible token is "
        "always correct and would need no good representation for it, and [MASK] never appears in real text "
        "later. Random replacements force it to doubt every token; unchanged ones tie the prediction to the "
        "visible token. One uniform draw per position makes the three cases exclusive with probabilities "
        "0.8, 0.1 and 0.1."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 loss_by_treatment (a variant: the notebook shows the masked-LM loss over all selected positions)

KINDS = ("[MASK]", "random", "unchanged")


def _q2_case(B: int, T: int, V: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """logits (B, T, V), inputs and targets (B, T) of the 80/10/10 recipe, the mask id V - 1; every kind occurs."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V - 1, (B, T), generator=g)
    kind = torch.randint(0, 4, (B, T), generator=g)  # 0 [MASK], 1 random, 2 unchanged, 3 not selected
    kind.view(-1)[:3] = torch.tensor([0, 1, 2])
    other = (ids + torch.randint(1, V - 1, (B, T), generator=g)) % (V - 1)  # a random id that differs
    inputs = torch.where(kind == 0, V - 1, torch.where(kind == 1, other, ids))
    targets = torch.where(kind == 3, IGNORE, ids)
    return torch.randn(B, T, V, generator=g) * 2, inputs, targets, V - 1


_Q2_CASES = [(2, 6, 7, 0), (3, 8, 11, 1), (4, 5, 5, 2)]


def _q2_hidden(rng: random.Random) -> list[tuple[int, int, int, int]]:
    return [(rng.randint(1, 4), rng.randint(3, 9), rng.randint(4, 12), rng.randrange(2**31)) for _ in range(2)]


def ref_loss_by_treatment(logits: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                          mask_token_id: int) -> tuple[float, float, float]:
    """Reference for q2: mean cross-entropy over the selected positions shown as [MASK], as another (random) id,
    and unchanged."""
    losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="none")  # (B*T,)
    selected = targets.flatten() != IGNORE
    shown_mask, unchanged = inputs.flatten() == mask_token_id, inputs.flatten() == targets.flatten()
    kinds = (shown_mask, ~shown_mask & ~unchanged, unchanged)
    return tuple(float(losses[selected & k].mean()) for k in kinds)


def _check_by_treatment(fn: Any, timeout: float, cases: list[tuple[int, int, int, int]]) -> None:
    for B, T, V, seed in cases:
        logits, inputs, targets, mask_id = _q2_case(B, T, V, seed)
        shown = (f"logits: random ({B}, {T}, {V}), inputs={inputs.tolist()}, targets={targets.tolist()}, "
                 f"mask_token_id={mask_id}")
        raw = call_safely(fn, logits.clone(), inputs.clone(), targets.clone(), mask_id, timeout=timeout,
                          show_input=shown)
        if not (isinstance(raw, (tuple, list)) and len(raw) == 3):
            raise CheckFailed("Return three numbers: the mean loss at the [MASK] positions, at the random ones and at "
                              "the unchanged ones, in that order.", input=shown, got=repr(raw)[:200])
        got = [as_number(r, f"the {k} loss", show_input=shown) for r, k in zip(raw, KINDS)]
        expected = ref_loss_by_treatment(logits, inputs, targets, mask_id)
        if all(math.isclose(g, e, rel_tol=RTOL, abs_tol=ATOL) for g, e in zip(got, expected)):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=tuple(got))
        near = [number_near(g, rtol=RTOL, atol=ATOL) for g in got]
        overall = float(ref_mlm_loss(logits, targets))
        if all(n(overall) for n in near):
            raise fail("All three are the mean over every selected position. Split the selected positions by what "
                       "the model saw there: inputs == mask_token_id, inputs == targets (unchanged), or neither.")
        if sorted(got) == sorted(expected):
            raise fail("The right three numbers in the wrong order: return ([MASK], random, unchanged).")
        if near[1](expected[2]) and near[2](expected[1]):
            raise fail("Random and unchanged are swapped: a position is unchanged when inputs == targets.")
        raise fail("At least one loss differs: average the cross-entropy of the selected positions (targets != -100) "
                   "of each kind separately.")


q2 = Exercise(
    name="q2",
    title="loss_by_treatment(logits, inputs, targets, mask_token_id)",
    points=2,
    prompt=(
        "The 80/10/10 recipe shows a selected position to the model in one of three ways. Write "
        "`loss_by_treatment(logits, inputs, targets, mask_token_id)` that returns three numbers: the mean "
        "cross-entropy of the (B, T, V) logits over the selected positions (targets != -100) whose input is "
        "`mask_token_id`, over those whose input is another id than the target (a random replacement), and over "
        "those whose input equals the target (unchanged)."
    ),
    checker=_check_by_treatment,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "Three boolean (B, T) masks: selected = targets != -100; shown_mask = inputs == mask_token_id; "
        "unchanged = inputs == targets. Random is selected, not shown_mask and not unchanged.",
        "F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction='none', ignore_index=-100) gives one "
        "loss per position; average it over each mask.",
    ],
    solution_code='''\
import torch.nn.functional as F

def loss_by_treatment(logits, inputs, targets, mask_token_id):
    V = logits.size(-1)
    losses = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none", ignore_index=-100)
    losses = losses.view(targets.shape)  # (B, T): one loss per position (0 where not selected)
    selected = targets != -100
    shown_mask, unchanged = inputs == mask_token_id, inputs == targets
    kinds = [selected & shown_mask, selected & ~shown_mask & ~unchanged, selected & unchanged]
    return tuple(losses[k].mean().item() for k in kinds)
''',
    explanation=(
        "The masked-LM loss is one mean over all selected positions, but the three kinds ask different things: at "
        "[MASK] the model must guess from the context, at a random id it must notice that the visible token is "
        "wrong, and at an unchanged one the answer is in view, although the model cannot tell it from a random one. "
        "Splitting a loss by the kind of position is how you find which part of a task a model has learned."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 whole_word_mask (a variant: not shown in the notebook)


def word_mask_variant(idx: torch.Tensor, word_ids: torch.Tensor, chosen: list[int], mask_token_id: int, *,
                      first_piece_only: bool = False, inverted_targets: bool = False,
                      masked_targets: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-word masking; the keyword arguments make the typical mistakes, for diagnosis."""
    selected = torch.isin(word_ids, torch.tensor(list(chosen), dtype=word_ids.dtype))  # (T,)
    if first_piece_only:  # only the first token of each chosen word
        starts = torch.ones_like(selected)
        starts[1:] = word_ids[1:] != word_ids[:-1]
        selected = selected & starts
    inputs = torch.where(selected, torch.full_like(idx, mask_token_id), idx)
    targets = torch.where(selected if not inverted_targets else ~selected, inputs if masked_targets else idx,
                          torch.full_like(idx, IGNORE))
    return inputs, targets


def ref_whole_word_mask(idx: torch.Tensor, word_ids: torch.Tensor, chosen: list[int],
                        mask_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference for q3: every token of a chosen word -> mask_token_id; targets: originals there, -100 elsewhere."""
    return word_mask_variant(idx, word_ids, chosen, mask_token_id)


def _q3_case(n_words: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Token ids, their word index (words of 1 to 3 tokens) and about a third of the words chosen."""
    rng = random.Random(seed)
    word_ids = torch.tensor([w for w in range(n_words) for _ in range(rng.randint(1, 3))])
    idx = torch.tensor([rng.randrange(1, 50) for _ in range(len(word_ids))])
    chosen = sorted(rng.sample(range(n_words), max(1, n_words // 3)))
    return idx, word_ids, chosen


_Q3_CASES = [(4, 0), (7, 1), (10, 2), (1, 3)]


def _q3_hidden(rng: random.Random) -> list[tuple[int, int]]:
    return [(rng.randint(2, 12), rng.randrange(2**31)) for _ in range(2)]


def _check_whole_word(fn: Any, timeout: float, cases: list[tuple[int, int]]) -> None:
    mask_id = 99
    for n_words, seed in cases:
        idx, word_ids, chosen = _q3_case(n_words, seed)
        shown = f"idx={idx.tolist()}, word_ids={word_ids.tolist()}, chosen={chosen}, mask_token_id={mask_id}"
        got = call_safely(fn, idx.clone(), word_ids.clone(), list(chosen), mask_id, timeout=timeout, show_input=shown)
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            raise CheckFailed("Return a pair of tensors (inputs, targets).", input=shown, got=repr(got)[:200])
        expected = ref_whole_word_mask(idx, word_ids, chosen, mask_id)
        if all(torch.equal(g.long(), e) for g, e in zip(got, expected)):
            continue
        fail = CheckFailed.at(input=shown, expected=tuple(t.tolist() for t in expected),
                              got=tuple(t.tolist() for t in got))
        for kwargs, message in [
            (dict(first_piece_only=True), "Only the first token of each chosen word is masked. Whole-word masking "
             "masks EVERY token whose word_ids is a chosen word: the rest of the word would give the answer away."),
            (dict(inverted_targets=True), "The targets are the wrong way round: they hold the original ids at the "
             "MASKED positions and -100 everywhere else (unmasked tokens are not predicted)."),
            (dict(masked_targets=True), "The targets were taken after masking, so they hold the mask id: keep the "
             "ORIGINAL ids of idx as targets."),
        ]:
            variant = word_mask_variant(idx, word_ids, chosen, mask_id, **kwargs)
            if all(torch.equal(g.long(), v) for g, v in zip(got, variant)):
                raise fail(message)
        raise fail("inputs or targets differ from whole-word masking of the chosen words (see expected and got).")


q3 = Exercise(
    name="q3",
    title="whole_word_mask(idx, word_ids, chosen, mask_token_id)",
    points=2,
    prompt=(
        "Subword tokenizers split a word into pieces; masking one piece of \"play ##ing\" leaves the other to "
        "give it away. Write `whole_word_mask(idx, word_ids, chosen, mask_token_id)`: `idx` (T,) are token ids, "
        "`word_ids` (T,) the word each token belongs to (0, 0, 1, 2, 2, ...), `chosen` a list of word indices. "
        "Return (inputs, targets): inputs is idx with EVERY token of each chosen word replaced by mask_token_id; "
        "targets holds the original id at those positions and -100 elsewhere. Do not change idx in place."
    ),
    checker=_check_whole_word,
    cases=_Q3_CASES,
    hidden=_q3_hidden,
    hints=[
        "First a boolean (T,) tensor: which tokens belong to a chosen word. torch.isin(word_ids, torch.tensor(chosen)) "
        "does it in one call.",
        "torch.where(selected, mask_value, idx) builds inputs without touching idx; the same with -100 builds targets.",
        "sel = torch.isin(word_ids, torch.tensor(chosen)); inputs = torch.where(sel, torch.full_like(idx, "
        "mask_token_id), idx); targets = torch.where(sel, idx, torch.full_like(idx, -100))",
    ],
    solution_code='''\
def whole_word_mask(idx, word_ids, chosen, mask_token_id):
    selected = torch.isin(word_ids, torch.tensor(chosen))                  # (T,): tokens of chosen words
    inputs = torch.where(selected, torch.full_like(idx, mask_token_id), idx)
    targets = torch.where(selected, idx, torch.full_like(idx, -100))       # predict only what was hidden
    return inputs, targets
''',
    explanation=(
        "BERT's first release masked word pieces independently, so a masked \"##ing\" next to a visible \"play\" "
        "was easy to guess; whole-word masking (a later BERT release) selects words and hides all their pieces, "
        "so the model must use the context. Our notebook's tokens are whole words, so there the two coincide."
    ),
)

EXERCISES = ExerciseSet("nb09", "09 · Pretraining objectives", [q1, q2, q3])
progress = EXERCISES.progress
