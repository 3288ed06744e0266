"""Scaled dot-product scores and softmax weights for one query (notebook 05): edit the query, the keys and d_k.

    from lmlab.widgets.attention_scores import ScoreExplorer, score_weights

    score_weights([1, 0], [[2, 0], [0, 1], [1, 1]], d_k=2)   # plain numbers: scores and weights
    explorer = ScoreExplorer()      # the live widget: sliders for the query, a text box for the keys, d_k
    explorer.set(d_k=512)           # the same from code; returns explorer.values
    explorer.static_figure()        # the picture, for readers who do not run the notebook

The query and the keys are given by their first two components, which the picture draws as arrows. For
``d_k > 2`` the remaining ``d_k - 2`` components are drawn from a standard normal distribution with a fixed
seed (the same for every setting), as the components of queries and keys computed from random vectors
would be: the scores then spread with standard deviation about ``sqrt(d_k)``. The bars show the softmax
weights with the scores divided by ``sqrt(d_k)`` (as attention does) and without (raw ``q . k``): without
the scale the weights collapse onto one key as ``d_k`` grows.

Letters: n keys, d_k the size of queries and keys.
"""

from __future__ import annotations

import html
import math
import time
from typing import Any, Sequence

import torch
from torch import Tensor

from lmlab.viz.live import Blitter
from lmlab.viz.plots import new_figure
from lmlab.widgets.base import LiveWidget

__all__ = ["score_weights", "parse_keys", "ScoreExplorer", "D_K_CHOICES"]

D_K_CHOICES = [2, 8, 32, 128, 512]
MAX_KEYS = 6
LIMIT = 3.0  # the arrows' plane spans [-LIMIT, LIMIT]


def _vectors(query: Any, keys: Any) -> tuple[Tensor, Tensor]:
    q = torch.as_tensor(query, dtype=torch.float64).reshape(-1)
    k = torch.as_tensor(keys, dtype=torch.float64)
    if q.numel() != 2:
        raise ValueError(f"query must have 2 components (the ones the picture draws), got {q.numel()}")
    if k.dim() != 2 or k.size(1) != 2 or not 1 <= k.size(0) <= MAX_KEYS:
        raise ValueError(f"keys must be 1 to {MAX_KEYS} vectors of 2 components, shape (n, 2), got {tuple(k.shape)}")
    if not (torch.isfinite(q).all() and torch.isfinite(k).all()):
        raise ValueError("query and keys must hold finite numbers")
    return q, k


