"""Live figures for the explorer: draw the static parts once, redraw only what changes (blitting).

Tick labels and the colour bar are the slow part of a heatmap (each label is laid out and rasterized).
They do not change when the layer, head or query changes, so each figure is drawn once without its
changing ("dynamic") artists, that picture is kept, and each update pastes it back and draws the
dynamic artists on top, as matplotlib's animation module does.

Each live figure also answers "which cell is under this pixel?" (``cell_at``), which is how a click
or the pointer on the image becomes a query and a key.

Letters: T tokens.
"""

from __future__ import annotations

import io
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from lmlab.viz.plots import (
    LABEL_PT, TOKEN_FONT, bars_size, draw_bars, draw_heatmap, heatmap_size, new_figure, token_label,
)

__all__ = ["Blitter", "LiveHeatmap", "LiveBars"]


class Blitter:
    """Renders a figure to PNG quickly by redrawing only its ``dynamic`` artists."""

    def __init__(self, fig: Any, dynamic: list[Any], dpi: int):
        self.fig, self.dynamic = fig, dynamic
        fig.set_dpi(dpi)
        fig.canvas.draw()  # the layout, with room for every artist
        fig.set_layout_engine("none")  # keep it: later draws must not move the axes
        for artist in dynamic:
            artist.set_animated(True)  # left out of canvas.draw()
        fig.canvas.draw()  # every static part, once
        self.background = fig.canvas.copy_from_bbox(fig.bbox)

    def png(self, paint: Callable[[np.ndarray], None] | None = None) -> bytes:
        """PNG bytes; ``paint(pixels)`` may change the (height, width, 4) pixels before the dynamic artists."""
        from PIL import Image

        canvas = self.fig.canvas
        canvas.restore_region(self.background)
        if paint is not None:
            paint(np.asarray(canvas.buffer_rgba()))
        for artist in self.dynamic:
            self.fig.draw_artist(artist)
        w, h = canvas.get_width_height()
        image = Image.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)  # quick; the files stay small
        return buf.getvalue()


def _data_at(ax: Any, x: float, y: float) -> tuple[float, float]:
    """Image pixel (origin top left) -> data coordinates of ``ax``."""
    height = ax.figure.canvas.get_width_height()[1]
    return tuple(ax.transData.inverted().transform((x, height - y)))


def _marker_label(ax: Any, axis: str) -> Any:
    """A red token label drawn over the static tick labels (white box hides the one beneath)."""
    style = {"fontsize": LABEL_PT, "family": TOKEN_FONT, "color": "tab:red", "fontweight": "bold",
             "bbox": {"facecolor": "white", "edgecolor": "tab:red", "pad": 1.0, "linewidth": 0.8}}
    if axis == "y":
        return ax.annotate("", (0, 0), xycoords=("axes fraction", "data"), xytext=(-7, 0),
                           textcoords="offset points", ha="right", va="center", **style)
    return ax.annotate("", (0, 0), xycoords=("data", "axes fraction"), xytext=(0, -7),
                       textcoords="offset points", ha="center", va="top", **style)


