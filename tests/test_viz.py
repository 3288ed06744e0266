"""lmlab.viz: attention weights from lmlab and Hugging Face models, rollout, the explorer widget, exports.

The widget is driven the way a learner drives it (setting its controls, clicking its buttons) and the
PNG bytes it shows are decoded and read back pixel by pixel, so the tests check the picture itself.
The real-browser test is tests/test_browser.py.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from html import escape as html_escape

import pytest
import torch

from lmlab.models import GPT, GPTConfig, MaskedLM, MaskedLMConfig
from lmlab.tokenizers import BPETokenizer, CharTokenizer
from lmlab.viz import (
    AttentionExplorer, ablate_head, attention_rollout, attention_weights, generation_attention, head_vectors,
    plot_attention, token_label, token_strings, value_weighted,
)

TEXT = "the cat sat on the mat. "
ALPHABET = TEXT + "abcdefghijklmnopqrstuvwxyz.,!?$\n"


@pytest.fixture(scope="module")
def char_tok() -> CharTokenizer:
    return CharTokenizer.from_text(ALPHABET)


@pytest.fixture(scope="module")
def gpt(char_tok) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=char_tok.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():  # sharper, more varied attention than the N(0, 0.02) init gives
        for block in model.transformer.h:
            block.attn.c_attn.weight.mul_(25.0)
    return model.eval()


@pytest.fixture(scope="module")
def hf_gpt2(char_tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(vocab_size=char_tok.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                        bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    return GPT2LMHeadModel(config).eval(), char_tok.to_hf()


@pytest.fixture(scope="module")
def hf_bert():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "."]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                     sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(2)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, attn_implementation="eager")
    return BertForMaskedLM(config).eval(), hf_tok


def _png(data: bytes):
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not PNG bytes"
    return Image.open(io.BytesIO(data)).convert("RGB")


def _pixel(explorer: AttentionExplorer, view: str, x: float, y: float) -> tuple[float, float]:
    """Data coordinates (x, y) of ``view``'s live figure -> pixel of its PNG (origin top left)."""
    ax = explorer.live[view].ax
    px, py = ax.transData.transform((x, y))  # origin bottom left
    return px, ax.figure.canvas.get_width_height()[1] - py


def _heatmap_cell_colors(explorer: AttentionExplorer, view: str, cells: list[tuple[int, int]]):
    """Colors of the image that ``view`` shows, at the centres of the given (query, key) cells."""
    image = _png(explorer.images[view].value)
    out = []
    for i, j in cells:
        x, y = _pixel(explorer, view, j, i)
        out.append(image.getpixel((int(round(x)), int(round(y)))))
    return out


def _click(explorer: AttentionExplorer, view: str, x: float, y: float, kind: str = "click") -> None:
    """What ipyevents sends when the browser reports a click (or pointer move) at pixel (x, y) of an image:
    the message goes through the Event widgets watching that image."""
    events = [ev for ev in explorer.w.events if ev.source is explorer.images[view] and kind in ev.watched_events]
    assert len(events) == 1, f"one {kind} event on the {view} image"
    events[0]._dom_handlers({"type": kind, "dataX": x, "dataY": y})


def _viridis(value: float) -> tuple[int, int, int]:
    from matplotlib import colormaps

    r, g, b, _ = colormaps["viridis"](float(value))
    return round(r * 255), round(g * 255), round(b * 255)


def _close(c1, c2, tol=6) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(c1, c2))


# -- rollout and weights ---------------------------------------------------------------------------------


