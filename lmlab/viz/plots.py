"""Static attention figures with matplotlib: one head as a heatmap, one query as bars, rollout, thumbnails.

Everything draws on ``matplotlib.figure.Figure`` objects made here (never ``pyplot``), so nothing is
shown by accident, no global figure list grows, and several explorers never share a figure. The same
functions make the live explorer's images, its exports and the static pictures of a rendered notebook.

Readable at the default size: token labels 9 pt in a monospace font (so "l", "I" and "1" differ), one
token every 10 pt, so every token is labelled up to 64 tokens; longer texts label every k-th token
(the explorer always adds its query's). Single characters stay upright; longer tokens are turned 90
degrees. Heatmaps carry a colour bar with the weight scale.

Letters: L layers, H heads, T tokens.
"""

from __future__ import annotations

import io
import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["token_label", "plot_attention", "plot_query", "plot_rollout", "plot_grid", "figure_bytes",
           "thumbnail_png", "new_figure", "heatmap_side", "bars_size", "draw_heatmap", "draw_bars", "label_axis",
           "CMAP", "LABEL_PT", "TITLE_PT", "MAX_LABELS", "PITCH_IN", "TOKEN_FONT", "tick_positions", "heatmap_size"]

CMAP = "viridis"
LABEL_PT = 9  # tick labels (points); 9 pt at 100 dpi is 12.5 px on the screen
TITLE_PT = 11
TOKEN_FONT = "DejaVu Sans Mono"  # ships with matplotlib; tells "l" from "I" and "1"
MAX_LABELS = 64  # more tokens than this: label every k-th token only
PITCH_IN = 10 / 72  # inches per labelled token: 10 pt
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


def new_figure(width: float, height: float, dpi: int = 100) -> Any:
    """A matplotlib Figure on the Agg canvas, independent of pyplot (nothing displays it by itself).

    Jupyter shows a Figure as an image only once pyplot set up its inline display; this one carries its
    own ``_repr_png_`` so that returning it from a cell shows the picture either way.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    fig._repr_png_ = lambda: figure_bytes(fig, "png", dpi)
    return fig


def figure_bytes(fig: Any, fmt: str = "png", dpi: int = 100) -> bytes:
    """The figure as PNG or SVG bytes (SVG text is drawn as paths: no fonts needed to view it)."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt must be 'png' or 'svg', got {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Software": None} if fmt == "png" else {"Date": None})
    return buf.getvalue()


def tick_positions(T: int) -> list[int]:
    """Which tokens get a label: all up to ``MAX_LABELS``, else every k-th. Example: 130 -> 0, 3, 6, ..."""
    step = max(1, math.ceil(T / MAX_LABELS))
    return list(range(0, T, step))


def label_axis(ax: Any, tokens: list[str], axis: str) -> bool:
    """Token labels on the x or y axis; returns True if the x labels are turned (tokens longer than 2)."""
    pos = tick_positions(len(tokens))
    labels = [token_label(tokens[i]) for i in pos]
    font = {"fontsize": LABEL_PT, "family": TOKEN_FONT}
    if axis == "y":
        ax.set_yticks(pos, labels, **font)
        return False
    turned = max((len(s) for s in labels), default=0) > 2
    ax.set_xticks(pos, labels, rotation=90 if turned else 0, **font)
    return turned


def _check_tokens(tokens: list[str], T: int) -> None:
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("tokens must be a list of strings, one per position")
    if len(tokens) != T:
        raise ValueError(f"got {len(tokens)} tokens for weights over {T} positions; pass the tokens of the same text")


def heatmap_side(T: int) -> float:
    """Inches of a (T, T) heatmap's axes: 10 pt per token (at least 3 in), at most 64 tokens' worth."""
    return max(3.0, min(T, MAX_LABELS) * PITCH_IN)


def heatmap_size(tokens: list[str]) -> tuple[float, float]:
    """Figure inches for a heatmap with its labels and colour bar."""
    side = heatmap_side(len(tokens))
    longest = max((len(token_label(t)) for t in tokens), default=1)
    label_in = 0.12 * min(longest, 10) + 0.3  # monospace 9 pt: about 0.075 in per character
    return side + label_in + 1.3, side + (label_in if longest > 2 else 0.25) + 0.9


