"""Exercises for notebook 12, "Hugging Face interop": where one lmlab GPT weight goes in GPT-2, the first
position where two tokenizers' ids disagree, and the names of BERT's weights.

In the notebook::

    from lmlab.exercises import nb12 as ex

    def convert_weight(name, tensor): ...
    ex.q1.check(convert_weight)     # prints ✓ passed, or what is wrong and on which input
    ex.q1.hint()                    # the next hint; ex.q1.hint(3) the last one
    ex.q1.solution()                # a worked solution with an explanation
    ex.progress()                   # which exercises passed so far

The functions the learner writes:

- q1 ``convert_weight(name, tensor) -> (hf_name, hf_tensor)``: one entry of an lmlab ``GPT`` state dict
  as ``transformers``' ``GPT2LMHeadModel`` expects it. The names are the same (lmlab follows nanoGPT,
  which follows GPT-2); the weights of the four ``Conv1D`` layers (``attn.c_attn``, ``attn.c_proj``,
  ``mlp.c_fc``, ``mlp.c_proj``) are transposed, everything else is copied as it is. Checked on every
  entry of a small GPT with non-square shapes (n_embd=8, vocab 11, block 7), and the converted state dict
  must load into a ``GPT2LMHeadModel`` that computes the same logits.
- q2 ``first_mismatch(ours, theirs) -> int | None``: the first index where two id lists differ, the
  length of the shorter when one is a prefix of the other, ``None`` when they are equal.
- q3 ``bert_name(name) -> str``: the ``BertForMaskedLM`` name of one entry of an lmlab ``MaskedLM`` state dict
  (a variant of q1: here the layouts agree and the names differ). Checked on every entry of small models
  (one with 11 layers: a two-digit layer index), then the renamed weights must load into a
  ``BertForMaskedLM`` that computes the same logits.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from lmlab.exercises.core import CheckFailed, Exercise, ExerciseSet, as_index, call_safely, describe

__all__ = ["q1", "q2", "q3", "EXERCISES", "progress", "ref_convert_weight", "ref_first_mismatch", "ref_bert_name",
           "CONV1D_WEIGHTS", "small_gpt", "small_bert"]

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# ----------------------------------------------------------------------------------------------------
# q1 convert_weight


def ref_convert_weight(name: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
    """Reference for q1: Linear (out, in) -> Conv1D (in, out) for the four Conv1D weights, else unchanged."""
    return name, (tensor.t() if name.endswith(CONV1D_WEIGHTS) else tensor)


_Q1_CONFIGS = [dict(vocab_size=11, block_size=7, n_layer=2, n_head=2, n_embd=8)]  # non-square shapes


def _q1_hidden(rng: random.Random) -> list[dict[str, int]]:
    n_head = rng.randint(1, 3)
    return [dict(vocab_size=rng.randint(5, 40), block_size=rng.randint(3, 16), n_layer=rng.randint(1, 3),
                 n_head=n_head, n_embd=n_head * rng.randint(2, 6), seed=rng.randrange(2**31))]


def small_gpt(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, seed: int = 0) -> Any:
    """A small lmlab GPT with deterministic random weights, in eval mode."""
    from lmlab.models import GPT, GPTConfig

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                             n_embd=n_embd)).eval()


def _check_convert_weight(fn: Any, timeout: float, cases: list[dict[str, int]]) -> None:
    for config in cases:
        model = small_gpt(**config)
        converted = {name: _converted_entry(fn, timeout, name, w) for name, w in model.state_dict().items()}
        _check_loads_in_transformers(model, converted)


def _converted_entry(fn: Any, timeout: float, name: str, w: torch.Tensor) -> torch.Tensor:
    """The learner's conversion of one state-dict entry, or a kind CheckFailed."""
    shown = f"name={name!r}, tensor of shape {tuple(w.shape)}"
    got = call_safely(fn, name, w.clone(), timeout=timeout, show_input=shown)
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        extra = " Did you forget a `return` statement?" if got is None else ""
        raise CheckFailed("`convert_weight` should return a pair (hf_name, hf_tensor)." + extra, input=shown, got=got)
    hf_name, hf_w = got
    exp_name, exp_w = ref_convert_weight(name, w)
    if hf_name != exp_name:
        raise CheckFailed("The name should stay the same: lmlab's GPT uses GPT-2's own parameter names "
                          "(transformer.h.0.attn.c_attn.weight is the same tensor in both).",
                          input=shown, expected=exp_name, got=hf_name)
    if not isinstance(hf_w, torch.Tensor):
        raise CheckFailed("The second item should be a tensor.", input=shown, got=hf_w)
    if tuple(hf_w.shape) == tuple(exp_w.shape) and torch.equal(hf_w, exp_w):
        return hf_w
    fail = CheckFailed.at(input=shown, expected=f"shape {tuple(exp_w.shape)}",
                          got=f"shape {tuple(hf_w.shape)}" if hf_w.shape != exp_w.shape else describe(hf_w))
    is_conv = name.endswith(CONV1D_WEIGHTS)
    if is_conv and hf_w.shape == w.shape and torch.equal(hf_w, w):
        raise fail(f"{name} belongs to a Conv1D layer in GPT-2, which stores (in, out) where nn.Linear "
                   "stores (out, in): transpose it (tensor.t()). The four Conv1D weights are "
                   "attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj.")
    if not is_conv and w.dim() == 2 and hf_w.shape == w.t().shape and torch.equal(hf_w, w.t()):
        raise fail(f"{name} must not be transposed: only the weights of the four Conv1D layers (attn.c_attn, "
                   "attn.c_proj, mlp.c_fc, mlp.c_proj) are stored transposed in GPT-2. Embeddings (wte, "
                   "wpe) are (rows = ids or positions, C) in both, and lm_head is tied to wte.")
    raise fail(f"The tensor for {name} is not what GPT2LMHeadModel expects: the same values, transposed "
               "for the four Conv1D weights only.")


