"""Static attention figures with matplotlib: one head as a heatmap, one query as bars, rollout, thumbnails.

Everything draws on ``matplotlib.figure.Figure`` objects made here (never ``pyplot``), so nothing is
shown by accident, no global figure list grows, and several explorers never share a figure. The same
functions make the live explorer's images and the static fallback for notebooks rendered to HTML.

Letters: L layers, H heads, T tokens.
"""

from __future__ import annotations

import io
import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["token_label", "plot_attention", "plot_query", "plot_rollout", "figure_bytes", "thumbnail_png",
           "new_figure", "LiveHeatmap", "LiveBars"]

CMAP = "viridis"
MAX_LABELS = 48  # more tokens than this: label every k-th token only
_SHOWN = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "\u2423"}  # "\u2423" is the open box for a space


def token_label(token: str, max_len: int = 10) -> str:
    """A token as a short label that any font can draw and matplotlib does not read as math.

    Spaces become "\u2423", control characters and characters outside Latin, Greek and Cyrillic become
    escapes, "$" is escaped (matplotlib would start mathtext), long tokens are cut with "…".

    Example: " the\\n" -> "\u2423the\\\\n";  "😀" -> "\\\\U0001f600"
    """
    out = []
    for ch in token:
        if ch in _SHOWN:
            out.append(_SHOWN[ch])
        elif ch == "$":
            out.append(r"\$")
        elif not ch.isprintable() or ord(ch) >= 0x0530 and ch not in "\u2026\ufffd":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    s = "".join(out)
    return s if len(s) <= max_len else s[: max_len - 1] + "\u2026"


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas, independent of pyplot (nothing displays it by itself).

    Jupyter shows a Figure as an image only once pyplot set up its inline display; this one carries its
    own ``_repr_png_`` so that returning it from a cell shows the picture either way.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    fig._repr_png_ = lambda: figure_bytes(fig, "png", 80)
    return fig