def test_rollout_hand_example():
    w0 = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    w1 = torch.tensor([[1.0, 0.0], [0.2, 0.8]])
    weights = torch.stack([w0, w1])[:, None]  # (L=2, H=1, T=2, T=2)
    expected = torch.tensor([[1.0, 0.0], [0.325, 0.675]])  # A_1 @ A_0 with A = (W + I) / 2, by hand
    torch.testing.assert_close(attention_rollout(weights), expected)
    # two heads whose mean is the same matrices give the same rollout
    w0_other = 2 * w0 - torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # [[1, 0], [1, 0]]: rows still sum to 1
    two_heads = torch.stack([torch.stack([torch.eye(2), w0_other]), torch.stack([w1, w1])])  # (2, 2, 2, 2)
    torch.testing.assert_close(attention_rollout(two_heads), expected)
    # without the residual it is the plain product W_1 @ W_0
    torch.testing.assert_close(attention_rollout(weights, add_residual=False), w1 @ w0)
    with pytest.raises(ValueError, match=r"\(L, H, T, T\)"):
        attention_rollout(torch.ones(2, 3, 3))


def test_attention_weights_lmlab_gpt_match_attention_maps(gpt, char_tok):
    tokens, w = attention_weights(gpt, char_tok, TEXT)
    assert tokens == list(TEXT)
    T = len(TEXT)
    assert w.shape == (2, 2, T, T) and w.dtype == torch.float32
    expected = gpt.attention_maps(torch.tensor([char_tok.encode(TEXT)]))[:, 0]
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, T))
    assert torch.all(w.triu(diagonal=1) == 0), "a causal model attends to no later token"


def test_attention_weights_lmlab_masked_lm(char_tok):
    torch.manual_seed(0)
    model = MaskedLM(MaskedLMConfig(vocab_size=char_tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=16))
    model.train()  # dropout 0, but the training flag must come back unchanged
    tokens, w = attention_weights(model, char_tok, "the cat")
    assert tokens == list("the cat") and w.shape == (2, 2, 7, 7)
    assert w.triu(diagonal=1).sum() > 0.1, "a bidirectional model attends to later tokens too"
    assert model.training


def test_attention_weights_hf_gpt2_and_bert(hf_gpt2, hf_bert):
    model, tok = hf_gpt2
    tokens, w = attention_weights(model, tok, "the cat")
    assert tokens == list("the cat") and w.shape == (2, 4, 7, 7)
    out = model(torch.tensor([tok("the cat")["input_ids"]]), output_attentions=True)
    torch.testing.assert_close(w, torch.stack([a[0] for a in out.attentions]))

    bert, btok = hf_bert
    tokens, w = attention_weights(bert, btok, "the cat sat")
    assert tokens == ["[CLS]", "the", "cat", "sat", "[SEP]"]
    assert w.shape == (2, 2, 5, 5) and w.triu(diagonal=1).sum() > 0.1


def test_hf_model_without_eager_attention_says_what_to_do(char_tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=char_tok.vocab_size, n_positions=32, n_embd=16, n_layer=1,
                                       n_head=2, bos_token_id=0, eos_token_id=0, attn_implementation="sdpa"))
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        attention_weights(model, char_tok.to_hf(), "the cat")


def test_bad_inputs_raise_clear_errors(gpt, char_tok):
    with pytest.raises(TypeError, match="attention"):
        attention_weights(torch.nn.Linear(2, 2), char_tok, "the")
    with pytest.raises(ValueError, match="no tokens"):
        attention_weights(gpt, char_tok, "")
    with pytest.raises(ValueError, match="at most 64 tokens"):  # the model's context size
        attention_weights(gpt, char_tok, "a" * 65)


def test_token_labels_are_safe_to_draw():
    assert token_label(" the\n") == "\u2423the\\n"
    assert token_label("$5") == r"\$5"
    assert token_label("\U0001f600") == "\\U0001f600"
    assert token_label("été") == "été"
    assert token_label("abcdefghijklmnop", max_len=5) == "abcd\u2026"
    tok = BPETokenizer().train("héllo wörld " * 20, vocab_size=260, pattern=None)
    ids = tok.encode("\U0001f600")  # 4 UTF-8 bytes, no merges: each token is part of a character
    assert token_strings(tok, ids) == ["\\xf0", "\\x9f", "\\x98", "\\x80"]