def _check_loads_in_transformers(model: Any, converted: dict[str, torch.Tensor]) -> None:
    from transformers import GPT2LMHeadModel

    from lmlab.interop import to_hf

    hf = GPT2LMHeadModel(to_hf(model).config)
    hf.load_state_dict(converted, strict=True)
    hf.eval()
    T = model.config.block_size
    x = torch.arange(T).remainder(model.config.vocab_size).unsqueeze(0)  # (1, T)
    with torch.no_grad():
        diff = (hf(x).logits - model(x)[0]).abs().max().item()
    if diff > 1e-4:  # internal: the reference itself would be wrong
        raise CheckFailed(f"The converted weights load but the logits differ by {diff:.2g}.")


q1 = Exercise(
    name="q1",
    title="convert_weight(name, tensor)",
    points=2,
    prompt=(
        "Write `convert_weight(name, tensor)` that returns (hf_name, hf_tensor): where one entry of an lmlab GPT's "
        "state_dict goes in transformers' GPT2LMHeadModel, and in which layout. GPT-2's attn.c_attn, attn.c_proj, "
        "mlp.c_fc and mlp.c_proj are Conv1D layers that store their weight as (in, out); lmlab's nn.Linear stores "
        "(out, in). The check converts every entry of a small GPT and loads the result into a GPT2LMHeadModel."
    ),
    checker=_check_convert_weight,
    cases=_Q1_CONFIGS,
    hidden=_q1_hidden,
    forbidden=("lmlab.interop.to_hf",),
    hints=[
        "Compare print(list(gpt.state_dict())) with print(list(to_hf(gpt).state_dict())): are the names different?",
        "Only weights (names ending in .weight) of the four Conv1D layers change layout; biases, LayerNorms and "
        "embeddings are copied unchanged. name.endswith(tuple_of_suffixes) tests several suffixes at once.",
        "conv1d = ('attn.c_attn.weight', 'attn.c_proj.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight'); "
        "return name, (tensor.t() if name.endswith(conv1d) else tensor)",
    ],
    solution_code='''\
def convert_weight(name, tensor):
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    # same names (lmlab follows GPT-2); Conv1D stores (in, out) where nn.Linear stores (out, in)
    return name, (tensor.t() if name.endswith(conv1d) else tensor)
''',
    explanation=(
        "nn.Linear computes y = x W^T + b with W of shape (out, in); GPT-2's Conv1D computes y = x W' + b with W' "
        "of shape (in, out), so W' = W^T for those four layers. Embedding tables are lookups (row = id), the same "
        "in both, and lm_head shares wte's tensor. Shapes catch most mistakes (strict loading refuses them), but "
        "not for square matrices: c_proj of attention is (C, C), and loading it untransposed gives a model that "
        "runs and is silently wrong. That is why the notebook compares logits after every conversion."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q2 first_mismatch


def ref_first_mismatch(ours: list[int], theirs: list[int]) -> int | None:
    """Reference for q2."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return i
    return None if len(ours) == len(theirs) else min(len(ours), len(theirs))


_Q2_CASES = [
    ([5, 6, 7], [5, 6, 7]),
    ([5, 6, 7], [5, 9, 7]),
    ([1, 2, 3], [4, 2, 3]),
    ([5, 6, 7, 8], [5, 6, 7]),  # theirs is a prefix: differs at 3
    ([2, 3], [2, 3, 4, 5]),
    ([], []),
    ([], [0]),
    ([0, 0, 1], [0, 0, 2]),
]


def _q2_hidden(rng: random.Random) -> list[tuple[list[int], list[int]]]:
    cases = []
    for _ in range(3):
        ours = [rng.randrange(5) for _ in range(rng.randint(0, 12))]
        theirs = list(ours)
        if theirs and rng.random() < 0.7:
            theirs[rng.randrange(len(theirs))] += 1  # one id differs
        cases.append((ours, theirs + [rng.randrange(5)] * rng.randint(0, 2)))  # maybe longer
    return cases


def _check_first_mismatch(fn: Any, timeout: float, cases: list[tuple[list[int], list[int]]]) -> None:
    for ours, theirs in cases:
        shown = f"ours={ours}, theirs={theirs}"
        got = as_index(call_safely(fn, list(ours), list(theirs), timeout=timeout, show_input=shown))
        expected = ref_first_mismatch(ours, theirs)
        is_index = isinstance(got, int) and not isinstance(got, bool)
        if (expected is None and got is None) or (expected is not None and is_index and got == expected):
            continue
        fail = CheckFailed.at(input=shown, expected=expected, got=got)
        if expected is None and got == -1:
            raise fail("Return None (not -1) when the lists are equal: -1 is a valid index in Python and would "
                       "point at the last token.")
        if expected is None and got is False:
            raise fail("Return None when the lists are equal (False == 0 in Python, which reads as 'position 0').")
        if got is None and len(ours) != len(theirs):
            raise fail("One list is a prefix of the other: zip stops at the shorter one, so the loop finds no "
                       "difference, but the lists are not equal. Return the length of the shorter list.")
        if isinstance(got, int) and expected is not None and got == expected + 1:
            raise fail("Off by one: return the 0-based index of the first difference (enumerate counts from 0).")
        raise fail("Return the first index i where ours[i] != theirs[i]; the length of the shorter list when one "
                   "is a prefix of the other; None when they are equal.")


q2 = Exercise(
    name="q2",
    title="first_mismatch(ours, theirs)",
    points=1,
    prompt=(
        "Write `first_mismatch(ours, theirs)` for two lists of token ids: the first index where they differ; if one "
        "is a prefix of the other, the length of the shorter one; None if they are equal."
    ),
    checker=_check_first_mismatch,
    cases=_Q2_CASES,
    hidden=_q2_hidden,
    hints=[
        "for i, (a, b) in enumerate(zip(ours, theirs)) walks both lists together, with the position.",
        "zip stops at the shorter list: after the loop, equal lengths mean equal lists.",
        "after the loop: return None if len(ours) == len(theirs) else min(len(ours), len(theirs))",
    ],
    solution_code='''\
def first_mismatch(ours, theirs):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return i                                # first position that disagrees
    if len(ours) == len(theirs):
        return None                                 # identical
    return min(len(ours), len(theirs))              # one is a prefix of the other
''',
    explanation=(
        "When an exported tokenizer disagrees with the original, the first differing position points at the "
        "cause: a character missing from the vocabulary, a different pre-tokenizer split, an added special token "
        "([CLS] at position 0), or whitespace handling. None for 'no difference' keeps 0 free to mean 'the very "
        "first token'; -1 would be a valid (last) index. The prefix case matters: a tokenizer that drops a "
        "trailing character gives a list that zip alone would call equal."
    ),
)

# ----------------------------------------------------------------------------------------------------
# q3 bert_name

# lmlab MaskedLM block part -> BERT block part (both post-LN: ln_1 after attention, ln_2 after the MLP)
BERT_LAYER_PARTS = {
    "attn.query.": "attention.self.query.", "attn.key.": "attention.self.key.", "attn.value.": "attention.self.value.",
    "attn.out.": "attention.output.dense.", "ln_1.": "attention.output.LayerNorm.", "mlp.fc.": "intermediate.dense.",
    "mlp.proj.": "output.dense.", "ln_2.": "output.LayerNorm.",
}
BERT_HEAD_PARTS = {"head.dense.": "cls.predictions.transform.dense.", "head.ln.": "cls.predictions.transform.LayerNorm.",
                   "head.decoder.weight": "cls.predictions.decoder.weight", "head.decoder.bias": "cls.predictions.bias"}


def ref_bert_name(name: str) -> str:
    """Reference for q3. Example: layers.0.ln_2.bias -> bert.encoder.layer.0.output.LayerNorm.bias"""
    if name.startswith("embeddings."):
        return "bert." + name.replace("embeddings.ln.", "embeddings.LayerNorm.")
    if name.startswith("layers."):
        _, i, rest = name.split(".", 2)
        part = next(p for p in BERT_LAYER_PARTS if rest.startswith(p))
        return f"bert.encoder.layer.{i}.{BERT_LAYER_PARTS[part]}{rest[len(part):]}"
    part = next(p for p in BERT_HEAD_PARTS if name.startswith(p))
    return BERT_HEAD_PARTS[part] + name[len(part):]


_Q3_CONFIGS = [dict(vocab_size=13, block_size=9, n_layer=2, n_head=2, n_embd=8),
               dict(vocab_size=7, block_size=5, n_layer=11, n_head=1, n_embd=4)]  # layers.10.: two digits


def _q3_hidden(rng: random.Random) -> list[dict[str, int]]:
    n_head = rng.randint(1, 2)
    return [dict(vocab_size=rng.randint(6, 30), block_size=rng.randint(4, 12), n_layer=rng.randint(1, 3),
                 n_head=n_head, n_embd=n_head * rng.randint(2, 4), seed=rng.randrange(2**31))]


def small_bert(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, seed: int = 0) -> Any:
    """A small lmlab MaskedLM with deterministic random weights, in eval mode."""
    from lmlab.models import MaskedLM, MaskedLMConfig

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return MaskedLM(MaskedLMConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                                       n_head=n_head, n_embd=n_embd)).eval()


def _check_bert_name(fn: Any, timeout: float, cases: list[dict[str, int]]) -> None:
    for config in cases:
        model = small_bert(**config)
        renamed = {}
        for name, w in model.state_dict().items():
            shown = f"name={name!r} (n_layer={config['n_layer']})"
            got = call_safely(fn, name, timeout=timeout, show_input=shown)
            expected = ref_bert_name(name)
            if name == "head.decoder.bias" and got == "cls.predictions.decoder.bias":
                got = expected  # BERT keeps this bias under both names: either is right
            if got != expected:
                raise CheckFailed.at(input=shown, expected=expected, got=got)(_bert_name_advice(name, got, expected))
            renamed[got] = w
        _check_loads_as_bert(model, renamed)


def _bert_name_advice(name: str, got: Any, expected: str) -> str:
    if got is None:
        return "`bert_name` returned None: did you forget a `return` statement?"
    if not isinstance(got, str):
        return "`bert_name` should return the new name as a string."
    if expected.startswith("bert.") and got == expected[len("bert."):]:
        return "BertForMaskedLM keeps the encoder under `bert.` (the BertModel inside it): add that prefix."
    if got == name:
        return ("This name is lmlab's own: BERT names its modules differently. Compare list(bert.state_dict()) with "
                "list(hf_bert.state_dict()) in section 7: the same tensors, in nearly the same order.")
    if name.startswith("layers.") and f".layer.{name.split('.')[1]}." not in got:
        return f"Keep the layer index: {name.split('.')[1]} (it can have two digits)."
    if ".ln_1." in name or ".ln_2." in name:
        return ("BERT is post-LN: ln_1 normalises after the attention (attention.output.LayerNorm), ln_2 after the "
                "MLP (output.LayerNorm).")
    if ".mlp." in name:
        return ("BERT's MLP is intermediate.dense (in -> 4 * in, then GELU) and output.dense (back to in); the "
                "LayerNorm after it is output.LayerNorm.")
    return "Look up this tensor in list(hf_bert.state_dict()): same shape, same place in the order."


def _check_loads_as_bert(model: Any, renamed: dict[str, torch.Tensor]) -> None:
    from transformers import BertForMaskedLM

    from lmlab.interop import to_hf

    hf = BertForMaskedLM(to_hf(model).config)
    renamed["cls.predictions.decoder.bias"] = renamed["cls.predictions.bias"]  # one tensor under two names
    hf.load_state_dict(renamed, strict=True)
    hf.eval()
    x = torch.arange(model.config.block_size).remainder(model.config.vocab_size).unsqueeze(0)  # (1, T)
    with torch.no_grad():
        diff = (hf(x).logits - model(x)[0]).abs().max().item()
    if diff > 1e-4:  # internal: the reference itself would be wrong
        raise CheckFailed(f"The renamed weights load but the logits differ by {diff:.2g}.")


q3 = Exercise(
    name="q3",
    title="bert_name(name)",
    points=2,
    prompt=(
        "Write `bert_name(name)`: the name under which transformers' BertForMaskedLM stores the tensor that an lmlab "
        "MaskedLM stores under `name` (the layouts agree: no transposes, unlike GPT-2). Examples: "
        "'layers.0.ln_2.bias' -> 'bert.encoder.layer.0.output.LayerNorm.bias', 'head.decoder.bias' -> "
        "'cls.predictions.bias'. Find the rest by comparing list(bert.state_dict()) with list(hf_bert.state_dict())."
    ),
    checker=_check_bert_name,
    cases=_Q3_CONFIGS,
    hidden=_q3_hidden,
    forbidden=("lmlab.interop.to_hf", "lmlab.interop.from_hf"),
    hints=[
        "Print the two lists side by side: for a, b in zip(bert.state_dict(), hf_bert.state_dict()): print(a, b). "
        "Apart from cls.predictions.bias (listed first by BERT) they come in the same order.",
        "Three families: embeddings.* -> bert.embeddings.* (ln -> LayerNorm); layers.i.* -> "
        "bert.encoder.layer.i.* with a table for the parts; head.* -> cls.predictions.*.",
        "_, i, rest = name.split('.', 2) splits 'layers.10.mlp.fc.weight' into 'layers', '10', 'mlp.fc.weight'; "
        "then map the start of rest with a dict such as {'mlp.fc.': 'intermediate.dense.', ...}.",
    ],
    solution_code='''\
LAYER_PARTS = {"attn.query.": "attention.self.query.", "attn.key.": "attention.self.key.",
               "attn.value.": "attention.self.value.", "attn.out.": "attention.output.dense.",
               "ln_1.": "attention.output.LayerNorm.", "mlp.fc.": "intermediate.dense.",
               "mlp.proj.": "output.dense.", "ln_2.": "output.LayerNorm."}
HEAD = {"head.dense.": "cls.predictions.transform.dense.", "head.ln.": "cls.predictions.transform.LayerNorm.",
        "head.decoder.weight": "cls.predictions.decoder.weight", "head.decoder.bias": "cls.predictions.bias"}

def bert_name(name):
    if name.startswith("embeddings."):
        return "bert." + name.replace("embeddings.ln.", "embeddings.LayerNorm.")
    if name.startswith("layers."):
        _, i, rest = name.split(".", 2)              # 'layers', '10', 'mlp.fc.weight'
        for ours, theirs in LAYER_PARTS.items():
            if rest.startswith(ours):
                return f"bert.encoder.layer.{i}.{theirs}{rest[len(ours):]}"
    for ours, theirs in HEAD.items():
        if name.startswith(ours):
            return theirs + name[len(ours):]
''',
    explanation=(
        "Converting weights between libraries is mostly renaming, and the safe way to find the names is the one "
        "used here: list both state dicts, match tensors by position and shape, and load strictly (every name must "
        "match and none may be left over). Shapes cannot tell ln_1 from ln_2, or query from key (all (C, C)): "
        "a model with those swapped loads and runs and is wrong, so the check also compares logits. BERT stores "
        "its output bias twice (cls.predictions.bias and cls.predictions.decoder.bias, one tensor)."
    ),
)

EXERCISES = ExerciseSet("nb12", "12 · Hugging Face interop", [q1, q2, q3])
progress = EXERCISES.progress