class LiveHeatmap:
    """A (T, T) heatmap with token labels and colour bar whose matrix, query row, chosen key and title
    change quickly. The query's row is outlined in red and its label shown in red (always, even when
    only every k-th token has a label); a chosen key's column is outlined and labelled the same way.

    Example:
        >>> live = LiveHeatmap(tokens)
        >>> png = live.render(weights[0, 1], "layer 0, head 1", query=4, key=2)   # PNG bytes
        >>> live.cell_at(310, 200)    # (query, key) under that pixel of the PNG, None outside
    """

    def __init__(self, tokens: list[str], dpi: int = 100):
        from matplotlib.patches import Rectangle

        T = len(tokens)
        self.tokens, self.T = tokens, T
        ax = new_figure(*heatmap_size(tokens)).add_subplot()
        self.ax = ax
        self.im, self.rect, self.title = draw_heatmap(ax, tokens, torch.zeros(T, T), "layer 00, head 00", 0)
        self.key_rect = ax.add_patch(Rectangle((-0.5, -0.5), 1, T, fill=False, edgecolor="white", linewidth=1.4,
                                               linestyle="--", visible=False))
        self.query_label, self.key_label = _marker_label(ax, "y"), _marker_label(ax, "x")
        dynamic = [*ax.spines.values(), self.rect, self.key_rect, self.query_label, self.key_label, self.title]
        self._blit = Blitter(ax.figure, dynamic, dpi)
        self._pixel_cells()

    def _pixel_cells(self) -> None:
        """For each pixel row and column inside the map, the cell it shows (nearest neighbour, as imshow).

        The map is painted straight into the canvas with these indices and a colour table: much quicker
        than resampling the image through matplotlib at each update.
        """
        from matplotlib import colormaps

        height = self.ax.figure.canvas.get_width_height()[1]
        (x0, top), (x1, bottom) = self.ax.transData.transform([(-0.5, -0.5), (self.T - 0.5, self.T - 0.5)])
        top, bottom = height - top, height - bottom  # y down, as the pixel rows
        self.cols = np.arange(int(np.ceil(x0 - 0.5)), int(np.ceil(x1 - 0.5)))  # pixel columns in the map
        self.rows = np.arange(int(np.ceil(top - 0.5)), int(np.ceil(bottom - 0.5)))
        self.col_cell = np.clip(((self.cols + 0.5 - x0) / (x1 - x0) * self.T).astype(int), 0, self.T - 1)
        self.row_cell = np.clip(((self.rows + 0.5 - top) / (bottom - top) * self.T).astype(int), 0, self.T - 1)
        rgba = colormaps[self.im.get_cmap().name](np.arange(256) / 255)  # (256, 4) floats
        self.colors = np.ascontiguousarray((rgba * 255).round().astype(np.uint8))  # (256, 4)

    def _paint(self, matrix: np.ndarray, pixels: np.ndarray) -> None:
        """Colour the map's pixels: value v in [0, 1] -> colour table entry min(int(v * 256), 255)."""
        index = np.clip((matrix * 256).astype(int), 0, 255)  # (T, T), as Colormap.__call__ bins
        cells = self.colors.view(np.uint32)[index, 0]  # (T, T): one RGBA pixel as one 32-bit number
        block = cells.take(self.row_cell, axis=0).take(self.col_cell, axis=1)  # (rows, cols)
        pixels.view(np.uint32)[self.rows[0]:self.rows[-1] + 1, self.cols[0]:self.cols[-1] + 1, 0] = block

    def render(self, matrix: Tensor, title: str, query: int | None = None, key: int | None = None) -> bytes:
        """Shape: matrix (T, T) -> PNG bytes"""
        if tuple(matrix.shape) != (self.T, self.T):
            raise ValueError(f"matrix must be ({self.T}, {self.T}) like the tokens, got {tuple(matrix.shape)}")
        self.im.set_data(matrix.numpy())  # for the colour bar and for readers of the figure
        for artist, pos, label in ((self.rect, query, self.query_label), (self.key_rect, key, self.key_label)):
            artist.set_visible(pos is not None)
            label.set_visible(pos is not None)
            if pos is None:
                continue
            label.set_text(token_label(self.tokens[pos]))
            if artist is self.rect:
                artist.set_y(pos - 0.5)
                label.xy = (0, pos)
            else:
                artist.set_x(pos - 0.5)
                label.xy = (pos, 0)
        self.title.set_text(title)
        values = matrix.float().numpy()
        return self._blit.png(lambda pixels: self._paint(values, pixels))

    def cell_at(self, x: float, y: float) -> tuple[int | None, int | None]:
        """(query, key) under pixel (x, y) of the PNG (origin top left). On a query's label (left of the
        map) the key is None; on a key's label (below it) the query is None; elsewhere both are None."""
        col, row = _data_at(self.ax, x, y)
        inside_rows, inside_cols = -0.5 <= row < self.T - 0.5, -0.5 <= col < self.T - 0.5
        q = int(round(row)) if inside_rows else None
        k = int(round(col)) if inside_cols else None
        if q is not None and k is None and col >= self.T - 0.5:
            q = None  # right of the map (the colour bar)
        if k is not None and q is None and row < -0.5:
            k = None  # above the map (the title)
        return q, k


class LiveBars:
    """Bars over the T tokens (one query's attention) whose heights, highlight and title change quickly.

    The y axis rescales to the tallest bar, so it is redrawn with the bars.
    """

    def __init__(self, tokens: list[str], dpi: int = 100):
        T = len(tokens)
        ax = new_figure(*bars_size(T)).add_subplot()
        self.ax = ax
        self.bars, self.title = draw_bars(ax, tokens, torch.zeros(T), -1, "query 00")
        ax.set_ylim(0.0, 1.0)  # room for the widest labels ("0.00") when the layout is made
        self.T = T
        self._blit = Blitter(ax.figure, [*self.bars.patches, ax.yaxis, self.title], dpi)

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

    def cell_at(self, x: float, y: float) -> tuple[None, int | None]:
        """(None, key) for the bar (or its label) under pixel (x, y) of the PNG."""
        col, _ = _data_at(self.ax, x, y)
        return None, int(round(col)) if -0.5 <= col < self.T - 0.5 else None