# -- readable figures ------------------------------------------------------------------------------------


def _tick_texts(ax, axis: str):
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t for t in ticks if t.get_text()]


def test_live_heatmap_is_readable(gpt, char_tok):
    text = TEXT + "the mat."  # 32 characters
    e = AttentionExplorer(gpt, char_tok, text)
    T = len(text)
    image = _png(e.images["head"].value)
    assert image.width >= 500, f"the head view is {image.width} px wide for {T} tokens"
    ax = e.live["head"].ax
    for axis in ("x", "y"):
        labels = _tick_texts(ax, axis)
        assert [t.get_text() for t in labels] == [token_label(t) for t in text], "every token labelled"
        assert all(t.get_fontsize() >= 9 and "Mono" in t.get_fontname() for t in labels)
    assert all(t.get_rotation() == 0 for t in _tick_texts(ax, "x")), "single characters stay upright"
    bars = [a for a in ax.figure.axes if a is not ax]
    assert len(bars) == 1 and bars[0].get_ylabel() == "attention weight", "a colour bar with the weight scale"
    # the query row is labelled in red at its own height, even when its tick label is left out
    e.query.value = 7
    label = e.live["head"].query_label
    assert label.get_visible() and label.get_text() == token_label(text[7]) and label.xy[1] == 7


def test_long_texts_label_a_readable_subset_and_always_the_query(gpt, char_tok):
    text = (TEXT * 4)[:100]
    e = AttentionExplorer(gpt, char_tok, text[:64])
    assert len(_tick_texts(e.live["head"].ax, "y")) == 64, "every token labelled up to 64 tokens"
    long = AttentionExplorer(gpt.__class__(gpt.config.__class__(**{**vars(gpt.config), "block_size": 128})),
                             char_tok, text)
    ax = long.live["head"].ax
    labels = _tick_texts(ax, "y")
    assert 30 <= len(labels) <= 64
    pitch = abs(ax.transData.transform((0, 2))[1] - ax.transData.transform((0, 0))[1])  # px between labels
    assert pitch >= 12, "labels no closer than about one line of 9 pt text"
    long.query.value = 51  # not among the labelled positions (every second one)
    assert "51" not in [str(t.get_position()[1]) for t in labels]
    assert long.live["head"].query_label.get_text() == token_label(text[51])


def test_words_are_turned_and_bars_read_back(hf_bert):
    bert, btok = hf_bert
    e = AttentionExplorer(bert, btok, "the cat sat on the mat .")
    assert all(t.get_rotation() == 90 for t in _tick_texts(e.live["head"].ax, "x")), "words are turned"


# -- the explorer ----------------------------------------------------------------------------------------


def test_controls_redraw_the_right_head_and_row(gpt, char_tok):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    tokens, w = attention_weights(gpt, char_tok, TEXT)
    T = len(tokens)
    assert e.view == "head" and e.images["head"].value
    before = e.images["head"].value

    e.layer.value, e.head.value = 1, 1
    assert e.images["head"].value != before
    assert isinstance(e.last_update_seconds, float) and 0 < e.last_update_seconds < 5
    torch.testing.assert_close(e.shown["head"], w[1, 1])
    cells = [(i, j) for i in (3, 10, T - 2) for j in (0, 1, i)]  # on and below the diagonal, not the query row
    for (i, j), color in zip(cells, _heatmap_cell_colors(e, "head", cells)):
        assert _close(color, _viridis(w[1, 1, i, j])), f"cell ({i}, {j}) shows {color}, expected {w[1, 1, i, j]}"

    e.view = "query"
    q_image = e.images["query"].value
    e.query.value = 5
    assert e.images["query"].value != q_image
    torch.testing.assert_close(e.shown["query"], w[1, 1, 5])
    # read the bars back from the picture: the top of bar j sits at w[1, 1, 5, j]
    image = _png(e.images["query"].value)
    transform = e.live["query"].ax.transData
    row = w[1, 1, 5]
    for j in range(6):
        x, y0 = transform.transform((j, 0.0))
        column = [image.getpixel((int(round(x)), r)) for r in range(image.height)]
        blue = [r for r, c in enumerate(column) if c == (31, 119, 180)]  # tab:blue
        red = [r for r, c in enumerate(column) if c == (214, 39, 40)]  # tab:red: the query's own bar
        assert not (red if j < 5 else blue), f"bar {j} has the wrong color"
        top = image.height - min(blue + red) if blue + red else y0  # pixels from the bottom; none: a tiny bar
        height = transform.inverted().transform((x, top))[1]
        assert abs(height - float(row[j])) < 0.03 * float(row.max()) + 1e-3, (j, height, float(row[j]))

    e.view = "rollout"
    torch.testing.assert_close(e.shown["rollout"], attention_rollout(w))
    e.layer.value = 0
    torch.testing.assert_close(e.shown["rollout"], attention_rollout(w[:1]))
    i, j = T - 1, 0
    assert _close(_heatmap_cell_colors(e, "rollout", [(i - 1, j)])[0], _viridis(attention_rollout(w[:1])[i - 1, j]))


