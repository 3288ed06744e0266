"""lmlab.widgets.smoothing: add-k smoothing against validation loss (notebook 01).

The numbers are checked against NGramLM itself; the widget is driven as a learner drives it (its sliders
and menu), and the PNG it shows is decoded: the red marker of the current k must move right when k grows.
"""

from __future__ import annotations

import base64
import io
import math

import pytest
import torch

from lmlab.data import MarkovSource
from lmlab.models import NGramLM
from lmlab.widgets.smoothing import SmoothingExplorer, k_sweep, ngram_counts, validation_loss

SRC = MarkovSource("abcd", order=2, seed=0)
TRAIN = SRC.sample_ids(3000, seed=0)
VAL = SRC.sample_ids(2000, seed=1)


def ngram_loss(train, val, V, n, k):
    val = torch.tensor(val)
    _, loss = NGramLM(V, n, k).fit(train)(val[None, :-1], val[None, 1:])
    return loss.item()


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("k", [0.0, 0.01, 0.7, 20.0])
def test_validation_loss_is_ngramlm_loss(n, k):
    expected = ngram_loss(TRAIN[:300], VAL, 4, n, k)
    got = validation_loss(TRAIN[:300], VAL, 4, n, k)
    assert got == pytest.approx(expected, rel=1e-5) or (math.isinf(got) and math.isinf(expected))


def test_k_sweep_has_an_interior_minimum_and_infinity_at_zero():
    ks = [0.0, 0.001, 0.1, 1.0, 100.0]
    losses = k_sweep(TRAIN[:200], VAL, 4, 3, ks)
    assert math.isinf(losses[0])  # unseen trigrams in the validation text
    assert min(losses[1:]) < losses[1] and min(losses[1:]) < losses[-1]
    assert losses == [validation_loss(TRAIN[:200], VAL, 4, 3, k) for k in ks]


def test_ngram_counts_by_hand():
    assert ngram_counts(torch.tensor([0, 1, 0, 1]), 2, 2).tolist() == [[0, 2], [1, 0]]
    counts = ngram_counts(torch.tensor([0, 1, 1, 0]), 2, 3)  # (0,1)->1, (1,1)->0
    assert counts.tolist() == [[0, 0], [0, 1], [0, 0], [1, 0]]


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab_size": 1}, "vocab_size"),
    ({"n": 4}, "n must be 2"),
    ({"sizes": [10, 10**6]}, "sizes"),
    ({"ks": [0.0, 1.0]}, "ks"),
    ({"alphabet": "ab"}, "alphabet"),
    ({"true_table": torch.ones(3, 4)}, "true_table"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    args = {"train_ids": TRAIN, "val_ids": VAL, "vocab_size": 4, "n": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        SmoothingExplorer(**args)


def test_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match="ids in"):
        validation_loss([0, 1, 7], [0, 1], 4, 2, 0.1)


@pytest.fixture(scope="module")
def explorer():
    return SmoothingExplorer(TRAIN, VAL, 4, n=3, sizes=[100, 1000, 3000], alphabet="abcd", k=0.01,
                             floor=SRC.entropy_rate(), true_table=SRC.transition_matrix)


def _red_x(png: bytes) -> float:
    """Mean x of the pure tab:red pixels (the current-k marker) in the left half of the picture."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    xs = [x for x in range(image.width // 2) for y in range(image.height)
          if all(abs(a - b) <= 20 for a, b in zip(image.getpixel((x, y)), (214, 39, 40)))]
    assert xs, "no red marker in the picture"
    return sum(xs) / len(xs)


def test_moving_the_k_slider_moves_the_marker_and_changes_the_values(explorer):
    explorer.set(k=0.01, n_train=1000)
    before_png, before = explorer.image.value, explorer.values
    explorer.k_slider.value = 3.0  # as the learner does
    after_png, after = explorer.image.value, explorer.values
    assert after["k"] == pytest.approx(3.0) and after["val_loss"] != before["val_loss"]
    assert after["val_loss"] == pytest.approx(validation_loss(TRAIN[:1000], VAL, 4, 3, 3.0), rel=1e-9)
    assert _red_x(after_png) > _red_x(before_png) + 20
    assert after["probs"] != before["probs"]  # the row is flatter
    assert max(after["probs"]) < max(before["probs"])
    assert "Too much smoothing" in explorer.readout.value
    assert explorer.last_update_seconds is not None


def test_more_training_text_lowers_the_best_loss_and_the_best_k(explorer):
    small = explorer.set(n_train=100)
    big = explorer.set(n_train=3000)
    assert big["best_loss"] < small["best_loss"] and big["best_k"] <= small["best_k"]
    assert explorer.size_slider.value == 3000  # set() moves the controls too
    assert big["best_loss"] == pytest.approx(min(explorer.curve(3000)))


def test_the_context_menu_changes_the_row(explorer):
    explorer.set(n_train=1000, k=0.1)
    first = explorer.values
    explorer.context_menu.value = (explorer.context + 1) % 16
    second = explorer.values
    assert second["context"] != first["context"] and second["probs"] != first["probs"]
    counts = ngram_counts(torch.tensor(TRAIN[:1000]), 4, 3)[explorer.context]
    expected = (counts + 0.1) / (counts.sum() + 0.4)
    assert second["probs"] == pytest.approx(expected.tolist(), abs=1e-6)
    with pytest.raises(ValueError, match="context must be one of"):
        explorer.set(context="zz")


def test_display_has_the_widget_a_static_picture_and_a_stable_text(explorer):
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG")
    assert bundle["text/plain"] == "SmoothingExplorer(n=3, vocab_size=4, sizes=[100, 1000, 3000])"
    fig = explorer.static_figure()
    assert fig._repr_png_().startswith(b"\x89PNG")
