"""nb12 exercises: the references and worked solutions pass; typical wrong answers fail with a specific message."""

from __future__ import annotations

import pytest
import torch

from lmlab.exercises import nb12 as ex
from lmlab.exercises.nb12 import CONV1D_WEIGHTS, ref_bert_name, ref_convert_weight, ref_first_mismatch, small_bert, small_gpt
from lmlab.interop import to_hf
from exercise_helpers import fails_with, passes, solution_function


@pytest.mark.parametrize("config", ex.q1.cases + ex.q1.hidden_cases(0))
def test_reference_conversion_is_what_to_hf_does(config):
    model = small_gpt(**config)
    converted = dict(ref_convert_weight(n, w) for n, w in model.state_dict().items())
    theirs = to_hf(model).state_dict()
    assert set(converted) == set(theirs)
    assert all(torch.equal(converted[k], v) for k, v in theirs.items())


@pytest.mark.parametrize("exercise, answer", [(ex.q1, ref_convert_weight), (ex.q2, ref_first_mismatch)])
def test_reference_passes(exercise, answer):
    passes(exercise, answer)


def test_q1_no_transpose():
    fails_with(ex.q1, lambda name, w: (name, w), "transpose it")


def test_q1_transpose_every_matrix():
    fails_with(ex.q1, lambda name, w: (name, w.t() if w.dim() == 2 else w), "must not be transposed")


def test_q1_only_attention_transposed():
    def attention_only(name, w):
        return name, (w.t() if name.endswith(CONV1D_WEIGHTS[:2]) else w)

    fails_with(ex.q1, attention_only, "mlp.c_fc", "transpose it")


def test_q1_renamed():
    fails_with(ex.q1, lambda name, w: (name.replace("transformer.", ""), w), "name should stay the same")


def test_q1_wrong_return():
    fails_with(ex.q1, lambda name, w: None, "forget a `return`")
    fails_with(ex.q1, lambda name, w: ref_convert_weight(name, w)[1], "pair (hf_name, hf_tensor)")


def test_q1_stub_not_solved():
    def convert_weight(name, tensor):
        raise NotImplementedError

    fails_with(ex.q1, convert_weight, "Not yet solved")


def test_q2_minus_one_for_equal():
    fails_with(ex.q2, lambda a, b: ref_first_mismatch(a, b) if ref_first_mismatch(a, b) is not None else -1,
                "not -1")


def test_q2_zip_only_misses_prefix():
    def zip_only(a, b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return i
        return None

    fails_with(ex.q2, zip_only, "prefix")


def test_q2_one_based():
    def one_based(a, b):
        r = ref_first_mismatch(a, b)
        return None if r is None else r + 1

    fails_with(ex.q2, one_based, "Off by one")


def test_q2_false_for_equal():
    fails_with(ex.q2, lambda a, b: ref_first_mismatch(a, b) if ref_first_mismatch(a, b) is not None else False,
                "Return None")


def test_q2_stub_not_solved():
    def first_mismatch(ours, theirs):
        raise NotImplementedError

    fails_with(ex.q2, first_mismatch, "Not yet solved")


@pytest.mark.parametrize("config", ex.q3.cases + ex.q3.hidden_cases(0))
def test_reference_bert_names_are_what_to_hf_does(config):
    model = small_bert(**config)
    theirs = to_hf(model).state_dict()
    renamed = {ref_bert_name(n): w for n, w in model.state_dict().items()}
    assert set(renamed) | {"cls.predictions.decoder.bias"} == set(theirs)
    assert all(torch.equal(renamed[k], theirs[k]) for k in renamed)


def test_q3_reference_and_worked_solution_pass():
    passes(ex.q3, ref_bert_name)
    passes(ex.q3, solution_function(ex.q3, "bert_name"))


def test_q3_decoder_bias_under_its_second_name_passes():
    passes(ex.q3, lambda n: "cls.predictions.decoder.bias" if n == "head.decoder.bias" else ref_bert_name(n))


def test_q3_unchanged_names():
    fails_with(ex.q3, lambda n: n, "`bert.`")
    fails_with(ex.q3, lambda n: n if n.startswith("layers.") else ref_bert_name(n), "lmlab's own")


def test_q3_missing_bert_prefix():
    fails_with(ex.q3, lambda n: ref_bert_name(n).removeprefix("bert."), "`bert.`")


def test_q3_layer_norms_swapped():
    def swapped(n):
        return ref_bert_name(n.replace("ln_1", "LN_A").replace("ln_2", "ln_1").replace("LN_A", "ln_2"))

    fails_with(ex.q3, swapped, "post-LN")


def test_q3_one_digit_layer_index():
    def one_digit(n):
        if n.startswith("layers."):
            return ref_bert_name(n[:7] + n[7] + n[n.index(".", 7):])
        return ref_bert_name(n)

    fails_with(ex.q3, one_digit, "two digits")


def test_q3_mlp_layers_swapped():
    fails_with(ex.q3, lambda n: ref_bert_name(n.replace("mlp.fc", "MLP").replace("mlp.proj", "mlp.fc")
                                                .replace("MLP", "mlp.proj")), "intermediate.dense")