def test_clicks_choose_query_and_key_and_the_readout_shows_the_weight(gpt, char_tok):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    _, w = attention_weights(gpt, char_tok, TEXT)
    assert e.query.value == len(TEXT) - 1
    before = e.images["head"].value
    _click(e, "head", *_pixel(e, "head", 2, 9))  # the cell of query 9, key 2
    assert (e.query.value, e.key) == (9, 2)
    assert e.images["head"].value != before, "the outline moved to the clicked row"
    assert f"{float(w[0, 0, 9, 2]):.3f}" in e.readout.value and "query 9" in e.readout.value
    x, y = _pixel(e, "head", 5, 8.5)  # the top edge of row 9
    assert _close(_png(e.images["head"].value).getpixel((int(x), int(round(y)))), (255, 0, 0), 40), "row outlined"

    x_left, y = _pixel(e, "head", -0.5, 4)
    _click(e, "head", x_left - 12, y)  # on the query's label, left of the map
    assert (e.query.value, e.key) == (4, 2)
    x, y_below = _pixel(e, "head", 6, len(TEXT) - 0.5)
    _click(e, "head", x, y_below + 10)  # on a key's label, below the map
    assert (e.query.value, e.key) == (4, 6)
    # the pointer only reads: the weight under it, the query unchanged
    _click(e, "head", *_pixel(e, "head", 1, 3), kind="mousemove")
    assert e.query.value == 4 and "under the pointer" in e.readout.value
    assert f"{float(w[0, 0, 3, 1]):.3f}" in e.readout.value
    _click(e, "head", 3, 3, kind="mousemove")  # the image's corner: no cell
    assert e.readout.value == ""


def test_thumbnail_click_opens_that_head(gpt, char_tok):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    assert len(e.thumbnails) == 4 and all(_png(t.value).width >= 96 for t in e.thumbnails.values())
    assert e.thumbnails[0, 0].value != e.thumbnails[1, 1].value
    e.view = "grid"
    clicks = [ev for ev in e.w.events if ev.source is e.thumbnails[1, 0]]
    assert len(clicks) == 1 and clicks[0].watched_events == ["click"]
    clicks[0]._dom_handlers({"type": "click"})  # what ipyevents sends for a click on the thumbnail
    assert (e.layer.value, e.head.value, e.view) == (1, 0, "head")
    assert "solid #d62728" in e.w.thumb_boxes[1, 0].layout.border
    assert "transparent" in e.w.thumb_boxes[0, 0].layout.border
    torch.testing.assert_close(e.shown["head"], attention_weights(gpt, char_tok, TEXT)[1][1, 0])


