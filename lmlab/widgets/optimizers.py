"""The learning rate and the optimizer on the bigram model (notebook 02), and a diagram of the training loop.

    from lmlab.widgets.optimizers import OptimizerExplorer, plot_training_loop, training_curve

    explorer = OptimizerExplorer(C_train)            # C_train: the (V, V) table of bigram counts
    explorer                                         # the live widget: optimizer, learning rate, steps
    explorer.set(optimizer="Adam", lr=0.1)           # the same from code; returns explorer.values
    training_curve(C_train, "SGD", lr=100.0)         # the numbers the widget draws, as a plain function
    plot_training_loop()                             # the loop every training run repeats, as a picture

The model is notebook 02's: a (V, V) table of logits W, trained full-batch on the mean cross-entropy of the
bigram counts C, from W = 0 (uniform). The gradient is the closed form of notebook 02, section 3,
``(c(a) softmax(W_a) - C_a) / N`` per row, and the three optimizers are written out below (the same updates as
``torch.optim.SGD``, ``SGD(momentum=0.9)`` and ``Adam``, which the tests check), so that 100 steps take a few
milliseconds and the picture follows the slider.

Letters: V vocab size.
"""

from __future__ import annotations

import html
import math
import time
from typing import Any

import torch
from torch import Tensor

from lmlab.viz.live import Blitter
from lmlab.viz.plots import figure_bytes, new_figure
from lmlab.widgets.base import LiveWidget
from lmlab.widgets.one_thread import one_thread

__all__ = ["OPTIMIZERS", "count_loss", "count_grad", "training_curve", "OptimizerExplorer", "plot_training_loop"]

OPTIMIZERS = ("SGD", "momentum", "Adam")  # plain gradient descent; SGD with momentum 0.9; Adam (0.9, 0.999)
MOMENTUM, BETAS, EPS = 0.9, (0.9, 0.999), 1e-8


def count_loss(W: Tensor, C: Tensor) -> float:
    """Mean cross-entropy of the pairs counted in C under the logits table W. Shapes: (V, V), (V, V) -> float"""
    return float(-(C * torch.log_softmax(W, dim=1)).sum() / C.sum())


def count_grad(W: Tensor, C: Tensor) -> Tensor:
    """Gradient of ``count_loss`` with respect to W: (c(a) softmax(W_a) - C_a) / N per row. Shape: (V, V)"""
    return (C.sum(1, keepdim=True) * torch.softmax(W, dim=1) - C) / C.sum()


def _check_counts(C: Any) -> Tensor:
    if not isinstance(C, Tensor) or C.dim() != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be a square (V, V) tensor of bigram counts, got {type(C).__name__} "
                         f"{tuple(C.shape) if isinstance(C, Tensor) else ''}")
    if not bool((C >= 0).all()) or not C.sum() > 0:
        raise ValueError("C must hold counts: numbers >= 0, not all zero")
    return C.float()  # float32, as notebook 02's tables


def training_curve(C: Tensor, optimizer: str, lr: float, steps: int = 100) -> list[float]:
    """Training loss before each of ``steps`` full-batch updates from W = 0 (uniform), and after the last.

    A run whose loss stops being finite ends there (its last entry is ``inf``): it diverged.

    Example:
        >>> training_curve(torch.tensor([[0.0, 3.0], [1.0, 0.0]]), "SGD", lr=1.0, steps=2)   # 3 losses
    """
    C = _check_counts(C)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    W = torch.zeros_like(C)  # (V, V) logits: uniform start
    m, v = torch.zeros_like(W), torch.zeros_like(W)  # momentum buffer / Adam's first and second moments
    row_totals, N = C.sum(1, keepdim=True), C.sum()  # (V, 1) c(a), and N
    logp = torch.log_softmax(W, dim=1)  # (V, V)
    losses = [float(-(C * logp).sum() / N)]
    for t in range(1, steps + 1):
        g = (row_totals * logp.exp() - C) / N  # count_grad(W, C), from the log-softmax already computed
        if optimizer == "SGD":
            W = W - lr * g
        elif optimizer == "momentum":  # as torch.optim.SGD(momentum=0.9): v <- mu v + g, W <- W - lr v
            m = MOMENTUM * m + g if t > 1 else g
            W = W - lr * m
        else:  # Adam: running mean and mean square of g, bias-corrected
            m = BETAS[0] * m + (1 - BETAS[0]) * g
            v = BETAS[1] * v + (1 - BETAS[1]) * g * g
            m_hat, v_hat = m / (1 - BETAS[0] ** t), v / (1 - BETAS[1] ** t)
            W = W - lr * m_hat / (v_hat.sqrt() + EPS)
        logp = torch.log_softmax(W, dim=1)
        loss = float(-(C * logp).sum() / N)  # count_loss(W, C)
        if not math.isfinite(loss):
            losses.append(math.inf)
            break
        losses.append(loss)
    return losses


