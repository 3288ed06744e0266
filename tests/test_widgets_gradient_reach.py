"""The gradient-reach explorer of notebook 04: its curves are autograd's, and the sliders move them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from lmlab.widgets.gradient_reach import GradientReach, gradient_by_distance, reach


def test_gradient_by_distance_is_the_gradient_of_each_input():
    torch.manual_seed(0)
    net = nn.RNN(16, 8, batch_first=True).double()
    curve = gradient_by_distance(net, n_steps=5, batch=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=g, dtype=torch.float64)
    for d in range(5):  # one input at a time: the gradient of the last output with respect to x[:, 4 - d]
        x_d = x[:, 4 - d].clone().requires_grad_()
        xs = torch.cat([x[:, :4 - d], x_d[:, None], x[:, 5 - d:]], dim=1)
        net(xs)[0][:, -1].sum().backward()
        assert curve[d] == pytest.approx(x_d.grad.norm(dim=1).mean().item(), rel=1e-12)


def test_reach_counts_the_steps_above_the_fraction():
    assert reach(torch.tensor([1.0, 0.5, 0.02, 0.001, 0.5])) == 3  # the first fall below 1% counts
    assert reach(torch.tensor([2.0, 1.0, 4.0])) == 3  # never below: the whole window


def test_the_rnn_vanishes_below_scale_one_and_explodes_above():
    explorer = GradientReach()
    small, large = explorer.set(rnn_scale=0.5), explorer.set(rnn_scale=3.0)
    assert all(r <= 0.5 ** d * 10 for d, r in enumerate(small["rnn"]))  # ||U||^d bounds the product
    assert small["rnn"][-1] < 1e-12 and large["rnn"][-1] > 1e3
    reaches = [explorer.set(rnn_scale=s)["rnn_reach"] for s in (0.5, 0.9, 1.5)]
    assert reaches[0] < reaches[1] < reaches[2] == 60


def test_a_larger_forget_bias_carries_the_lstm_gradient_further():
    explorer = GradientReach()
    values = [explorer.set(forget_bias=b) for b in (-2.0, 0.0, 4.0)]
    assert values[0]["lstm_reach"] < values[1]["lstm_reach"] < values[2]["lstm_reach"] == 60
    assert values[2]["forget_gate"] > 0.95 and values[0]["forget_gate"] < 0.2
    assert values[1]["rnn"] == values[2]["rnn"]  # the RNN is not touched by the LSTM's slider


def test_the_sliders_and_set_agree():
    a, b = GradientReach(), GradientReach()
    png = a.image.value
    a.scale_slider.value = 1.5  # a learner moves the slider
    a.bias_slider.value = 2.0
    assert a.image.value != png and a.last_update_seconds is not None
    assert b.set(rnn_scale=1.5, forget_bias=2.0) == a.values  # the same curves from code
    rnn_steps, lstm_steps = (n if n < 60 else "all 60" for n in (a.values["rnn_reach"], a.values["lstm_reach"]))
    assert f"RNN's gradient stays above 1% of its d = 0 value for <b>{rnn_steps} steps</b>" in a.readout.value
    assert f"the LSTM's for <b>{lstm_steps} steps</b>" in a.readout.value
    assert b.scale_slider.value == 1.5 and b.bias_slider.value == 2.0


@pytest.mark.parametrize("kw, says", [(dict(rnn_scale=5.0), "rnn_scale must be a number from 0.25 to 3.0"),
                                      (dict(forget_bias="big"), "forget_bias must be a number from -2.0 to 5.0"),
                                      (dict(rnn_scale=True), "rnn_scale")])
def test_out_of_range_settings_are_refused(kw, says):
    explorer = GradientReach()
    before = explorer.values
    with pytest.raises(ValueError, match=says):
        explorer.set(**kw)
    assert explorer.values == before


def test_static_picture_and_display():
    explorer = GradientReach(rnn_scale=1.2)
    fig = explorer.static_figure()
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    bundle = explorer._repr_mimebundle_()
    assert "image/png" in bundle and bundle["text/plain"] == "GradientReach(rnn_scale=1.2, forget_bias=0.0)"
    assert not math.isnan(explorer.values["rnn"][-1])
