"""The head view: tokens in two columns, a line from each query (left) to each key (right).

A line's opacity is the attention weight, its colour the head, so several heads of one layer can be
overlaid and compared (as in bertviz's head view, Vig 2019). The chosen query's lines are drawn in
full, the others faintly, so one token's attention stands out while the whole pattern stays visible.

Letters: H heads, T tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from lmlab.viz.live import Blitter
from lmlab.viz.plots import LABEL_PT, MAX_LABELS, PITCH_IN, TITLE_PT, TOKEN_FONT, new_figure, tick_positions, \
    token_label

__all__ = ["head_colors", "LiveLines", "plot_lines"]

_FAINT = 0.18  # opacity factor of the lines of queries other than the chosen one
_MIN_WEIGHT = 0.01  # lighter lines of the chosen query are not drawn
_MIN_FAINT = 0.1  # nor lighter lines of the other queries (a long, even pattern would be thousands of lines)


def head_colors(H: int) -> list[tuple[float, float, float, float]]:
    """One colour per head (matplotlib's tab10, then tab20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if H <= 10 else "tab20"]
    return [cmap(h % cmap.N) for h in range(H)]


def _segments(weights: Tensor, heads: list[int], query: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Line ends and RGBA colours for the chosen heads of one layer.

    Shape: weights (H, T, T) -> segments (n, 2, 2), colours (n, 4)
    """
    colors = np.array(head_colors(weights.size(0)))  # (H, 4)
    segs, rgba = [], []
    for h in heads:
        w = weights[h].numpy()  # (T, T)
        floor = np.full((w.shape[0], 1), _MIN_FAINT if query is not None else _MIN_WEIGHT)  # (T, 1)
        if query is not None:
            floor[query] = _MIN_WEIGHT
        i, j = np.nonzero(w >= floor)  # query, key of each line
        alpha = w[i, j] * np.where(i == query, 1.0, _FAINT if query is not None else 1.0)
        segs.append(np.stack([np.stack([np.zeros_like(i), i], 1), np.stack([np.ones_like(j), j], 1)], 1))
        c = np.repeat(colors[h][None], len(i), axis=0)
        c[:, 3] = np.clip(alpha, 0.0, 1.0)
        rgba.append(c)
    if not segs:
        return np.zeros((0, 2, 2)), np.zeros((0, 4))
    order = np.argsort(np.concatenate(rgba)[:, 3], kind="stable")  # strongest lines last, on top
    return np.concatenate(segs).astype(float)[order], np.concatenate(rgba)[order]


def _size(tokens: list[str]) -> tuple[float, float]:
    longest = min(10, max((len(token_label(t)) for t in tokens), default=1))
    return 2 * (0.09 * longest + 0.3) + 3.0, max(3.0, min(len(tokens), MAX_LABELS) * PITCH_IN) + 1.2


def _draw(ax: Any, tokens: list[str], H: int) -> tuple[Any, Any, Any, Any]:
    """Static parts (token columns, head legend) and the dynamic ones: lines, query label, key label, title."""
    from matplotlib.collections import LineCollection

    T = len(tokens)
    ax.set_xlim(0, 1)
    ax.set_ylim(T - 0.5, -0.5)
    ax.axis("off")
    font = {"fontsize": LABEL_PT, "family": TOKEN_FONT, "va": "center"}
    for i in tick_positions(T):
        ax.text(-0.02, i, token_label(tokens[i]), ha="right", **font)
        ax.text(1.02, i, token_label(tokens[i]), ha="left", **font)
    ax.text(-0.02, -0.5, "query", ha="right", va="bottom", fontsize=LABEL_PT + 1)
    ax.text(1.02, -0.5, "key", ha="left", va="bottom", fontsize=LABEL_PT + 1)
    for h, color in enumerate(head_colors(H)):
        ax.text(h / max(H, 1), T - 0.5, f"\u25a0 head {h}", color=color, ha="left", va="top",
                fontsize=LABEL_PT, transform=ax.transData)
    lines = ax.add_collection(LineCollection(np.zeros((0, 2, 2)), linewidths=1.6))
    marker = {"fontsize": LABEL_PT, "family": TOKEN_FONT, "color": "tab:red", "fontweight": "bold", "va": "center",
              "bbox": {"facecolor": "white", "edgecolor": "tab:red", "pad": 1.0, "linewidth": 0.8}}
    query_label = ax.text(-0.02, 0, "", ha="right", **marker)
    key_label = ax.text(1.02, 0, "", ha="left", **marker)
    title = ax.set_title("layer 00", fontsize=TITLE_PT, pad=18)
    return lines, query_label, key_label, title


class LiveLines:
    """The head view of one layer, quick to redraw for other heads, another query or another key.

    Example:
        >>> live = LiveLines(tokens, n_head=4)
        >>> png = live.render(weights[1], heads=[0, 2], query=5, title="layer 1")
    """

    def __init__(self, tokens: list[str], n_head: int, dpi: int = 100):
        self.tokens, self.T, self.H = tokens, len(tokens), n_head
        self.ax = new_figure(*_size(tokens)).add_subplot()
        self.lines, self.query_label, self.key_label, self.title = _draw(self.ax, tokens, n_head)
        self._blit = Blitter(self.ax.figure, [self.lines, self.query_label, self.key_label, self.title], dpi)

    def render(self, weights: Tensor, heads: list[int], query: int | None, title: str,
               key: int | None = None) -> bytes:
        """Shape: weights (H, T, T) -> PNG bytes"""
        if tuple(weights.shape) != (self.H, self.T, self.T):
            raise ValueError(f"weights must be ({self.H}, {self.T}, {self.T}), got {tuple(weights.shape)}")
        segs, rgba = _segments(weights, list(heads), query)
        self.lines.set_segments(segs)
        self.lines.set_color(rgba)
        for label, pos in ((self.query_label, query), (self.key_label, key)):
            label.set_visible(pos is not None)
            if pos is not None:
                label.set_text(token_label(self.tokens[pos]))
                label.set_y(pos)
        self.title.set_text(title)
        return self._blit.png()

    def cell_at(self, x: float, y: float) -> tuple[int | None, int | None]:
        """(query, None) on the left half, (None, key) on the right half, for the token at height y."""
        height = self.ax.figure.canvas.get_width_height()[1]
        col, row = self.ax.transData.inverted().transform((x, height - y))
        if not -0.5 <= row < self.T - 0.5:
            return None, None
        pos = int(round(row))
        return (pos, None) if col < 0.5 else (None, pos)


def plot_lines(tokens: list[str], weights: Tensor, layer: int, heads: list[int] | None = None, *,
               query: int | None = None) -> Any:
    """The head view of layer ``layer`` as a Figure: every chosen head's lines, coloured by head.

    Shape: tokens (T strings), weights (L, H, T, T)
    """
    L, H, T, _ = weights.shape
    if len(tokens) != T:
        raise ValueError(f"got {len(tokens)} tokens for weights over {T} positions")
    if not 0 <= layer < L:
        raise ValueError(f"layer must be in 0..{L - 1}, got {layer}")
    heads = list(range(H)) if heads is None else list(heads)
    ax = new_figure(*_size(tokens)).add_subplot()
    lines, query_label, _, title = _draw(ax, tokens, H)
    segs, rgba = _segments(weights[layer], heads, query)
    lines.set_segments(segs)
    lines.set_color(rgba)
    query_label.set_visible(query is not None)
    if query is not None:
        query_label.set_text(token_label(tokens[query]))
        query_label.set_y(query)
    title.set_text(f"layer {layer}: heads {', '.join(map(str, heads))}")
    return ax.figure