def test_lines_view_overlays_heads_and_clicks_choose_the_query(gpt, char_tok):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    _, w = attention_weights(gpt, char_tok, TEXT)
    e.view = "lines"
    torch.testing.assert_close(e.shown["lines"], w[0])
    lines = e.live["lines"].lines
    segments, colors = lines.get_segments(), lines.get_colors()
    q = e.query.value
    from_query = [(s, c) for s, c in zip(segments, colors) if s[0][1] == q]
    strongest = max(from_query, key=lambda sc: sc[1][3])
    j = int(strongest[0][1][1])
    assert abs(strongest[1][3] - float(w[0, :, q, j].max())) < 1e-6, "opacity = weight for the query's lines"
    assert len({tuple(c[:3]) for _, c in from_query}) == 2, "both heads drawn, one colour each"
    e.heads[1].value = False
    assert len({tuple(c[:3]) for c in e.live["lines"].lines.get_colors()}) == 1
    x, y = _pixel(e, "lines", 0.1, 6)
    _click(e, "lines", x, y)
    assert e.query.value == 6


def test_neuron_view_scores_make_the_weights(gpt, char_tok):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    _, w = attention_weights(gpt, char_tok, TEXT)
    e.layer.value, e.head.value, e.query.value = 1, 1, 12
    e.view = "neuron"
    assert _png(e.images["neuron"].value).width > 500
    scores = e.shown["neuron"]  # (T,): q . k / sqrt(hs) before the mask
    weights = torch.softmax(scores[:13], dim=-1)  # a causal query sees keys 0..12
    torch.testing.assert_close(weights, w[1, 1, 12, :13], atol=1e-5, rtol=1e-4)


def test_ablation_view_shows_the_loss_change(gpt, char_tok):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    e.layer.value, e.head.value = 1, 0
    e.view = "ablation"
    ab = e.shown["ablation"]
    assert (ab.layer, ab.head, ab.query) == (1, 0, len(TEXT) - 1)
    assert f"{ab.loss_before:.3f} \u2192 {ab.loss_after:.3f}" in e.w.ablation_text.value
    assert _png(e.images["ablation"].value).width > 300


def test_value_weighted_mode(gpt, char_tok):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    raw = e.shown["head"].clone()
    thumb = e.thumbnails[0, 0].value
    e.mode.value = "value-weighted"
    vw = value_weighted(gpt, e.weights, head_vectors(gpt, char_tok, TEXT))
    torch.testing.assert_close(e.shown["head"], vw[0, 0])
    assert not torch.allclose(raw, vw[0, 0]) and e.thumbnails[0, 0].value != thumb


def test_new_text_through_the_box_and_too_long_text(gpt, char_tok):
    with pytest.raises(ValueError, match="max_tokens=10"):
        AttentionExplorer(gpt, char_tok, TEXT, max_tokens=10)
    e = AttentionExplorer(gpt, char_tok, "the cat", max_tokens=20)
    e.text_box.value = "the mat sat"
    e.run_button.click()
    assert e.tokens == list("the mat sat") and len(e.query.options) == 11 and e.message == ""
    e.text_box.value = "a" * 21
    e.run_button.click()
    assert "21 tokens" in e.message and "max_tokens=20" in e.message and "max_tokens=20" in e.status.value
    assert e.tokens == list("the mat sat"), "a rejected text keeps the current view"