class OptimizerExplorer(LiveWidget):
    """Choose the optimizer, the learning rate and the number of steps; see the training loss of the bigram.

    Args:
        C: the (V, V) table of training bigram counts.
        optimizer, lr, steps: the first setting shown.
        dpi: resolution of the picture.

    The previous setting stays on the picture as a gray curve, for comparison.
    """

    def __init__(self, C: Tensor, optimizer: str = "SGD", lr: float = 100.0, steps: int = 100, *, dpi: int = 100):
        self.C = _check_counts(C)
        self.dpi = dpi
        seen = self.C > 0
        mle = self.C / self.C.sum(1, keepdim=True).clamp_min(1)  # (V, V) the counting solution
        self.mle_loss = float(-(self.C[seen] * mle[seen].log()).sum() / self.C.sum())
        self.start_loss = math.log(self.C.shape[0])
        self.optimizer, self.lr, self.steps = optimizer, float(lr), steps
        self.previous: list[float] | None = None
        self.last_update_seconds: float | None = None
        self._curve = training_curve(self.C, optimizer, self.lr, steps)
        self._figure()
        self._build_widgets()
        self._refresh()

    @property
    def values(self) -> dict[str, Any]:
        """The current setting and its result as plain numbers."""
        curve = self._curve
        return {"optimizer": self.optimizer, "lr": self.lr, "steps": self.steps, "final_loss": curve[-1],
                "diverged": not math.isfinite(curve[-1]) or curve[-1] > curve[0], "mle_loss": self.mle_loss,
                "curve": list(curve)}

    def set(self, optimizer: str | None = None, lr: float | None = None, steps: int | None = None) -> dict[str, Any]:
        """Change the setting as the controls do; returns ``values``."""
        optimizer = self.optimizer if optimizer is None else optimizer
        lr = self.lr if lr is None else float(lr)
        steps = self.steps if steps is None else steps
        curve = training_curve(self.C, optimizer, lr, steps)  # raises ValueError on a bad setting
        self.previous, self._curve = self._curve, curve
        self.optimizer, self.lr, self.steps = optimizer, lr, steps
        self._sync_controls()
        self._refresh(train=False)
        return self.values

    # -- picture ----------------------------------------------------------------------------------------

    def _figure(self) -> None:
        fig = new_figure(6.4, 3.2, self.dpi)
        ax = fig.add_subplot()
        ax.set(xlim=(0, 300), ylim=(self.mle_loss - 0.15, self.start_loss + 1.0), xlabel="step (full-batch update)",
               ylabel="training loss (nats/char)")
        ax.axhline(self.mle_loss, color="k", ls=":", lw=1, label="MLE (the minimum)")
        ax.axhline(self.start_loss, color="gray", ls="--", lw=1, label="start: uniform, ln V")
        (self._previous_line,) = ax.plot([], [], color="0.7", lw=1.5, label="previous setting")
        (self._line,) = ax.plot([], [], color="tab:blue", lw=2, label="this setting")
        self._marker = ax.plot([], [], "x", color="tab:red", ms=10, mew=2)[0]
        ax.legend(fontsize=9, loc="upper right")
        self._title = ax.set_title(" ", fontsize=10)
        self.ax, self.fig = ax, fig
        self._blit = Blitter(fig, [self._previous_line, self._line, self._marker, self._title, ax.xaxis], self.dpi)

    def render(self) -> bytes:
        """The picture for the current setting, as PNG bytes."""
        top = self.start_loss + 1.0
        self.ax.set_xlim(0, max(self.steps, 10))
        self._line.set_data(range(len(self._curve)), [min(x, top + 1) for x in self._curve])
        if self.previous is not None:
            self._previous_line.set_data(range(len(self.previous)), [min(x, top + 1) for x in self.previous])
        v = self.values
        if v["diverged"]:
            last = len(self._curve) - 1
            self._marker.set_data([last], [min(self._curve[-1], top - 0.05)])
        else:
            self._marker.set_data([], [])
        result = "diverged" if v["diverged"] else f"final loss {v['final_loss']:.3f}"
        self._title.set_text(f"{self.optimizer}, lr = {self.lr:.3g}, {self.steps} steps: {result}")
        return self._blit.png()

    # -- widgets ----------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as widgets

        self.optimizer_buttons = widgets.ToggleButtons(options=list(OPTIMIZERS), value=self.optimizer,
                                                       description="optimizer")
        self.lr_slider = widgets.FloatLogSlider(value=self.lr, base=10, min=-3, max=4, step=0.1, description="lr",
                                                readout_format=".3g", continuous_update=False)
        self.steps_slider = widgets.IntSlider(value=self.steps, min=10, max=300, step=10, description="steps",
                                              continuous_update=False)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.readout = widgets.HTML()
        for control in (self.optimizer_buttons, self.lr_slider, self.steps_slider):
            control.observe(self._on_control, names="value")
        self.widget = widgets.VBox([self.optimizer_buttons, widgets.HBox([self.lr_slider, self.steps_slider]),
                                    self.image, self.readout])
        self.widget.add_class("lmlab-optimizer-explorer")

    def _on_control(self, change: dict) -> None:
        t0 = time.perf_counter()
        self.previous = self._curve
        self.optimizer, self.lr = self.optimizer_buttons.value, float(self.lr_slider.value)
        self.steps = self.steps_slider.value
        with one_thread():  # small tensors: one thread answers faster (lmlab/widgets/one_thread.py)
            self._curve = training_curve(self.C, self.optimizer, self.lr, self.steps)
            self._refresh(train=False, started=t0)

    def _sync_controls(self) -> None:
        self._set_controls(((self.optimizer_buttons, self.optimizer), (self.lr_slider, self.lr),
                           (self.steps_slider, self.steps)))

    def _refresh(self, train: bool = False, started: float | None = None) -> None:
        t0 = time.perf_counter() if started is None else started
        self.image.value = self.render()
        v = self.values
        if v["diverged"]:
            text = "The loss went up instead of down: the steps overshoot the minimum. Try a smaller learning rate."
        else:
            gap = v["final_loss"] - self.mle_loss
            text = (f"Final training loss {v['final_loss']:.3f}, {gap:.3f} above the minimum "
                    f"{self.mle_loss:.3f}. " + ("Converged." if gap < 0.005 else "Still on its way down."))
        self.readout.value = html.escape(text)
        self.last_update_seconds = time.perf_counter() - t0

    def __repr__(self) -> str:
        return f"OptimizerExplorer(V={self.C.shape[0]}, optimizers={list(OPTIMIZERS)})"

