"""lmlab.widgets.bpe_stepper: step through BPE merges and watch a text's tokens (notebook 03).

The merges are lmlab.tokenizers' (checked against the textbook trainer); each step's tokens are checked by
re-encoding with the merges so far; the widget is driven through its slider and buttons.
"""

from __future__ import annotations

import base64

import pytest

from lmlab.tokenizers import BPETokenizer, textbook_merges
from lmlab.widgets.bpe_stepper import BPEStepper, merge_steps

TEXT = ("the cat sat on the mat. the cat ate the rat. then the cat sat on the hat, "
        "and the rat sat on the cat.\nthe end.\n") * 3


def test_merge_steps_follow_the_trainer_and_the_tokens_decode_to_the_text():
    steps = merge_steps(TEXT, 12, pattern=None)
    assert [(s.pair, s.new_id) for s in steps[1:]] == textbook_merges(TEXT, 256 + 12, None)
    assert steps[0].tokens == [bytes([b]) for b in TEXT.encode()]
    for s in steps:
        assert b"".join(s.tokens) == TEXT.encode()  # nothing lost at any step
    assert [len(s.tokens) for s in steps] == sorted((len(s.tokens) for s in steps), reverse=True)


def test_each_step_equals_a_tokenizer_trained_with_that_many_merges():
    for pattern in (None, "gpt2"):
        steps = merge_steps(TEXT, 10, pattern=pattern)
        for k in (1, 4, 10):
            tok = BPETokenizer(pattern=pattern).train(TEXT, vocab_size=256 + k, pattern=pattern)
            assert [tok.vocab[i] for i in tok.encode(TEXT)] == steps[k].tokens


def test_the_first_merge_by_hand():
    step = merge_steps("aaabdaaabac", 1)[1]
    assert (step.pair, step.token, step.count) == ((97, 97), b"aa", 4)
    assert step.tokens == [b"aa", b"a", b"b", b"d", b"aa", b"a", b"b", b"a", b"c"]


def test_without_a_regex_merges_end_in_spaces_and_with_gpt2_they_do_not():
    free = merge_steps(TEXT, 10, None)
    gpt2 = merge_steps(TEXT, 10, "gpt2")
    assert any(s.token.endswith(b" ") and s.token.strip() for s in free[1:])
    assert not any(s.token.endswith(b" ") for s in gpt2[1:])


@pytest.mark.parametrize("kwargs, message", [
    ({"pattern": "gpt4"}, "pattern must be None"),
    ({"merges": 99}, "merges must be an int from 0 to"),
    ({"show": ""}, "show must be a non-empty string"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BPEStepper(TEXT, 8, **kwargs)
    with pytest.raises(ValueError, match="text must be"):
        merge_steps("", 3)


@pytest.fixture(scope="module")
def stepper():
    return BPEStepper(TEXT, 12, show="the cat sat on the mat.\nthe end.")


def test_the_slider_changes_the_tokens_shown(stepper):
    stepper.set(merges=0, pattern=None)
    before = stepper.text_view.value
    assert stepper.values["n_tokens"] == len("the cat sat on the mat.\nthe end.")
    stepper.slider.value = 6  # as the learner does
    after = stepper.values
    assert after["merges"] == 6 and after["n_tokens"] < stepper.steps[None][0].tokens.__len__()
    assert stepper.text_view.value != before
    token = after["token"].decode()
    assert token.replace(" ", "\u2423") in stepper.text_view.value  # the newest token, drawn
    assert "#f4b6b6" in stepper.text_view.value  # ... highlighted
    assert f"Merge 6" in stepper.readout.value and str(after["count"]) in stepper.readout.value


def test_the_pattern_buttons_switch_to_gpt2s_merges(stepper):
    stepper.set(merges=6, pattern=None)
    free = stepper.values["tokens"]
    stepper.pattern_buttons.value = "gpt2"
    assert stepper.values["pattern"] == "gpt2" and stepper.values["tokens"] != free
    assert "GPT-2" in stepper.readout.value


def test_display_has_the_widget_a_static_picture_and_a_stable_text(stepper):
    bundle = stepper._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert bundle["text/plain"] == "BPEStepper(n_merges=12, shown text of 32 characters)"