def test_generation_tab_before_and_after_a_generation(gpt, char_tok):
    from lmlab.generate import generate

    prompt = "the cat"
    e = AttentionExplorer(gpt, char_tok, prompt)
    e.view = "generation"
    assert e.images["generation"].layout.display == "none", "no empty (broken) image before a generation"
    assert "Press Generate" in e.generated_text.value and not e.generate_button.disabled
    trace = e.generate(6)
    assert e.view == "generation" and trace.steps == 6 and e.step.max == 6
    assert e.images["generation"].layout.display == "" and _png(e.images["generation"].value).width > 300
    greedy = generate(gpt, torch.tensor([char_tok.encode(prompt)]), 6, do_sample=False)[0].tolist()
    assert trace.tokens == [char_tok.decode([i]) for i in greedy]
    assert generation_attention(gpt, char_tok, prompt, 6).tokens == trace.tokens
    assert generation_attention(gpt, char_tok, "a" * 62, 6).steps == 2  # cut at the 64-token context
    with pytest.raises(ValueError, match="fills the model's context"):
        generation_attention(gpt, char_tok, "a" * 64, 1)
    first = e.images["generation"].value
    e.layer.value, e.head.value = 1, 1
    e.step.value = 4
    assert e.images["generation"].value not in (b"", first)
    # step 4 chose the token at position P + 3 from the row of position P + 2, over keys 0..P + 2
    context = "".join(trace.tokens[: len(prompt) + 3])
    _, w = attention_weights(gpt, char_tok, context)
    torch.testing.assert_close(e.shown["generation"], w[1, 1, -1])
    assert "<mark" in e.generated_text.value


def test_generate_is_off_with_the_reason_when_the_context_is_full(gpt, char_tok):
    full = AttentionExplorer(gpt, char_tok, (TEXT * 3)[:64])  # the model's context is 64
    full.view = "generation"
    assert full.generate_button.disabled
    assert "fills the model's context" in full.generated_text.value
    assert "fills the model's context" in full.generate_button.tooltip
    assert full.images["generation"].layout.display == "none"
    full.set_text("the cat")  # room again
    assert not full.generate_button.disabled and full.new_tokens.max == 64 - 7


def test_hf_models_in_the_explorer(hf_gpt2, hf_bert):
    model, tok = hf_gpt2
    e = AttentionExplorer(model, tok, "the cat sat")
    before = e.images["head"].value
    e.head.value = 3
    assert e.images["head"].value != before
    assert e.generate(3).steps == 3
    e.view = "neuron"
    assert e.images["neuron"].value

    bert, btok = hf_bert
    b = AttentionExplorer(bert, btok, "the cat sat on the mat .")
    assert b.tokens[0] == "[CLS]" and b.generate_button.disabled and "bidirectional" in b.generated_text.value
    with pytest.raises(ValueError, match="bidirectional"):
        b.generate(3)
    b.view = "query"
    b.query.value = 0  # [CLS] looks at the whole sentence, later tokens included
    assert b.shown["query"][1:].sum() > 0.1


def test_two_explorers_are_independent(gpt, char_tok):
    e1 = AttentionExplorer(gpt, char_tok, "the cat sat")
    e2 = AttentionExplorer(gpt, char_tok, "on the mat")
    image2 = e2.images["head"].value
    e1.layer.value, e1.head.value, e1.query.value = 1, 1, 2
    _click(e1, "head", *_pixel(e1, "head", 0, 1))
    e1.set_text("a cat")
    assert (e2.layer.value, e2.head.value, e2.query.value, e2.key) == (0, 0, 9, None)
    assert e2.images["head"].value == image2 and e2.tokens == list("on the mat")
    assert e1.widget is not e2.widget and e1.images["head"] is not e2.images["head"]


def test_display_has_a_picture_and_a_short_stable_text(gpt, char_tok):
    e1 = AttentionExplorer(gpt, char_tok, TEXT)
    e2 = AttentionExplorer(gpt, char_tok, TEXT)
    bundle = e1._repr_mimebundle_()
    expected = f"AttentionExplorer(GPT, 2 layers x 2 heads, {len(TEXT)} tokens)"
    assert bundle["text/plain"] == expected == repr(e1) == repr(e2) == repr(e1.widget)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == e1.images["head"].value, "the visible view, for GitHub"
    e1.head.value = 1
    assert e1._repr_mimebundle_()["text/plain"] == expected
    e1.view = "grid"
    assert _png(base64.b64decode(e1._repr_mimebundle_()["image/png"])).width > 200


# -- exports ---------------------------------------------------------------------------------------------