def figure_bytes(fig: Any, fmt: str = "png", dpi: int = 80) -> bytes:
    """The figure as PNG or SVG bytes (SVG text is drawn as paths: no fonts needed to view it)."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt must be 'png' or 'svg', got {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Software": None} if fmt == "png" else {"Date": None})
    return buf.getvalue()


def _tick_positions(T: int) -> list[int]:
    step = max(1, math.ceil(T / MAX_LABELS))
    return list(range(0, T, step))


def _label_axis(ax: Any, tokens: list[str], axis: str, rotate: bool = False) -> None:
    T = len(tokens)
    pos = _tick_positions(T)
    short = T <= MAX_LABELS
    labels = [token_label(tokens[i]) if short else f"{i}:{token_label(tokens[i], 6)}" for i in pos]
    size = 8 if T <= 20 else 6
    if axis == "x":
        ax.set_xticks(pos, labels, rotation=90 if rotate else 0, fontsize=size)
    else:
        ax.set_yticks(pos, labels, fontsize=size)


def _check_tokens(tokens: list[str], T: int) -> None:
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("tokens must be a list of strings, one per position")
    if len(tokens) != T:
        raise ValueError(f"got {len(tokens)} tokens for weights over {T} positions; pass the tokens of the same text")


def _heatmap(ax: Any, tokens: list[str], matrix: Tensor, title: str, query: int | None) -> tuple[Any, Any, Any]:
    """Draw the heatmap; returns its changing artists (image, query outline, title)."""
    from matplotlib.patches import Rectangle

    T = matrix.size(-1)
    im = ax.imshow(matrix.numpy(), cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    _label_axis(ax, tokens, "x", rotate=True)
    _label_axis(ax, tokens, "y")
    ax.set_xlabel("key (attended to)", fontsize=8)
    ax.set_ylabel("query (attending)", fontsize=8)
    title_artist = ax.set_title(title, fontsize=9)
    rect = ax.add_patch(Rectangle((-0.5, (query or 0) - 0.5), T, 1, fill=False, edgecolor="red", linewidth=1.2,
                                  visible=query is not None))
    return im, rect, title_artist


def _side(T: int) -> float:
    return 3.2 if T <= 16 else 4.2 if T <= 48 else 5.0


def plot_attention(tokens: list[str], weights: Tensor, layer: int, head: int, ax: Any = None, *,
                   query: int | None = None) -> Any:
    """Heatmap of one head: row i = how query token i spreads its attention over the key tokens.

    Draws on ``ax`` if given, else on a new Figure; returns the Figure. ``query`` outlines one row.

    Shape: tokens (T strings), weights (L, H, T, T)

    Example:
        >>> tokens, w = attention_weights(model, tok, "hello")
        >>> fig = plot_attention(tokens, w, layer=0, head=1)
    """
    if not isinstance(weights, Tensor) or weights.dim() != 4:
        raise ValueError(f"weights must be a tensor of shape (L, H, T, T), got "
                         f"{tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__}")
    L, H, T, _ = weights.shape
    _check_tokens(tokens, T)
    if not 0 <= layer < L:
        raise ValueError(f"layer must be in 0..{L - 1}, got {layer}")
    if not 0 <= head < H:
        raise ValueError(f"head must be in 0..{H - 1}, got {head}")
    if query is not None and not 0 <= query < T:
        raise ValueError(f"query must be in 0..{T - 1}, got {query}")
    if ax is None:
        side = _side(T)
        ax = new_figure(side, side).add_subplot()
    _heatmap(ax, tokens, weights[layer, head], f"layer {layer}, head {head}", query)
    return ax.figure


def plot_query(tokens: list[str], row: Tensor, query: int, ax: Any = None, *, title: str | None = None) -> Any:
    """Bars: how much token ``query`` attends to each token of the context. Returns the Figure.

    ``row`` holds one weight per key (keys after ``query`` are zero in a causal model).

    Shape: tokens (T strings), row (T,)
    """
    if not isinstance(row, Tensor) or row.dim() != 1:
        raise ValueError("row must be a 1-D tensor of weights, one per key token")
    T = row.size(0)
    if len(tokens) < T:
        raise ValueError(f"got {len(tokens)} tokens for {T} weights")
    tokens = list(tokens[:T])
    if ax is None:
        ax = new_figure(*_bars_size(T)).add_subplot()
    q = token_label(tokens[query]) if 0 <= query < len(tokens) else "?"
    _bars(ax, tokens, row, query, title or f"query {query} '{q}'")
    return ax.figure


def _bars_size(T: int) -> tuple[float, float]:
    return max(3.5, min(7.0, 0.22 * T + 1.2)), 2.6


def _bars(ax: Any, tokens: list[str], row: Tensor, query: int, title: str) -> tuple[Any, Any]:
    """Draw the bars; returns the BarContainer and the title artist."""
    T = row.size(0)
    colors = ["tab:red" if j == query else "tab:blue" for j in range(T)]
    bars = ax.bar(range(T), row.numpy(), color=colors, width=0.85)
    ax.set_xlim(-0.6, T - 0.4)
    ax.set_ylim(0.0, max(1e-6, float(row.max())) * 1.1)
    _label_axis(ax, tokens, "x", rotate=True)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("attention", fontsize=8)
    return bars, ax.set_title(title, fontsize=9)


def plot_rollout(tokens: list[str], rollout: Tensor, ax: Any = None, *, query: int | None = None,
                 title: str = "attention rollout") -> Any:
    """Heatmap of an attention rollout (``attention_rollout``): row i spreads token i over the inputs.

    Shape: tokens (T strings), rollout (T, T)
    """
    if not isinstance(rollout, Tensor) or rollout.dim() != 2:
        raise ValueError("rollout must be a (T, T) tensor, e.g. attention_rollout(weights)")
    _check_tokens(tokens, rollout.size(0))
    if ax is None:
        side = _side(rollout.size(0))
        ax = new_figure(side, side).add_subplot()
    _heatmap(ax, tokens, rollout, title, query)
    return ax.figure


def thumbnail_png(matrix: Tensor, size: int = 64) -> bytes:
    """A small PNG of a (T, T) attention matrix, without axes: block-averaged down or repeated up.

    Rendered with Pillow directly (no figure), so a grid of many heads is quick to draw.

    Shape: matrix (T, T) -> PNG of about size x size pixels
    """
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    T = matrix.size(-1)
    m = matrix.float()[None, None]  # (1, 1, T, T)
    if T > size:
        m = torch.nn.functional.adaptive_avg_pool2d(m, size)  # (1, 1, size, size)
        m = m / m.amax(dim=-1, keepdim=True).clamp_min(1e-12)  # keep faint rows visible after averaging
    m = m[0, 0].clamp(0, 1).numpy()
    rep = max(1, size // m.shape[0])
    m = np.kron(m, np.ones((rep, rep), dtype=m.dtype))  # nearest-neighbour upscaling: crisp cells
    rgba = (colormaps[CMAP](m) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------
# Live figures for the explorer: draw the static parts once, redraw only what changes (blitting)
# ---------------------------------------------------------------------------------------------------


class _Blitter:
    """Renders a figure to PNG quickly by redrawing only its ``dynamic`` artists.

    Tick labels are the slow part of a heatmap (each label is laid out and rasterized). They do not
    change when the layer, head or query changes, so the figure is drawn once without the dynamic
    artists, that picture is kept, and each update pastes it back and draws the dynamic artists on top
    (matplotlib's "blitting", as in its animation module).
    """

    def __init__(self, fig: Any, dynamic: list[Any], dpi: int):
        self.fig, self.dynamic = fig, dynamic
        fig.set_dpi(dpi)
        for artist in dynamic:
            artist.set_animated(True)  # left out of canvas.draw()
        fig.canvas.draw()  # layout and every static part, once
        fig.set_layout_engine("none")  # keep the layout: later draws must not move the axes
        self.background = fig.canvas.copy_from_bbox(fig.bbox)

    def png(self) -> bytes:
        from PIL import Image

        canvas = self.fig.canvas
        canvas.restore_region(self.background)
        for artist in self.dynamic:
            self.fig.draw_artist(artist)
        w, h = canvas.get_width_height()
        image = Image.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=3)
        return buf.getvalue()


class LiveHeatmap:
    """A (T, T) heatmap with token labels whose matrix, query outline and title change quickly.

    Example:
        >>> live = LiveHeatmap(tokens)
        >>> png = live.render(weights[0, 1], "layer 0, head 1", query=4)   # PNG bytes
    """

    def __init__(self, tokens: list[str], dpi: int = 80):
        T = len(tokens)
        side = _side(T)
        ax = new_figure(side, side).add_subplot()
        zeros = torch.zeros(T, T)
        self.im, self.rect, self.title = _heatmap(ax, tokens, zeros, "layer 00, head 00", 0)
        self.T = T
        self._blit = _Blitter(ax.figure, [self.im, self.rect, self.title], dpi)

    def render(self, matrix: Tensor, title: str, query: int | None = None) -> bytes:
        """Shape: matrix (T, T) -> PNG bytes"""
        if tuple(matrix.shape) != (self.T, self.T):
            raise ValueError(f"matrix must be ({self.T}, {self.T}) like the tokens, got {tuple(matrix.shape)}")
        self.im.set_data(matrix.numpy())
        self.rect.set_visible(query is not None)
        if query is not None:
            self.rect.set_y(query - 0.5)
        self.title.set_text(title)
        return self._blit.png()


class LiveBars:
    """Bars over the T tokens (one query's attention) whose heights, highlight and title change quickly.

    The y axis rescales to the tallest bar, so it is redrawn with the bars.
    """

    def __init__(self, tokens: list[str], dpi: int = 80):
        T = len(tokens)
        ax = new_figure(*_bars_size(T)).add_subplot()
        self.ax = ax
        self.bars, self.title = _bars(ax, tokens, torch.zeros(T), -1, "query 00")
        self.T = T
        self._blit = _Blitter(ax.figure, [*self.bars.patches, ax.yaxis, self.title], dpi)

    def render(self, row: Tensor, query: int, title: str) -> bytes:
        """Shape: row (T,) -> PNG bytes"""
        if tuple(row.shape) != (self.T,):
            raise ValueError(f"row must have {self.T} weights like the tokens, got {tuple(row.shape)}")
        for j, (patch, height) in enumerate(zip(self.bars.patches, row.tolist())):
            patch.set_height(height)
            patch.set_facecolor("tab:red" if j == query else "tab:blue")
        self.ax.set_ylim(0.0, max(1e-6, float(row.max())) * 1.1)
        self.title.set_text(title)
        return self._blit.png()
