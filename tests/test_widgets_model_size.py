"""The size explorer of notebook 06: its counts are those of lmlab's GPT, and the controls change them."""

from __future__ import annotations

import pytest

from lmlab.models import GPT, GPTConfig
from lmlab.widgets.model_size import SizeExplorer, gpt_size


@pytest.mark.parametrize("V, T, L, C, nh", [(65, 64, 2, 64, 4), (100, 32, 3, 48, 2), (7, 16, 1, 32, 1)])
def test_parameter_count_matches_the_model(V, T, L, C, nh):
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=nh, n_embd=C))
    size = gpt_size(V, T, L, C)
    assert size["total"] == sum(p.numel() for p in model.parameters())
    assert size["parts"]["position embedding"] == model.transformer.wpe.weight.numel()
    assert size["flops_per_token"] == 6 * (size["total"] - T * C) + 12 * L * T * C


def test_gpt2_small_has_124m_parameters():
    assert round(gpt_size(50257, 1024, 12, 768)["total"] / 1e6) == 124


def test_controls_change_the_values_and_the_picture():
    explorer = SizeExplorer()
    before, png = explorer.values, explorer.image.value
    explorer.layers.value = 4  # a learner moves the slider
    after = explorer.values
    blocks = lambda v: v["parts"]["attention"] + v["parts"]["MLP"]  # noqa: E731
    assert blocks(after) == 2 * blocks(before) and explorer.image.value != png
    explorer.width.value = 128
    assert explorer.values["n_embd"] == 128 and f"{explorer.values['total']:,}" in explorer.readout.value
    assert explorer.last_update_seconds is not None


def test_set_matches_the_controls_and_checks_its_input():
    explorer = SizeExplorer()
    values = explorer.set(n_layer=12, n_embd=768, block_size=1024, vocab_size=50257)
    assert explorer.layers.value == 12 and explorer.vocab.value == 50257
    assert values["total"] == gpt_size(50257, 1024, 12, 768)["total"]
    for bad in ({"n_layer": 0}, {"n_embd": 100}, {"block_size": 100}, {"vocab_size": 3}):
        with pytest.raises(ValueError):
            explorer.set(**bad)
    assert explorer.values["n_layer"] == 12  # a refused setting changes nothing
    with pytest.raises(ValueError, match="n_embd"):
        gpt_size(65, 64, 2, 0)


def test_static_figure_holds_a_picture():
    assert SizeExplorer().static_figure()._repr_png_().startswith(b"\x89PNG")