def _page_data(page: str) -> dict:
    import json
    import re

    found = re.search(r"<script type='application/json' id='data'>(.*?)</script>", page, re.S)
    assert found, "the page carries its data"
    return json.loads(found.group(1).replace("<\\/", "</"))


def test_exports_are_valid_self_contained_and_take_a_resolution(gpt, char_tok, tmp_path):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    for view in ("head", "grid", "lines", "neuron", "query", "rollout", "ablation"):
        png = e.export(tmp_path / f"{view}.png", view=view)
        assert _png(png.read_bytes()).width > 300
        svg = e.export(tmp_path / f"{view}.svg", view=view)
        assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
        page = e.export(tmp_path / f"{view}.html", view=view).read_text()
        assert page.startswith("<!DOCTYPE html>") and "data:image/" in page and "not why the model" in page
        assert "http://" not in page and "https://" not in page and "<link" not in page
        assert "<script src" not in page
    small = _png(e.export(tmp_path / "small.png", view="head", dpi=100).read_bytes())
    default = _png((tmp_path / "head.png").read_bytes())
    assert abs(default.width / small.width - 1.5) < 0.02, "the default export is 150 dpi"
    with pytest.raises(ValueError, match=".png, .svg or .html"):
        e.export(tmp_path / "head.jpg")
    with pytest.raises(ValueError, match="dpi"):
        e.export(tmp_path / "head.png", dpi=0)
    with pytest.raises(ValueError, match="generate"):
        e.export(tmp_path / "gen.png", view="generation")


def test_html_export_holds_every_head_and_the_widget_geometry(gpt, char_tok, tmp_path):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    e.layer.value, e.head.value, e.query.value = 1, 0, 7
    data = _page_data(e.export(tmp_path / "grid.html", view="grid").read_text())
    _, w = attention_weights(gpt, char_tok, TEXT)
    assert set(data["panels"]) == {"0-0", "0-1", "1-0", "1-1"} and data["first"] == "1-0" and data["query"] == 7
    got = torch.tensor(data["panels"]["1-1"]["w"])
    torch.testing.assert_close(got, w[1, 1], atol=1e-4, rtol=0)
    # the map's box in the page's image is where the cells are: its corners hold cells (0, 0) and (T-1, T-1)
    x0, y0, x1, y1 = data["box"]
    T = len(TEXT)
    image = _png(base64.b64decode(data["panels"]["1-1"]["src"].split(",", 1)[1]))
    assert (image.width, image.height) == (data["width"], data["height"])
    cell = (x1 - x0) / T
    for i, j in ((0, 0), (T - 1, T - 1), (T - 1, 0)):
        color = image.getpixel((int(x0 + (j + 0.5) * cell), int(y0 + (i + 0.5) * cell)))
        assert _close(color, _viridis(w[1, 1, i, j])), (i, j)


def test_generation_export_holds_the_text_and_every_step(gpt, char_tok, tmp_path):
    e = AttentionExplorer(gpt, char_tok, "the cat")
    trace = e.generate(5)
    page = e.export(tmp_path / "gen.html", view="generation").read_text()
    generated = "".join(trace.tokens[trace.prompt_len:])
    assert html_escape(generated) in page.replace("<span style='color:#1565c0'>", "").replace("</span>", "")
    assert page.count("<figure class='step'>") == 5 and "type='range'" in page
    overview = _png(e.export(tmp_path / "gen.png", view="generation").read_bytes())
    assert overview.width > 400


def test_static_fallback(gpt, char_tok):
    from matplotlib.figure import Figure

    tokens, w = attention_weights(gpt, char_tok, TEXT)
    fig = plot_attention(tokens, w, layer=1, head=0)
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "layer 1, head 0"
    with pytest.raises(ValueError, match="head must be in 0..1"):
        plot_attention(tokens, w, layer=0, head=2)
    e = AttentionExplorer(gpt, char_tok, TEXT)
    static = e.static_figure()
    assert isinstance(static, Figure) and len(static.axes) == 5  # two heatmaps with colour bars, the bars
    assert repr(static).startswith("<Figure size")