# -- the training loop as a picture ----------------------------------------------------------------------

_LOOP = [  # (x, y, title, detail) of each box, in the loop's order
    (0.165, 0.70, "1. a batch", "x, y = the next windows\nof training text"),
    (0.500, 0.70, "2. forward", "logits = model(x)\nloss = cross_entropy(logits, y)"),
    (0.835, 0.70, "3. backward", "loss.backward():\nthe gradient g of every weight"),
    (0.835, 0.20, "4. update", "W <- W - lr * g\n(SGD, momentum, Adam, ...)"),
    (0.500, 0.20, "5. zero the gradients", "optimizer.zero_grad()"),
    (0.165, 0.20, "every few steps", "the loss on validation\ntext (no update)"),
]


def plot_training_loop(dpi: int = 100) -> Any:
    """A diagram of one training step and the loop around it; returns a matplotlib Figure."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = new_figure(9.0, 3.4, dpi)
    fig.set_layout_engine("none")  # the boxes are placed by hand
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.axis("off")
    w, h = 0.15, 0.14  # half width and half height of a box
    for i, (x, y, title, detail) in enumerate(_LOOP):
        main = i < 5
        ax.add_patch(FancyBboxPatch((x - w, y - h), 2 * w, 2 * h, boxstyle="round,pad=0.01",
                                    facecolor="#eef3fb" if main else "#f3f3f3",
                                    edgecolor="#4a6fa5" if main else "#999999", linewidth=1.2))
        ax.text(x, y + 0.07, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x, y - 0.04, detail, ha="center", va="center", fontsize=9, family="DejaVu Sans Mono")
    blue, gray = "#4a6fa5", "#999999"
    arrows = [((0.165 + w, 0.70), (0.5 - w, 0.70)), ((0.5 + w, 0.70), (0.835 - w, 0.70)),
              ((0.835, 0.70 - h), (0.835, 0.20 + h)), ((0.835 - w, 0.20), (0.5 + w, 0.20))]
    for start, end in arrows:
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color=blue, lw=1.4))
    ax.add_patch(FancyArrowPatch((0.5 - w + 0.02, 0.20 + h), (0.165 + w - 0.02, 0.70 - h), arrowstyle="-|>",
                                 mutation_scale=14, color=blue, lw=1.4))
    ax.text(0.36, 0.47, "repeat:\nthe next step", fontsize=9, color=blue, ha="left", va="center")
    ax.add_patch(FancyArrowPatch((0.5 - w, 0.16), (0.165 + w, 0.16), arrowstyle="-|>", mutation_scale=12,
                                 color=gray, lw=1, linestyle="--"))
    ax.text(0.5, 0.97, "Training: the same step, thousands of times", ha="center", va="top", fontsize=11)
    fig._repr_png_ = lambda: figure_bytes(fig, "png", dpi)
    return fig
