"""The score explorer of notebook 05: its numbers are softmax(q k / sqrt(d_k)), and moving a control changes them."""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.widgets.attention_scores import ScoreExplorer, padded, parse_keys, score_weights


def test_weights_are_the_scaled_softmax_of_the_dot_products():
    q, k = padded([0.5, -1.0], [[2, 0], [0, 1], [1, 1]], d_k=32, seed=3)
    v = score_weights([0.5, -1.0], [[2, 0], [0, 1], [1, 1]], d_k=32, seed=3)
    assert q.shape == (32,) and k.shape == (3, 32)
    assert torch.allclose(torch.tensor(v["scores"], dtype=torch.float64), k @ q)
    expected = torch.softmax(k @ q / math.sqrt(32), dim=0)
    assert torch.allclose(torch.tensor(v["weights"], dtype=torch.float64), expected)
    assert abs(sum(v["weights_unscaled"]) - 1) < 1e-9


def test_two_components_are_exact_and_large_d_k_sharpens_the_unscaled_softmax():
    v = score_weights([0, 2], [[2, 0], [0, 1], [1, 1]], d_k=2)
    assert v["scores"] == [0.0, 2.0, 2.0]
    sharp = score_weights([0, 2], [[2, 0], [0, 1], [1, 1]], d_k=512)
    assert max(sharp["weights_unscaled"]) > 0.99 > max(sharp["weights"])


def test_controls_change_the_values_and_the_picture():
    explorer = ScoreExplorer()
    before, png = explorer.values, explorer.image.value
    explorer.qx.value = 2.5  # a learner moves the slider
    assert explorer.values["query"] == [2.5, 2.0]
    assert explorer.values["weights"] != before["weights"] and explorer.image.value != png
    explorer.keys_box.value = "1, 0; -1, 0"
    assert explorer.values["keys"] == [[1.0, 0.0], [-1.0, 0.0]] and len(explorer.values["weights"]) == 2
    explorer.d_k_slider.value = 128
    assert explorer.values["d_k"] == 128 and "128" in explorer.readout.value
    assert explorer.last_update_seconds is not None


def test_bad_keys_text_keeps_the_last_good_keys_and_says_why():
    explorer = ScoreExplorer()
    keys = explorer.values["keys"]
    explorer.keys_box.value = "1, 2, 3"
    assert explorer.values["keys"] == keys
    assert "two numbers" in explorer.readout.value


def test_set_matches_the_sliders_and_checks_its_input():
    explorer = ScoreExplorer()
    values = explorer.set(query=[1.0, -1.0], d_k=8)
    assert explorer.qx.value == 1.0 and explorer.d_k_slider.value == 8
    assert values == score_weights([1.0, -1.0], explorer.keys, 8) | {"query": [1.0, -1.0], "keys": explorer.keys,
                                                                      "d_k": 8}
    with pytest.raises(ValueError, match="d_k must be one of"):
        explorer.set(d_k=3)
    with pytest.raises(ValueError, match="range"):
        explorer.set(query=[9.0, 0.0])
    with pytest.raises(ValueError, match="two numbers"):
        parse_keys("1 2 3")
    with pytest.raises(ValueError, match="not a number"):
        parse_keys("1, x")


def test_static_figure_and_mimebundle_hold_a_picture():
    explorer = ScoreExplorer()
    assert explorer.static_figure()._repr_png_().startswith(b"\x89PNG")
    bundle = explorer._repr_mimebundle_()
    assert "image/png" in bundle and bundle["text/plain"] == "ScoreExplorer(3 keys, d_k=2)"