def draw_heatmap(ax: Any, tokens: list[str], matrix: Tensor, title: str, query: int | None,
                 colorbar: bool = True) -> tuple[Any, Any, Any]:
    """Draw the heatmap, its labels and colour bar; returns its changing artists (image, query outline, title)."""
    from matplotlib.patches import Rectangle

    T = matrix.size(-1)
    im = ax.imshow(matrix.numpy(), cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    label_axis(ax, tokens, "x")
    label_axis(ax, tokens, "y")
    ax.set_xlabel("key: the token attended to (column)", fontsize=LABEL_PT + 1)
    ax.set_ylabel("query: the token attending (row)", fontsize=LABEL_PT + 1)
    title_artist = ax.set_title(title, fontsize=TITLE_PT)
    rect = ax.add_patch(Rectangle((-0.5, (query or 0) - 0.5), T, 1, fill=False, edgecolor="red", linewidth=1.6,
                                  visible=query is not None))
    if colorbar:
        bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03, shrink=0.8)
        bar.set_label("attention weight", fontsize=LABEL_PT + 1)
        bar.ax.tick_params(labelsize=LABEL_PT)
    return im, rect, title_artist


def _check_weights(weights: Any, tokens: list[str], layer: int, head: int, query: int | None) -> None:
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


def plot_attention(tokens: list[str], weights: Tensor, layer: int, head: int, ax: Any = None, *,
                   query: int | None = None, title: str | None = None) -> Any:
    """Heatmap of one head: row i = how query token i spreads its attention over the key tokens.

    Draws on ``ax`` if given, else on a new Figure; returns the Figure. ``query`` outlines one row.

    Shape: tokens (T strings), weights (L, H, T, T)

    Example:
        >>> tokens, w = attention_weights(model, tok, "hello")
        >>> fig = plot_attention(tokens, w, layer=0, head=1)
    """
    _check_weights(weights, tokens, layer, head, query)
    if ax is None:
        ax = new_figure(*heatmap_size(tokens)).add_subplot()
    draw_heatmap(ax, tokens, weights[layer, head], title or f"layer {layer}, head {head}", query)
    return ax.figure


def bars_size(T: int) -> tuple[float, float]:
    return max(5.0, min(T, MAX_LABELS) * PITCH_IN + 1.5), 3.2


def draw_bars(ax: Any, tokens: list[str], row: Tensor, query: int, title: str) -> tuple[Any, Any]:
    """Draw the bars; returns the BarContainer and the title artist."""
    T = row.size(0)
    colors = ["tab:red" if j == query else "tab:blue" for j in range(T)]
    bars = ax.bar(range(T), row.numpy(), color=colors, width=0.85)
    ax.set_xlim(-0.6, T - 0.4)
    ax.set_ylim(0.0, max(1e-6, float(row.max())) * 1.1)
    label_axis(ax, tokens, "x")
    ax.tick_params(axis="y", labelsize=LABEL_PT)
    ax.yaxis.set_major_formatter("{x:.2f}")  # labels of one width, whatever the scale
    ax.set_ylabel("attention weight", fontsize=LABEL_PT + 1)
    ax.set_xlabel("key (red: the query itself)", fontsize=LABEL_PT + 1)
    return bars, ax.set_title(title, fontsize=TITLE_PT)


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
        ax = new_figure(*bars_size(T)).add_subplot()
    q = token_label(tokens[query]) if 0 <= query < len(tokens) else "?"
    draw_bars(ax, tokens, row, query, title or f"query {query} '{q}'")
    return ax.figure


def plot_rollout(tokens: list[str], rollout: Tensor, ax: Any = None, *, query: int | None = None,
                 title: str = "attention rollout") -> Any:
    """Heatmap of an attention rollout (``attention_rollout``): row i spreads token i over the inputs.

    Shape: tokens (T strings), rollout (T, T)
    """
    if not isinstance(rollout, Tensor) or rollout.dim() != 2:
        raise ValueError("rollout must be a (T, T) tensor, e.g. attention_rollout(weights)")
    _check_tokens(tokens, rollout.size(0))
    if ax is None:
        ax = new_figure(*heatmap_size(tokens)).add_subplot()
    draw_heatmap(ax, tokens, rollout, title, query)
    return ax.figure


def plot_grid(weights: Tensor, selected: tuple[int, int] | None = None) -> Any:
    """Every layer (rows) and head (columns) as a small heatmap with its name, 1.6 in each.

    Shape: weights (L, H, T, T)
    """
    L, H = weights.shape[:2]
    fig = new_figure(1.6 * H + 1.2, 1.6 * L + 0.5)
    axes = fig.subplots(L, H, squeeze=False)
    for l in range(L):
        for h in range(H):
            ax = axes[l][h]
            im = ax.imshow(weights[l, h].numpy(), cmap=CMAP, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            bold = (l, h) == selected
            ax.set_title(f"layer {l}, head {h}", fontsize=LABEL_PT + 1, fontweight="bold" if bold else "normal",
                         color="tab:red" if bold else "black")
    bar = fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02)
    bar.set_label("attention weight", fontsize=LABEL_PT + 1)
    bar.ax.tick_params(labelsize=LABEL_PT)
    return fig


def thumbnail_png(matrix: Tensor, size: int = 96) -> bytes:
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
