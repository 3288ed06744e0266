"""How far back a gradient reaches: a plain RNN against an LSTM, as their weights change (notebook 04).

    from lmlab.widgets.gradient_reach import GradientReach, gradient_by_distance

    gradient_by_distance(net)       # |dL/dx| for the input d steps before the last, d = 0 .. n_steps - 1
    explorer = GradientReach()      # the live widget: sliders for the RNN's recurrent scale, the LSTM's forget bias
    explorer.set(rnn_scale=1.5)     # the same from code; returns explorer.values
    explorer.static_figure()        # the picture, for readers who do not run the notebook

The RNN's recurrent matrix is ``rnn_scale`` times a fixed orthogonal matrix, so every singular value of U is
``rnn_scale``: below 1 the product of Jacobians shrinks at least geometrically (the tanh slopes only shrink it
more), above 1 it can grow. The LSTM keeps PyTorch's initial weights with ``forget_bias`` added to the forget
gate's bias: sigma(bias) is the fraction of the cell state kept at each step, the factor on the cell path.
Both networks run in float64 on one fixed random input, so the curves are the same on every machine.

Letters: B batch, T steps (n_steps), E input width, H hidden units.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from lmlab.viz.live import Blitter
from lmlab.viz.plots import new_figure
from lmlab.widgets.base import LiveWidget
from lmlab.widgets.one_thread import one_thread

__all__ = ["gradient_by_distance", "reach", "GradientReach"]

FLOOR, CEILING = 1e-16, 1e16  # the plot's range of gradient ratios


def gradient_by_distance(net: nn.Module, n_steps: int = 60, batch: int = 32, n_in: int = 16, seed: int = 0) -> Tensor:
    """|dL/dx_{T-1-d}| averaged over the batch, for d = 0 .. n_steps - 1; L is the sum of the last output.

    ``net`` is a batch-first ``nn.RNN``/``nn.LSTM`` (or anything that returns ``(output, state)``).
    Shape: (T,), index d = d steps before the last.
    """
    dtype = next(net.parameters()).dtype
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_steps, n_in, generator=g, dtype=dtype).requires_grad_()  # (B, T, E)
    out, _ = net(x)  # (B, T, H)
    out[:, -1].sum().backward()  # a loss that reads only the last step
    return x.grad.norm(dim=2).mean(0).flip(0).detach()  # (T,)


def reach(curve: Tensor, fraction: float = 0.01) -> int:
    """The number of steps back before the gradient first falls below ``fraction`` of its value at d = 0
    (``len(curve)`` when it never does)."""
    below = (curve < fraction * curve[0]).nonzero()
    return int(below[0]) if len(below) else len(curve)


class GradientReach(LiveWidget):
    """Two sliders, the RNN's recurrent scale and the LSTM's forget-gate bias; the gradient by distance.

    Args:
        rnn_scale: every singular value of the RNN's recurrent matrix (0.25 to 3).
        forget_bias: added to the LSTM's initial forget-gate bias (-2 to 5).
        hidden, n_steps, seed: the networks' width, the sequence length and the seed of weights and input.
        dpi: resolution of the picture.
    """

    def __init__(self, rnn_scale: float = 0.9, forget_bias: float = 0.0, hidden: int = 64, n_steps: int = 60,
                 seed: int = 0, dpi: int = 100):
        self._check(rnn_scale, forget_bias)
        self.rnn_scale, self.forget_bias, self.n_steps, self.dpi = float(rnn_scale), float(forget_bias), n_steps, dpi
        torch.manual_seed(seed)
        self.rnn = nn.RNN(16, hidden, batch_first=True).double()  # h_t = tanh(W x_t + U h_{t-1} + b)
        self.lstm = nn.LSTM(16, hidden, batch_first=True).double()
        self._Q, _ = torch.linalg.qr(torch.randn(hidden, hidden, dtype=torch.float64))  # orthogonal
        self._forget_init = self.lstm.bias_hh_l0[hidden:2 * hidden].detach().clone()  # gates i, f, g, o
        self._forget_total = float((self.lstm.bias_ih_l0[hidden:2 * hidden].detach() + self._forget_init).mean())
        self.seed, self.last_update_seconds, self._cache = seed, None, {}
        self._figure()
        self._build_widgets()
        self._refresh()

    @staticmethod
    def _check(rnn_scale: Any, forget_bias: Any) -> None:
        for name, value, low, high in (("rnn_scale", rnn_scale, 0.25, 3.0), ("forget_bias", forget_bias, -2.0, 5.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{name} must be a number from {low} to {high} (the slider's range), got {value!r}")

    def curves(self) -> tuple[Tensor, Tensor]:
        """The RNN's and the LSTM's gradient by distance at the current setting, each divided by its value at
        d = 0. Shapes: (T,), (T,)"""
        key = (self.rnn_scale, self.forget_bias)
        if key not in self._cache:
            self._cache = {key: self._compute()}
        return self._cache[key]

    def _compute(self) -> tuple[Tensor, Tensor]:
        H = self.lstm.hidden_size
        with torch.no_grad():
            self.rnn.weight_hh_l0.copy_(self.rnn_scale * self._Q)
            self.lstm.bias_hh_l0[H:2 * H] = self._forget_init + self.forget_bias
        with one_thread():  # small tensors: one thread answers faster (lmlab/widgets/one_thread.py)
            out = []
            for net in (self.rnn, self.lstm):
                net.zero_grad()
                curve = gradient_by_distance(net, self.n_steps, seed=self.seed)
                out.append(curve / curve[0])
        return out[0], out[1]

    @property
    def values(self) -> dict[str, Any]:
        """The setting and what the picture shows: the curves and how many steps back each reaches (1%)."""
        rnn, lstm = self.curves()
        keep = 1 / (1 + math.exp(-(self._forget_total + self.forget_bias)))  # sigma(bias), at zero input
        return {"rnn_scale": self.rnn_scale, "forget_bias": self.forget_bias, "rnn": rnn.tolist(),
                "lstm": lstm.tolist(), "rnn_reach": reach(rnn), "lstm_reach": reach(lstm), "forget_gate": keep}

    def set(self, rnn_scale: float | None = None, forget_bias: float | None = None) -> dict[str, Any]:
        """Change the setting as the sliders do; returns ``values``."""
        new = (self.rnn_scale if rnn_scale is None else rnn_scale,
               self.forget_bias if forget_bias is None else forget_bias)
        self._check(*new)
        self.rnn_scale, self.forget_bias = float(new[0]), float(new[1])
        self._sync_controls()
        self._refresh()
        return self.values

    # -- picture ----------------------------------------------------------------------------------------

    def _figure(self) -> None:
        fig = new_figure(6.4, 3.6, self.dpi)
        ax = fig.subplots()
        d = list(range(self.n_steps))
        ax.set(yscale="log", ylim=(FLOOR, CEILING), xlim=(0, self.n_steps - 1),
               xlabel="d: steps between the input and the last output",
               ylabel="gradient at d / gradient at d = 0")
        ax.axhline(1.0, color="0.75", lw=0.8)
        ax.axhline(0.01, color="0.75", lw=0.8, ls=":")
        ax.text(self.n_steps - 1, 0.012, "1%", ha="right", va="bottom", fontsize=9, color="0.45")
        (self._rnn_line,) = ax.plot(d, [1.0] * len(d), color="tab:blue", lw=2, label="plain RNN")
        (self._lstm_line,) = ax.plot(d, [1.0] * len(d), color="tab:orange", lw=2, label="LSTM")
        ax.legend(fontsize=9, loc="lower left")
        self._title = ax.set_title(" ", fontsize=10)
        self.fig = fig
        self._blit = Blitter(fig, [self._rnn_line, self._lstm_line, self._title], self.dpi)

    def render(self) -> bytes:
        """The picture for the current setting, as PNG bytes."""
        rnn, lstm = self.curves()
        self._rnn_line.set_ydata(rnn.clamp(FLOOR, CEILING).tolist())
        self._lstm_line.set_ydata(lstm.clamp(FLOOR, CEILING).tolist())
        self._title.set_text(f"RNN: singular values of U = {self.rnn_scale:.2f};  LSTM: forget bias "
                             f"{self.forget_bias:+.1f}")
        return self._blit.png()

    # -- widgets ----------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as widgets

        style = {"description_width": "150px"}
        layout = widgets.Layout(width="420px")
        self.scale_slider = widgets.FloatSlider(value=self.rnn_scale, min=0.25, max=3.0, step=0.05,
                                                description="RNN: scale of U", style=style, layout=layout)
        self.bias_slider = widgets.FloatSlider(value=self.forget_bias, min=-2.0, max=5.0, step=0.5,
                                               description="LSTM: forget bias +", style=style, layout=layout)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.readout = widgets.HTML()
        for control in (self.scale_slider, self.bias_slider):
            control.observe(self._on_control, names="value")
        self.widget = widgets.VBox([self.scale_slider, self.bias_slider, self.image, self.readout])
        self.widget.add_class("lmlab-gradient-reach")

    def _on_control(self, change: dict) -> None:
        self.rnn_scale, self.forget_bias = float(self.scale_slider.value), float(self.bias_slider.value)
        self._refresh()

    def _sync_controls(self) -> None:
        self._set_controls(((self.scale_slider, self.rnn_scale), (self.bias_slider, self.forget_bias)))

    def _refresh(self) -> None:
        t0 = time.perf_counter()
        self.image.value = self.render()
        v = self.values

        def steps(n: int) -> str:
            return f"all {n} steps" if n == self.n_steps else f"{n} steps"

        self.readout.value = (
            f"The RNN's gradient stays above 1% of its d = 0 value for <b>{steps(v['rnn_reach'])}</b>, the LSTM's "
            f"for <b>{steps(v['lstm_reach'])}</b>. The LSTM's forget gate keeps about {v['forget_gate']:.2f} of "
            "its cell state per step at this bias (with zero input).")
        self.last_update_seconds = time.perf_counter() - t0

    def __repr__(self) -> str:
        return f"GradientReach(rnn_scale={self.rnn_scale}, forget_bias={self.forget_bias})"
