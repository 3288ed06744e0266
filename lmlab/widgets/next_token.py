"""Temperature, top-k and top-p on one next-token distribution (notebook 07).

    from lmlab.widgets.next_token import NextTokenExplorer, next_token_probs

    next_token_probs(logits, temperature=0.8, top_k=10, top_p=0.9)   # the distribution sampling draws from
    explorer = NextTokenExplorer(logits, labels)   # the live widget: sliders for the three settings
    explorer.set(temperature=1.5)   # the same from code; returns explorer.values
    explorer.static_figure()        # the picture, for readers who do not run the notebook

``next_token_probs`` reshapes the logits exactly as ``lmlab.generate`` does before each draw: divide by the
temperature, keep the top-k, then the top-p nucleus (``lmlab.sampling``), softmax. The bars show the most
likely tokens of the model's own distribution (temperature 1, no filter) in grey and the distribution after
the settings in colour; tokens a filter removed have no coloured bar.

Letters: V vocab size, n the number of tokens shown.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import torch
from torch import Tensor

from lmlab.sampling import apply_temperature, check_top_k, check_top_p, top_k_filter, top_p_filter
from lmlab.viz.live import Blitter
from lmlab.viz.plots import new_figure, token_label
from lmlab.widgets.base import LiveWidget

__all__ = ["next_token_probs", "NextTokenExplorer"]


def next_token_probs(logits: Any, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> Tensor:
    """The distribution ``generate`` samples the next token from. Shape: logits (V,) -> probabilities (V,), float64

    Example:
        >>> next_token_probs(torch.log(torch.tensor([0.5, 0.3, 0.2])), top_k=2).tolist()   # [0.625, 0.375, 0.0]
    """
    z = torch.as_tensor(logits).detach().cpu().double().reshape(-1)
    if z.numel() < 2 or not bool(torch.isfinite(z).all()):
        raise ValueError("logits must be a 1-D tensor of at least 2 finite numbers (one per token)")
    z = apply_temperature(z, temperature)
    if top_k is not None:
        check_top_k(top_k)
        z = top_k_filter(z, top_k)
    if top_p is not None:
        check_top_p(top_p)
        z = top_p_filter(z, top_p)
    return torch.softmax(z, dim=-1)


def entropy(p: Tensor) -> float:
    """Entropy in nats of a distribution (0 log 0 = 0)."""
    nz = p[p > 0]
    return float(-(nz * nz.log()).sum())


class NextTokenExplorer(LiveWidget):
    """Sliders for temperature, top-k and top-p over the bars of the n most likely next tokens.

    Args:
        logits: the model's logits for the next token, shape (V,).
        labels: one string per token id (e.g. ``[tok.decode([i]) for i in range(V)]``).
        n_shown: how many of the most likely tokens get a bar (default 20, or V when smaller).
        temperature, top_k, top_p: the first setting (top_k 0 or None, top_p 1.0 or None: off).
        title: what the distribution is (e.g. the context it follows).
        dpi: resolution of the picture.
    """

    def __init__(self, logits: Any, labels: Sequence[str], n_shown: int | None = None, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, title: str = "", dpi: int = 100):
        self.logits = torch.as_tensor(logits).detach().cpu().double().reshape(-1)
        V = self.logits.numel()
        if len(labels) != V:
            raise ValueError(f"labels must have one string per token ({V}), got {len(labels)}")
        n_shown = min(20, V) if n_shown is None else n_shown
        if not isinstance(n_shown, int) or not 2 <= n_shown <= V:
            raise ValueError(f"n_shown must be an int between 2 and the vocabulary size {V}, got {n_shown!r}")
        self.labels, self.n_shown, self.title, self.dpi = list(labels), n_shown, title, dpi
        self.order = torch.argsort(self.logits, descending=True)[:n_shown].tolist()  # the bars, most likely first
        self.temperature, self.top_k, self.top_p = 1.0, None, None
        self._apply(temperature, top_k, top_p)
        self.last_update_seconds: float | None = None
        self._figure()
        self._build_widgets()
        self._refresh()

    def _apply(self, temperature: float, top_k: int | None, top_p: float | None) -> None:
        top_k = None if top_k in (None, 0) else top_k
        top_p = None if top_p is None or top_p == 1.0 else top_p
        next_token_probs(self.logits, temperature, top_k, top_p)  # raises on a bad setting, before anything changes
        if not 0.05 <= temperature <= 5.0:
            raise ValueError(f"temperature must be between 0.05 and 5 here (the slider's range), got {temperature!r}")
        self.temperature, self.top_k, self.top_p = float(temperature), top_k, top_p

    @property
    def values(self) -> dict[str, Any]:
        """The setting, the resulting distribution over the shown tokens, how many tokens remain, the entropy."""
        p = next_token_probs(self.logits, self.temperature, self.top_k, self.top_p)
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "tokens": [self.labels[i] for i in self.order], "probs": [round(float(p[i]), 6) for i in self.order],
                "kept": int((p > 0).sum()), "entropy": entropy(p),
                "entropy_model": entropy(torch.softmax(self.logits, 0))}

    def set(self, temperature: float | None = None, top_k: int | None = None, top_p: float | None = None) -> dict:
        """Change the setting as the sliders do (top_k=0 and top_p=1.0 switch a filter off); returns ``values``."""
        self._apply(self.temperature if temperature is None else temperature,
                    self.top_k if top_k is None else top_k, self.top_p if top_p is None else top_p)
        self._sync_controls()
        self._refresh()
        return self.values

    # -- picture ----------------------------------------------------------------------------------------

    def _figure(self) -> None:
        fig = new_figure(8.4, 3.2, self.dpi)
        ax = fig.add_subplot()
        x = list(range(self.n_shown))
        model = torch.softmax(self.logits, 0)
        ax.bar(x, [float(model[i]) for i in self.order], width=0.8, color="0.85", edgecolor="0.6",
               label="the model (temperature 1, no filter)")
        self._bars = ax.bar(x, [0.0] * self.n_shown, width=0.5, color="tab:blue", label="after the settings")
        ax.set_xticks(x, [token_label(self.labels[i]) for i in self.order], fontsize=10, family="DejaVu Sans Mono")
        ax.set(xlim=(-0.6, self.n_shown - 0.4), ylim=(0, 1.0), ylabel="probability",
               xlabel=f"the {self.n_shown} most likely next tokens (␣ is a space)")
        ax.legend(fontsize=9, loc="upper right")
        self._title = ax.set_title(" ", fontsize=10)
        self._gone = [ax.text(i, 0.01, "×", ha="center", va="bottom", fontsize=9, color="tab:red") for i in x]
        self.fig = fig
        self._blit = Blitter(fig, [*self._bars, *self._gone, self._title], self.dpi)

    def render(self) -> bytes:
        """The picture for the current setting, as PNG bytes."""
        v = self.values
        for bar, gone, p in zip(self._bars, self._gone, v["probs"]):
            bar.set_height(p)
            gone.set_visible(p == 0)
        k = "off" if self.top_k is None else self.top_k
        top_p = "off" if self.top_p is None else f"{self.top_p:g}"
        head = f"{self.title}: " if self.title else ""
        self._title.set_text(f"{head}temperature {self.temperature:.2f}, top-k {k}, top-p {top_p}: "
                             f"{v['kept']} tokens left, entropy {v['entropy']:.2f} nats")
        return self._blit.png()

    # -- widgets ----------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as widgets

        V = self.logits.numel()
        self.temp_slider = widgets.FloatLogSlider(value=self.temperature, base=10, min=math.log10(0.05),
                                                  max=math.log10(5.0), step=0.02, description="temperature",
                                                  readout_format=".2f", continuous_update=True)
        self.k_slider = widgets.IntSlider(value=self.top_k or 0, min=0, max=V, description="top-k (0: off)",
                                          continuous_update=True, style={"description_width": "initial"})
        self.p_slider = widgets.FloatSlider(value=self.top_p or 1.0, min=0.05, max=1.0, step=0.01,
                                            description="top-p (1: off)", continuous_update=True,
                                            style={"description_width": "initial"})
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.readout = widgets.HTML()
        for control in (self.temp_slider, self.k_slider, self.p_slider):
            control.observe(self._on_control, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.temp_slider, self.k_slider, self.p_slider]), self.image,
                                    self.readout])
        self.widget.add_class("lmlab-next-token-explorer")

    def _on_control(self, change: dict) -> None:
        self._apply(float(self.temp_slider.value), int(self.k_slider.value), float(self.p_slider.value))
        self._refresh()

    def _sync_controls(self) -> None:
        self._set_controls(((self.temp_slider, self.temperature), (self.k_slider, self.top_k or 0),
                           (self.p_slider, self.top_p or 1.0)))

    def _refresh(self) -> None:
        t0 = time.perf_counter()
        self.image.value = self.render()
        v = self.values
        top = max(range(self.n_shown), key=v["probs"].__getitem__)
        self.readout.value = (f"{v['kept']} of {self.logits.numel()} tokens can be drawn; the most likely, "
                              f"{token_label(v['tokens'][top])!r}, has probability <b>{v['probs'][top]:.2f}</b>. "
                              f"Entropy {v['entropy']:.2f} nats (the model's own: {v['entropy_model']:.2f}).")
        self.last_update_seconds = time.perf_counter() - t0

    def __repr__(self) -> str:
        return f"NextTokenExplorer({self.logits.numel()} tokens, {self.n_shown} shown)"
