"""lmlab.viz: attention weights from lmlab and Hugging Face models, rollout, the explorer widget, exports.

The widget is driven the way a learner drives it (setting its controls, clicking its buttons) and the
PNG bytes it shows are decoded and read back pixel by pixel, so the tests check the picture itself.
The real-browser test is tests/test_browser.py.
"""

from __future__ import annotations

import io
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import torch

from lmlab.models import GPT, GPTConfig, MaskedLM, MaskedLMConfig
from lmlab.tokenizers import BPETokenizer, CharTokenizer
from lmlab.viz import (
    AttentionExplorer, attention_rollout, attention_weights, generation_attention, plot_attention, token_label,
    token_strings,
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


def _heatmap_cell_colors(explorer: AttentionExplorer, view: str, cells: list[tuple[int, int]]):
    """Colors of the image that ``view`` shows, at the centres of the given (query, key) cells."""
    image = _png(explorer.images[view].value)
    transform = explorer._live[view].im.axes.transData  # data -> pixels, origin bottom left
    out = []
    for i, j in cells:
        x, y = transform.transform((j, i))
        out.append(image.getpixel((int(round(x)), int(round(image.height - y)))))
    return out


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
    transform = e._live["query"].ax.transData
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


def test_grid_button_opens_that_head(gpt, char_tok):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    assert len(e.thumbnails) == 4 and all(_png(t.value).width >= 48 for t in e.thumbnails.values())
    assert e.thumbnails[0, 0].value != e.thumbnails[1, 1].value
    e.view = "grid"
    e.grid_buttons[1, 0].click()
    assert (e.layer.value, e.head.value, e.view) == (1, 0, "head")
    assert e.grid_buttons[1, 0].button_style == "info" and e.grid_buttons[0, 0].button_style == ""
    torch.testing.assert_close(e.shown["head"], attention_weights(gpt, char_tok, TEXT)[1][1, 0])


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


def test_generation_steps_show_where_each_new_token_looked(gpt, char_tok):
    from lmlab.generate import generate

    prompt = "the cat"
    e = AttentionExplorer(gpt, char_tok, prompt)
    trace = e.generate(6)
    assert e.view == "generation" and trace.steps == 6 and e.step.max == 6
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


def test_hf_models_in_the_explorer(hf_gpt2, hf_bert):
    model, tok = hf_gpt2
    e = AttentionExplorer(model, tok, "the cat sat")
    before = e.images["head"].value
    e.head.value = 3
    assert e.images["head"].value != before
    assert e.generate(3).steps == 3

    bert, btok = hf_bert
    b = AttentionExplorer(bert, btok, "the cat sat on the mat .")
    assert b.tokens[0] == "[CLS]" and b.generate_button.disabled
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
    e1.set_text("a cat")
    assert (e2.layer.value, e2.head.value, e2.query.value) == (0, 0, 9)
    assert e2.images["head"].value == image2 and e2.tokens == list("on the mat")
    assert e1.widget is not e2.widget and e1.images["head"] is not e2.images["head"]


def test_text_repr_is_short_and_stable(gpt, char_tok):
    e1 = AttentionExplorer(gpt, char_tok, TEXT)
    e2 = AttentionExplorer(gpt, char_tok, TEXT)
    bundle = e1._repr_mimebundle_()
    expected = f"AttentionExplorer(GPT, 2 layers x 2 heads, {len(TEXT)} tokens)"
    assert bundle["text/plain"] == expected == repr(e1) == repr(e2) == repr(e1.widget)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    e1.head.value = 1
    assert e1._repr_mimebundle_()["text/plain"] == expected


def test_exports_are_valid_and_self_contained(gpt, char_tok, tmp_path):
    e = AttentionExplorer(gpt, char_tok, TEXT)
    for view in ("head", "grid", "query", "rollout"):
        png = e.export(tmp_path / f"{view}.png", view=view)
        assert _png(png.read_bytes()).width > 100
        svg = e.export(tmp_path / f"{view}.svg", view=view)
        assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
        page = e.export(tmp_path / f"{view}.html", view=view).read_text()
        assert page.startswith("<!DOCTYPE html>") and "data:image/" in page
        assert "http://" not in page and "https://" not in page and "<link" not in page
        assert "<script src" not in page
    grid = (tmp_path / "grid.html").read_text()
    assert grid.count("class='thumb'") == 4 and "<script>" in grid
    with pytest.raises(ValueError, match=".png, .svg or .html"):
        e.export(tmp_path / "head.jpg")
    with pytest.raises(ValueError, match="generate"):
        e.export(tmp_path / "gen.png", view="generation")


def test_static_fallback(gpt, char_tok):
    from matplotlib.figure import Figure

    tokens, w = attention_weights(gpt, char_tok, TEXT)
    fig = plot_attention(tokens, w, layer=1, head=0)
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "layer 1, head 0"
    with pytest.raises(ValueError, match="head must be in 0..1"):
        plot_attention(tokens, w, layer=0, head=2)
    e = AttentionExplorer(gpt, char_tok, TEXT)
    static = e.static_figure()
    assert isinstance(static, Figure) and len(static.axes) == 3
    assert repr(static).startswith("<Figure size")


def test_import_is_light():
    code = ("import sys, lmlab.viz; heavy = [m for m in ('matplotlib', 'ipywidgets', 'transformers') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
