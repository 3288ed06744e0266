"""The next-token explorer of notebook 07: the bars are the distribution generate samples from."""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.generate import generate
from lmlab.widgets.next_token import NextTokenExplorer, entropy, next_token_probs

LOGITS = torch.tensor([3.0, 2.0, 1.5, 1.0, 0.0, -1.0, -2.0, -4.0])
LABELS = list("abcdefgh")


def test_probs_follow_temperature_top_k_and_top_p():
    assert torch.allclose(next_token_probs(LOGITS), torch.softmax(LOGITS.double(), 0))
    assert torch.allclose(next_token_probs(LOGITS, temperature=2.0), torch.softmax(LOGITS.double() / 2, 0))
    top2 = next_token_probs(LOGITS, top_k=2)
    assert int((top2 > 0).sum()) == 2 and math.isclose(float(top2.sum()), 1.0)
    p = torch.softmax(LOGITS.double(), 0)
    nucleus = next_token_probs(LOGITS, top_p=0.8)
    kept = int((nucleus > 0).sum())
    assert p[:kept].sum() >= 0.8 > p[:kept - 1].sum()  # the smallest set of top tokens that reaches 0.8


def test_generate_samples_from_the_same_distribution():
    class Fixed(torch.nn.Module):  # a "model" whose logits are always LOGITS
        def forward(self, idx, targets=None):
            return LOGITS.expand(*idx.shape, -1), None

    g = torch.Generator().manual_seed(0)
    out = generate(Fixed(), torch.zeros(1, 1, dtype=torch.long), max_new_tokens=4000, temperature=0.7, top_k=3,
                   generator=g)
    counts = torch.bincount(out[0, 1:], minlength=len(LOGITS)).double() / 4000
    assert torch.allclose(counts, next_token_probs(LOGITS, temperature=0.7, top_k=3), atol=0.03)


def test_controls_change_the_values_and_the_picture():
    explorer = NextTokenExplorer(LOGITS, LABELS, n_shown=6)
    before, png = explorer.values, explorer.image.value
    assert before["kept"] == 8 and math.isclose(before["entropy"], before["entropy_model"])
    explorer.temp_slider.value = 3.0  # a learner moves the slider
    assert explorer.values["entropy"] > before["entropy"] and explorer.image.value != png
    explorer.k_slider.value = 3
    assert explorer.values["kept"] == 3 and "3 of 8 tokens" in explorer.readout.value
    explorer.k_slider.value = 0  # off again
    explorer.p_slider.value = 0.5
    assert explorer.values["top_k"] is None and explorer.values["kept"] < 8
    assert explorer.last_update_seconds is not None


def test_set_matches_the_sliders_and_checks_its_input():
    explorer = NextTokenExplorer(LOGITS, LABELS, n_shown=4)
    values = explorer.set(temperature=0.5, top_k=2)
    assert explorer.temp_slider.value == pytest.approx(0.5, rel=0.05) and explorer.k_slider.value == 2
    assert values["probs"][:2] == [round(float(p), 6) for p in next_token_probs(LOGITS, 0.5, 2)[:2]]
    with pytest.raises(ValueError):
        explorer.set(temperature=0.0)
    with pytest.raises(ValueError):
        explorer.set(top_p=1.5)
    assert explorer.values["temperature"] == 0.5  # a refused setting changes nothing
    with pytest.raises(ValueError, match="one string per token"):
        NextTokenExplorer(LOGITS, LABELS[:3])
    with pytest.raises(ValueError, match="finite"):
        next_token_probs(torch.tensor([1.0, float("nan")]))


def test_entropy_and_static_figure():
    assert math.isclose(entropy(torch.full((4,), 0.25, dtype=torch.float64)), math.log(4))
    assert NextTokenExplorer(LOGITS, LABELS).static_figure()._repr_png_().startswith(b"\x89PNG")