# -- inside the heads ------------------------------------------------------------------------------------


def _causal_softmax(scores: torch.Tensor, causal: bool) -> torch.Tensor:
    T = scores.size(-1)
    if causal:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("which", ["gpt", "masked", "hf_gpt2", "hf_bert"])
def test_head_vectors_give_the_attention_weights(which, gpt, char_tok, hf_gpt2, hf_bert):
    if which == "gpt":
        model, tok, text, causal = gpt, char_tok, TEXT, True
    elif which == "masked":
        torch.manual_seed(0)
        model = MaskedLM(MaskedLMConfig(vocab_size=char_tok.vocab_size, block_size=32, n_layer=2, n_head=2,
                                        n_embd=16)).eval()
        tok, text, causal = char_tok, "the cat sat", False
    elif which == "hf_gpt2":
        (model, tok), text, causal = hf_gpt2, "the cat sat", True
    else:
        (model, tok), text, causal = hf_bert, "the cat sat on the mat", False
    _, w = attention_weights(model, tok, text)
    vec = head_vectors(model, tok, text)
    L, H, T, _ = w.shape
    assert vec.q.shape[:3] == (L, H, T) and vec.k.shape == vec.q.shape == vec.v.shape
    for l in range(L):
        for h in range(H):
            torch.testing.assert_close(_causal_softmax(vec.scores(l, h), causal), w[l, h], atol=1e-5, rtol=1e-4)


def test_value_weighted_by_hand(gpt, char_tok):
    _, w = attention_weights(gpt, char_tok, TEXT)
    vec = head_vectors(gpt, char_tok, TEXT)
    vw = value_weighted(gpt, w, vec)
    torch.testing.assert_close(vw.sum(-1), torch.ones(w.shape[:3]))
    # layer 1, head 0 by hand: the head's slice of c_proj maps v_j into the residual stream
    hs = gpt.config.n_embd // gpt.config.n_head
    w_o = gpt.transformer.h[1].attn.c_proj.weight[:, :hs]  # (C, hs): columns of head 0
    size = torch.linalg.vector_norm(vec.v[1, 0] @ w_o.T, dim=-1)  # (T, hs) x (hs, C) -> (T,)
    expected = w[1, 0] * size
    torch.testing.assert_close(vw[1, 0], expected / expected.sum(-1, keepdim=True))
    with pytest.raises(ValueError, match="different"):
        value_weighted(gpt, w[:, :, :5, :5], vec)


def test_ablation_equals_zeroing_the_heads_output_weights(gpt, char_tok):
    import copy

    ab = ablate_head(gpt, char_tok, TEXT, layer=1, head=1, query=10)
    cut = copy.deepcopy(gpt)
    hs = gpt.config.n_embd // gpt.config.n_head
    with torch.no_grad():
        cut.transformer.h[1].attn.c_proj.weight[:, hs:2 * hs] = 0.0  # head 1 adds nothing to the residual
    idx = torch.tensor([char_tok.encode(TEXT)])
    _, loss_cut = cut(idx[:, :-1], idx[:, 1:])
    _, loss = gpt(idx[:, :-1], idx[:, 1:])
    assert abs(ab.loss_after - loss_cut.item()) < 1e-5 and abs(ab.loss_before - loss.item()) < 1e-5
    assert ab.loss_change != 0 and len(ab.top_before) == 5 and 0 < ab.top_before[0][1] <= 1
    with pytest.raises(ValueError, match="head must be in 0..1"):
        ablate_head(gpt, char_tok, TEXT, layer=0, head=2)
    with pytest.raises(TypeError, match="not supported"):
        head_vectors(torch.nn.Linear(2, 2), char_tok, TEXT)


def test_import_is_light():
    code = ("import sys, lmlab.viz; heavy = [m for m in ('matplotlib', 'ipywidgets', 'transformers', 'ipyevents') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