def padded(query: Any, keys: Any, d_k: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The query (d_k,) and keys (n, d_k): the given 2 components, then d_k - 2 standard normal ones (seeded)."""
    q, k = _vectors(query, keys)
    if not isinstance(d_k, int) or isinstance(d_k, bool) or d_k < 2:
        raise ValueError(f"d_k must be an int >= 2, got {d_k!r}")
    g = torch.Generator().manual_seed(seed)
    extra = torch.randn(1 + MAX_KEYS, d_k - 2, generator=g, dtype=torch.float64)  # row 0: the query's
    return torch.cat([q, extra[0]]), torch.cat([k, extra[1:1 + len(k)]], dim=1)


def score_weights(query: Any, keys: Any, d_k: int = 2, seed: int = 0) -> dict[str, list[float]]:
    """Dot products of the query with each key, and the softmax weights with and without the 1/sqrt(d_k) scale.

    Example:
        >>> score_weights([0, 2], [[2, 0], [0, 1], [1, 1]])["scores"]   # q . k_j
        [0.0, 2.0, 2.0]
    """
    q, k = padded(query, keys, d_k, seed)
    scores = k @ q  # (n,)
    return {"scores": scores.tolist(), "scaled_scores": (scores / math.sqrt(d_k)).tolist(),
            "weights": torch.softmax(scores / math.sqrt(d_k), dim=0).tolist(),
            "weights_unscaled": torch.softmax(scores, dim=0).tolist()}


def parse_keys(text: str) -> list[list[float]]:
    """Keys typed as "x, y" pairs separated by ";" or new lines. Example: "2, 0; 0, 1" -> [[2.0, 0.0], [0.0, 1.0]]"""
    rows = [part for part in text.replace("\n", ";").split(";") if part.strip()]
    keys = []
    for row in rows:
        parts = [p for p in row.replace(",", " ").split() if p]
        if len(parts) != 2:
            raise ValueError(f"each key needs two numbers 'x, y', got {row.strip()!r}")
        try:
            keys.append([float(p) for p in parts])
        except ValueError:
            raise ValueError(f"not a number in key {row.strip()!r}") from None
    _vectors([0.0, 0.0], keys)  # the same checks as everywhere
    return keys


class ScoreExplorer(LiveWidget):
    """Sliders for a 2-component query, a text box of keys, d_k: arrows of the vectors and the softmax weights.

    Args:
        query: the query's 2 components (default the notebook's query 1, (0, 2)).
        keys: 1 to 6 keys of 2 components (default the notebook's three keys).
        d_k: the size of queries and keys, one of ``D_K_CHOICES``.
        seed: the seed of the extra components when d_k > 2.
        dpi: resolution of the picture.
    """

    def __init__(self, query: Sequence[float] = (0.0, 2.0), keys: Sequence[Sequence[float]] = ((2, 0), (0, 1), (1, 1)),
                 d_k: int = 2, seed: int = 0, dpi: int = 100):
        q, k = _vectors(query, keys)
        if d_k not in D_K_CHOICES:
            raise ValueError(f"d_k must be one of {D_K_CHOICES}, got {d_k!r}")
        self.query, self.keys, self.d_k, self.seed, self.dpi = q.tolist(), k.tolist(), d_k, seed, dpi
        self.last_update_seconds: float | None = None
        self._figure()
        self._build_widgets()
        self._refresh()

    @property
    def values(self) -> dict[str, Any]:
        """What the picture shows, as plain numbers."""
        return {"query": list(self.query), "keys": [list(k) for k in self.keys], "d_k": self.d_k,
                **score_weights(self.query, self.keys, self.d_k, self.seed)}

    def set(self, query: Sequence[float] | None = None, keys: Any = None, d_k: int | None = None) -> dict[str, Any]:
        """Change the query, the keys (a list of pairs or the text the box takes) or d_k; returns ``values``."""
        if query is not None:
            q, _ = _vectors(query, [[0.0, 0.0]])
            if not bool((q.abs() <= LIMIT).all()):
                raise ValueError(f"the query's components must be in [-{LIMIT}, {LIMIT}] (the sliders' range)")
            self.query = q.tolist()
        if keys is not None:
            self.keys = parse_keys(keys) if isinstance(keys, str) else _vectors([0.0, 0.0], keys)[1].tolist()
        if d_k is not None:
            if d_k not in D_K_CHOICES:
                raise ValueError(f"d_k must be one of {D_K_CHOICES}, got {d_k!r}")
            self.d_k = d_k
        self._sync_controls()
        self._refresh()
        return self.values

    # -- picture ----------------------------------------------------------------------------------------

    def _figure(self) -> None:
        fig = new_figure(8.0, 3.3, self.dpi)
        ax_vec, ax_w = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.35]})
        ax_vec.set(xlim=(-LIMIT, LIMIT), ylim=(-LIMIT, LIMIT), aspect="equal", xlabel="component 1",
                   ylabel="component 2")
        ax_vec.axhline(0, color="0.85", lw=0.8)
        ax_vec.axvline(0, color="0.85", lw=0.8)
        ax_vec.set_title("query (red) and keys: first 2 components", fontsize=10)
        x = list(range(MAX_KEYS))
        self._bars = ax_w.bar([i - 0.2 for i in x], [0.0] * MAX_KEYS, width=0.4, color="tab:blue",
                              label="softmax(q·k / √d_k)")
        self._raw = ax_w.bar([i + 0.2 for i in x], [0.0] * MAX_KEYS, width=0.4, color="0.7",
                             label="softmax(q·k), unscaled")
        ax_w.set(ylim=(0, 1.3), xlim=(-0.6, MAX_KEYS - 0.4), ylabel="attention weight")
        ax_w.set_xticks(x, [f"k{i}" for i in x], fontsize=9)
        ax_w.legend(fontsize=9, loc="upper center", ncols=2, handlelength=1.2)
        self._labels = [ax_w.text(i, 0, "", ha="center", va="bottom", fontsize=9) for i in x]
        self._w_title = ax_w.set_title(" ", fontsize=10)
        red = {"arrowstyle": "-|>", "color": "tab:red", "lw": 2}
        self._q_arrow = ax_vec.annotate("", (0, 0), (0, 0), arrowprops=red)
        self._k_arrows = [ax_vec.annotate("", (0, 0), (0, 0), arrowprops={"arrowstyle": "-|>", "color": "tab:blue",
                                                                         "lw": 1.5}) for _ in x]
        self._k_names = [ax_vec.text(0, 0, f"k{i}", fontsize=9, color="tab:blue") for i in x]
        dynamic = [*self._bars, *self._raw, *self._labels, self._w_title, self._q_arrow, *self._k_arrows,
                   *self._k_names]
        self.fig, self._ax_w = fig, ax_w
        self._blit = Blitter(fig, dynamic, self.dpi)

    def render(self) -> bytes:
        """The picture for the current settings, as PNG bytes."""
        v = self.values
        n = len(self.keys)
        for i in range(MAX_KEYS):
            shown = i < n
            self._bars[i].set_height(v["weights"][i] if shown else 0.0)
            self._raw[i].set_height(v["weights_unscaled"][i] if shown else 0.0)
            self._labels[i].set_text(f"{v['scores'][i]:.1f}" if shown else "")
            self._labels[i].set_position((i, (max(v["weights"][i], v["weights_unscaled"][i]) if shown else 0) + 0.02))
            key = self.keys[i] if shown else [0.0, 0.0]
            self._k_arrows[i].xy = (max(-LIMIT, min(LIMIT, key[0])), max(-LIMIT, min(LIMIT, key[1])))
            self._k_arrows[i].set_visible(shown)
            self._k_names[i].set_position((max(-LIMIT, min(LIMIT - 0.4, key[0] + 0.1)),
                                           max(-LIMIT, min(LIMIT - 0.3, key[1] + 0.1))))
            self._k_names[i].set_visible(shown)
        self._q_arrow.xy = tuple(self.query)
        self._w_title.set_text(f"d_k = {self.d_k}: weights (numbers: q·k)" if self.d_k == 2 else
                               f"d_k = {self.d_k} ({self.d_k - 2} random extra components): weights")
        return self._blit.png()

    # -- widgets ----------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as widgets

        style = {"description_width": "initial"}
        self.qx = widgets.FloatSlider(value=self.query[0], min=-LIMIT, max=LIMIT, step=0.1, description="query x",
                                      continuous_update=True, style=style)
        self.qy = widgets.FloatSlider(value=self.query[1], min=-LIMIT, max=LIMIT, step=0.1, description="query y",
                                      continuous_update=True, style=style)
        self.keys_box = widgets.Text(value=self._keys_text(), description="keys (x, y; ...)", style=style,
                                     continuous_update=False, layout=widgets.Layout(width="330px"))
        self.d_k_slider = widgets.SelectionSlider(options=D_K_CHOICES, value=self.d_k, description="d_k",
                                                  continuous_update=True)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.readout = widgets.HTML()
        for control in (self.qx, self.qy, self.keys_box, self.d_k_slider):
            control.observe(self._on_control, names="value")
        rows = [widgets.HBox([self.qx, self.qy]), widgets.HBox([self.keys_box, self.d_k_slider])]
        self.widget = widgets.VBox([*rows, self.image, self.readout])
        self.widget.add_class("lmlab-score-explorer")

    def _keys_text(self) -> str:
        return "; ".join(f"{x:g}, {y:g}" for x, y in self.keys)

    def _on_control(self, change: dict) -> None:
        self.query, self.d_k = [float(self.qx.value), float(self.qy.value)], self.d_k_slider.value
        try:
            self.keys = parse_keys(self.keys_box.value)
            self._error = ""
        except ValueError as exc:
            self._error = str(exc)  # keep the last good keys; say what was wrong
        self._refresh()

    def _sync_controls(self) -> None:
        self._set_controls(((self.qx, self.query[0]), (self.qy, self.query[1]),
                           (self.keys_box, self._keys_text()), (self.d_k_slider, self.d_k)))
        self._error = ""

    def _refresh(self) -> None:
        t0 = time.perf_counter()
        self.image.value = self.render()
        v = self.values
        best = max(range(len(v["weights"])), key=v["weights"].__getitem__)
        note = (f"<span style='color:#b00'>{html.escape(self._error)}</span><br>" if getattr(self, "_error", "")
                else "")
        self.readout.value = (f"{note}scores q·k = [{', '.join(f'{s:.2f}' for s in v['scores'])}], divided by "
                              f"√{self.d_k} = {math.sqrt(self.d_k):.2f}; the largest weight, "
                              f"<b>{v['weights'][best]:.2f}</b>, goes to k{best} (without the scale: "
                              f"{max(v['weights_unscaled']):.2f}).")
        self.last_update_seconds = time.perf_counter() - t0

    def __repr__(self) -> str:
        return f"ScoreExplorer({len(self.keys)} keys, d_k={self.d_k})"
