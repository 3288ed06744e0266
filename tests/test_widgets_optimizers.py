"""lmlab.widgets.optimizers: the learning rate and the optimizer on the bigram model (notebook 02).

The hand-written updates are checked against torch.optim; the widget is driven through its controls and the
curve it draws is read back from the picture (the blue line's height at its last step).
"""

from __future__ import annotations

import base64
import io
import math

import pytest
import torch

from lmlab.widgets.optimizers import OptimizerExplorer, count_grad, count_loss, plot_training_loop, training_curve

G = torch.Generator().manual_seed(0)
C = torch.randint(0, 50, (12, 12), generator=G).float() * (torch.rand(12, 12, generator=G) < 0.5)


def torch_optim_curve(cls, lr, steps, **kw):
    W = torch.zeros(12, 12, requires_grad=True)
    opt = cls([W], lr=lr, **kw)
    losses = []
    for _ in range(steps):
        loss = -(C * torch.log_softmax(W, dim=1)).sum() / C.sum()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


@pytest.mark.parametrize("name, cls, kw, lr", [
    ("SGD", torch.optim.SGD, {}, 20.0),
    ("momentum", torch.optim.SGD, {"momentum": 0.9}, 5.0),
    ("Adam", torch.optim.Adam, {}, 0.1),
])
def test_the_updates_are_torch_optims(name, cls, kw, lr):
    ours = training_curve(C, name, lr, 30)
    assert len(ours) == 31
    assert ours[:30] == pytest.approx(torch_optim_curve(cls, lr, 30, **kw), rel=1e-5)


def test_count_grad_is_autograds():
    W = torch.randn(12, 12, generator=G, requires_grad=True)
    (-(C * torch.log_softmax(W, dim=1)).sum() / C.sum()).backward()
    assert torch.allclose(count_grad(W.detach(), C), W.grad, atol=1e-6)
    assert count_loss(torch.zeros(12, 12), C) == pytest.approx(math.log(12), rel=1e-6)


def test_a_huge_learning_rate_diverges_and_a_good_one_converges():
    assert training_curve(C, "SGD", 1e6, 50)[-1] > math.log(12)
    good = training_curve(C, "Adam", 0.3, 300)
    assert good[-1] < good[0] - 0.5


@pytest.mark.parametrize("args, message", [
    ((C, "RMSprop", 1.0), "optimizer must be one of"),
    ((C, "SGD", -1.0), "lr must be > 0"),
    ((C, "SGD", 1.0, 0), "steps must be a positive int"),
    ((torch.ones(3, 4), "SGD", 1.0), "square"),
    ((-C, "SGD", 1.0), "counts"),
])
def test_bad_settings_say_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        training_curve(*args)


@pytest.fixture(scope="module")
def explorer():
    return OptimizerExplorer(C, "SGD", lr=1.0, steps=50)


def _blue_line_bottom(png: bytes) -> int:
    """The lowest pixel row (largest y) of the tab:blue curve: lower on the picture = lower loss."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    rows = [y for x in range(0, image.width, 2) for y in range(image.height)
            if all(abs(a - b) <= 25 for a, b in zip(image.getpixel((x, y)), (31, 119, 180)))]
    assert rows, "no blue curve in the picture"
    return max(rows)


def test_a_bigger_learning_rate_from_the_slider_goes_lower(explorer):
    explorer.set(optimizer="SGD", lr=1.0, steps=50)
    slow_png, slow = explorer.image.value, explorer.values
    explorer.lr_slider.value = 30.0  # as the learner does
    fast = explorer.values
    assert fast["lr"] == pytest.approx(30.0) and fast["final_loss"] < slow["final_loss"]
    assert fast["curve"] == pytest.approx(training_curve(C, "SGD", 30.0, 50))
    assert explorer.previous == pytest.approx(slow["curve"])  # the gray curve: the setting before
    assert _blue_line_bottom(explorer.image.value) > _blue_line_bottom(slow_png) + 10
    assert "above the minimum" in explorer.readout.value and explorer.last_update_seconds is not None


def test_the_optimizer_buttons_and_divergence(explorer):
    explorer.set(lr=1e4)
    assert explorer.values["diverged"] and "overshoot" in explorer.readout.value
    explorer.optimizer_buttons.value = "Adam"
    explorer.lr_slider.value = 0.1
    v = explorer.values
    assert v["optimizer"] == "Adam" and not v["diverged"]
    with pytest.raises(ValueError, match="optimizer must be one of"):
        explorer.set(optimizer="sgd")
    assert explorer.values["optimizer"] == "Adam"  # a bad setting changes nothing


def test_the_slider_answers_on_one_thread_with_the_same_numbers(explorer, monkeypatch):
    from lmlab.widgets import optimizers
    from lmlab.widgets.one_thread import one_thread

    threads_seen = []

    def recording_curve(*args):
        threads_seen.append(torch.get_num_threads())
        return training_curve(*args)

    explorer.set(optimizer="SGD", lr=1.0)
    monkeypatch.setattr(optimizers, "training_curve", recording_curve)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        expected = training_curve(C, "SGD", 7.0, explorer.steps)  # computed on 3 threads
        explorer.lr_slider.value = 7.0
        assert threads_seen == [1] and torch.get_num_threads() == 3  # one thread inside, restored after
        assert explorer.values["curve"] == expected  # exactly the same numbers
        with pytest.raises(RuntimeError), one_thread():
            raise RuntimeError("an update that fails")
        assert torch.get_num_threads() == 3  # restored after an error too
    finally:
        torch.set_num_threads(before)


def test_display_has_the_widget_a_static_picture_and_a_stable_text(explorer):
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert bundle["text/plain"] == "OptimizerExplorer(V=12, optimizers=['SGD', 'momentum', 'Adam'])"
    assert explorer.static_figure()._repr_png_().startswith(b"\x89PNG")


def test_training_loop_diagram_has_the_five_steps():
    fig = plot_training_loop()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for step in ("1. a batch", "2. forward", "3. backward", "4. update", "5. zero the gradients"):
        assert step in texts
    assert fig._repr_png_().startswith(b"\x89PNG")
