"""AttentionExplorer: a widget to look at every head's attention on any text you type.

    explorer = AttentionExplorer(model, tokenizer, "The cat sat on the mat.")
    explorer            # the live widget (JupyterLab, Notebook 7, VS Code, Colab)
    explorer.static_figure()                     # a plain matplotlib figure, for HTML renders
    explorer.export("exports/head.html")         # .png, .svg (dpi=150) or a self-contained .html

Views (tabs): one head as a heatmap; all layers x heads as thumbnails (click one to open it); the
head view (lines between tokens, heads overlaid by colour); the neuron view (query and key vectors and
their element-wise product); one query's attention as bars; attention rollout; head ablation (the
loss and the predictions without the head); and, for causal models, a greedy generation you step
through token by token. "weights" switches the head, grid, lines and query views to value-weighted
attention. Click a row or a token label to make it the query, click a cell or a key label to choose
a key; the readout shows the weight under the pointer or last clicked.

How it stays quick: the attention tensor is computed once per text and cached; a control change
redraws only the visible view, with matplotlib (Agg, 100 dpi, static parts drawn once) into PNG bytes
shown by a ``widgets.Image`` (no JavaScript plotting library, nothing from a CDN, nothing printed into
an ``Output`` widget that nbval would record). Clicks and pointer moves on the images reach Python
through ``ipyevents``. ``last_update_seconds`` holds the time from the last control change to the new
image bytes.

Each explorer owns all its state and widgets; several in one notebook do not interact.

Letters: L layers, H heads, T tokens.
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch.nn as nn
from torch import Tensor

from lmlab.viz import export as exports
from lmlab.viz import ui, views
from lmlab.viz.internals import Ablation, HeadVectors, ablate_head, head_vectors, inspectable, value_weighted
from lmlab.viz.plots import figure_bytes, thumbnail_png, token_label
from lmlab.viz.weights import (
    GenerationTrace, attention_rollout, attention_weights, generation_attention, generation_room, is_causal,
)

__all__ = ["AttentionExplorer", "VIEWS"]

VIEWS = ui.VIEWS
_CACHED_TEXTS = 4  # texts whose attention stays cached per explorer


class AttentionExplorer:
    """Interactive attention explorer for an lmlab GPT / MaskedLM or a Hugging Face model.

    Args:
        model: lmlab ``GPT`` or ``MaskedLM``, or a transformers model built/loaded with
            ``attn_implementation="eager"`` (others return no attention weights).
        tokenizer: the model's tokenizer: lmlab ``CharTokenizer`` / ``BPETokenizer`` or a Hugging Face one.
        text: the first text to show; type another one in the box and press "Show attention".
        max_tokens: longest text accepted (the model's context size is a limit as well).
        new_tokens: how many tokens the generation view adds by default.
        dpi: resolution of the live images (100: 9 pt labels are 12.5 px on the screen).

    Raises ValueError if ``text`` is longer than ``max_tokens`` (a text typed later that is too long
    only shows a message and keeps the current view).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, text: str = "The cat sat on the mat because it was tired.",
                 *, max_tokens: int = 512, new_tokens: int = 20, dpi: int = 100):
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
        if not isinstance(new_tokens, int) or new_tokens < 1:
            raise ValueError(f"new_tokens must be a positive int, got {new_tokens!r}")
        if not isinstance(dpi, int) or dpi < 20:
            raise ValueError(f"dpi must be an int >= 20, got {dpi!r}")
        self.model, self.tokenizer = model, tokenizer
        self.max_tokens, self.dpi = max_tokens, dpi
        self.last_update_seconds: float | None = None  # control change -> new image bytes
        self.message = ""  # the last problem shown under the text box ("" if none)
        self.key: int | None = None  # the key (column) last clicked, None if none
        self._cache: OrderedDict[str, tuple[list[str], Tensor]] = OrderedDict()
        self.shown: dict[str, Tensor] = {}  # view -> the numbers its image shows now (for checks and tests)
        self.live: dict[str, Any] = {}  # view -> its quick-redraw figure for the current text
        self._stale: set[str] = set(VIEWS)  # views whose image does not match the controls yet
        self._quiet = False  # True while controls are set in bulk: no redraws
        self.trace: GenerationTrace | None = None
        self.causal = is_causal(model)
        self.inspectable = inspectable(model)  # q/k/v, value-weighted attention and ablation available
        self.text = text
        self.tokens, self.weights = self._attention(text)  # raises ValueError if too long
        w = self.w = ui.build(self, new_tokens)  # every widget, by name
        self.text_box, self.run_button, self.status = w.text_box, w.run_button, w.status
        self.layer, self.head, self.query, self.mode, self.heads = w.layer, w.head, w.query, w.mode, w.heads
        self.readout, self.tabs, self.images, self.thumbnails = w.readout, w.tabs, w.images, w.thumbnails
        self.new_tokens, self.generate_button, self.step = w.new_tokens, w.generate_button, w.step
        self.generated_text, self.widget = w.generated_text, w.widget
        self._new_text_loaded()

    # -- data ------------------------------------------------------------------------------------------

    def _attention(self, text: str) -> tuple[list[str], Tensor]:
        if text in self._cache:
            self._cache.move_to_end(text)
            return self._cache[text]
        result = attention_weights(self.model, self.tokenizer, text, max_tokens=self.max_tokens)
        self._cache[text] = result
        while len(self._cache) > _CACHED_TEXTS:
            self._cache.popitem(last=False)
        return result

    def rollout(self, layer: int | None = None) -> Tensor:
        """Attention rollout through layers 0..``layer`` (default: all) of the current text. Shape: (T, T)"""
        L = self.weights.size(0)
        layer = L - 1 if layer is None else layer
        if not 0 <= layer < L:
            raise ValueError(f"layer must be in 0..{L - 1}, got {layer}")
        if layer not in self._derived["rollout"]:
            self._derived["rollout"][layer] = attention_rollout(self.weights[: layer + 1])
        return self._derived["rollout"][layer]

    def vectors(self) -> HeadVectors:
        """Every head's q, k and v vectors for the current text (computed once per text)."""
        if "vectors" not in self._derived:
            self._derived["vectors"] = head_vectors(self.model, self.tokenizer, self.text)
        return self._derived["vectors"]

    def matrix(self) -> Tensor:
        """The weights the head, grid, lines and query views show: attention or value-weighted. (L, H, T, T)"""
        if self.mode.value != "value-weighted":
            return self.weights
        if "value_weighted" not in self._derived:
            self._derived["value_weighted"] = value_weighted(self.model, self.weights, self.vectors())
        return self._derived["value_weighted"]

    def ablation(self) -> Ablation:
        """What zeroing the selected head changes on the current text, at the selected query (cached)."""
        key = (self.layer.value, self.head.value, self.query.value)
        cache = self._derived["ablation"]
        if key not in cache:
            cache[key] = ablate_head(self.model, self.tokenizer, self.text, *key)
        return cache[key]

    # -- loading a text --------------------------------------------------------------------------------

    def _new_text_loaded(self) -> None:
        """Controls, thumbnails and the generation tab for a new text; then draw the visible view."""
        self._derived: dict[str, Any] = {"rollout": {}, "ablation": {}}
        self.live, self.shown, self.trace, self.key = {}, {}, None, None
        self._quiet = True
        try:
            T = len(self.tokens)
            old = self.query.value if self.query.options else None
            self.query.options = [(f"{i}: {token_label(t, 12).replace(chr(92) + '$', '$')}", i)
                                  for i, t in enumerate(self.tokens)]
            self.query.value = old if old is not None and old < T else T - 1
            self.step.max, self.step.value, self.step.disabled = 1, 1, True
        finally:
            self._quiet = False
        self._reset_generation()
        self._refresh_thumbnails()
        self._refresh_labels()
        self._stale = set(VIEWS)
        self._redraw()

    def _reset_generation(self) -> None:
        """The generation tab before any generation: a hint (no empty image), Generate off if it cannot run."""
        room = generation_room(self.model, len(self.tokens), self.max_tokens)
        self.images["generation"].layout.display = "none"
        if not self.causal:
            reason = "This model is bidirectional (every token sees every other): it does not generate left to right."
        elif room < 1:
            reason = (f"Generate is off: the text ({len(self.tokens)} tokens) already fills the model's context. "
                      "Shorten the text to make room for new tokens.")
        else:
            reason = ""
            self.new_tokens.max = room
            self.new_tokens.value = min(self.new_tokens.value, room)
        self.generate_button.disabled = bool(reason)
        self.generate_button.tooltip = reason or "continue the text greedily"
        self.generated_text.value = ui.hint(reason or "Press Generate to continue the text greedily, then step "
                                            "through the new tokens to see where each one was chosen from.")

    def _refresh_thumbnails(self) -> None:
        m = self.matrix()
        for (l, h), thumb in self.thumbnails.items():
            thumb.value = thumbnail_png(m[l, h])

    def _refresh_labels(self) -> None:
        L, H, T, _ = self.weights.shape
        self.widget._lmlab_repr = (f"AttentionExplorer({type(self.model).__name__}, {L} layers x {H} heads, "
                                   f"{T} tokens)")
        for (l, h), box in self.w.thumb_boxes.items():
            box.layout.border = "3px solid #d62728" if (l, h) == (self.layer.value, self.head.value) else \
                "3px solid transparent"

    # -- events ----------------------------------------------------------------------------------------

    @property
    def view(self) -> str:
        """The visible view: one of ``VIEWS`` ("head", "grid", "lines", ...). Settable."""
        return VIEWS[self.tabs.selected_index or 0]

    @view.setter
    def view(self, name: str) -> None:
        if name not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {name!r}")
        self.tabs.selected_index = VIEWS.index(name)

    def on_control(self, change: dict) -> None:
        """A control changed (layer, head, query, step, lines' heads): redraw the visible view."""
        if self._quiet:
            return
        start = time.perf_counter()
        self._stale = set(VIEWS) - {"grid"}
        self._refresh_labels()
        self._redraw()
        self.last_update_seconds = time.perf_counter() - start

    def on_mode(self, change: dict) -> None:
        """attention <-> value-weighted: new thumbnails and a redraw."""
        self._refresh_thumbnails()
        self.on_control(change)

    def on_tab(self, change: dict) -> None:
        self._redraw()

    def open_head(self, layer: int, head: int, _event: Any = None) -> None:
        """Open head ``head`` of layer ``layer`` in the head view (what a click on its thumbnail does)."""
        self._quiet = True
        try:
            self.layer.value, self.head.value = layer, head
        finally:
            self._quiet = False
        self._stale = set(VIEWS) - {"grid"}
        self._refresh_labels()
        if self.view == "head":
            self._redraw()
        else:
            self.view = "head"  # redraws through on_tab

    def on_pointer(self, view: str, event: dict) -> None:
        """A click or pointer move on a view's image (from ipyevents; x, y in the image's pixels).

        Click: a row or a query label chooses the query, a cell or a key label the key. Move: the readout
        shows the weight under the pointer.
        """
        live = self.live.get(view)
        if live is None or "dataX" not in event:
            return
        q, k = live.cell_at(float(event["dataX"]), float(event["dataY"]))
        if event.get("type") == "click":
            if k is not None and self.key != k:
                self.key = k
                if q is None or q == self.query.value:
                    self.on_control({})
            if q is not None and view != "query":
                self.query.value = q  # redraws
            self.readout.value = views.readout(self, view, self.query.value, self.key)
        else:
            self.readout.value = views.readout(self, view, q, k, pointer=True)

    def _redraw(self) -> None:
        view = self.view
        if view not in self._stale:
            return
        if view != "grid":
            data = views.render(self, view)
            if data is not None:
                self.images[view].value = data
        self.readout.value = views.readout(self, view, self.query.value, self.key)
        self._stale.discard(view)

    def set_text(self, text: str) -> None:
        """Show the attention on a new text (what the "Show attention" button does).

        A text that is empty or too long leaves the view as it is and explains why in ``status``
        (and in ``message``).
        """
        try:
            tokens, weights = self._attention(text)
        except ValueError as err:
            self.message = str(err)
            self.status.value = f"<span style='color:#b00'>{html.escape(self.message)}</span>"
            return
        self.message = ""
        self.status.value = ""
        self.text = text
        if self.text_box.value != text:
            self.text_box.value = text
        self.tokens, self.weights = tokens, weights
        self._new_text_loaded()

    def on_generate(self, _button: Any = None) -> None:
        try:
            self.generate(self.new_tokens.value)
        except ValueError:
            pass  # the message is shown in the generation tab

    def generate(self, new_tokens: int = 20) -> GenerationTrace:
        """Continue the current text greedily and step through the new tokens with the ``step`` slider."""
        try:
            trace = generation_attention(self.model, self.tokenizer, self.text, new_tokens,
                                         max_tokens=self.max_tokens)
        except ValueError as err:
            self.message = str(err)
            self.generated_text.value = f"<span style='color:#b00'>{html.escape(self.message)}</span>"
            raise
        self.trace = trace
        self._quiet = True
        try:
            self.step.max, self.step.value, self.step.disabled = trace.steps, 1, False
        finally:
            self._quiet = False
        self.images["generation"].layout.display = ""
        self._stale.add("generation")
        if self.view == "generation":
            self._redraw()
        else:
            self.view = "generation"
        return trace

    # -- figures and export ----------------------------------------------------------------------------

    def figure(self, view: str | None = None) -> Any:
        """The matplotlib Figure of ``view`` (default: the visible one) for the current controls
        (None for the generation view before a generation)."""
        return views.figure(self, self.view if view is None else view)

    def static_figure(self) -> Any:
        """One Figure with the head heatmap, the rollout and the query's bars for the current controls:
        the explorer's picture for places without live widgets (a notebook rendered to HTML)."""
        return views.static_figure(self)

    def export(self, path: str | os.PathLike, view: str | None = None, *, dpi: int = 150) -> Path:
        """Write ``view`` (default: the visible one) as .png or .svg at ``dpi``, or as a self-contained .html.

        The HTML page needs nothing from the network (images as data URIs, one inline script) and
        behaves like the widget: for the head, grid and rollout views, click a thumbnail to open that
        head, click a row or a token to choose the query, point at a cell to read its weight. The
        generation page holds the generated text and every step. Returns the path written.
        """
        return exports.export(self, path, self.view if view is None else view, dpi)

    # -- display ---------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return repr(self.widget)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        """The live widget; a PNG of the visible view for places without live widgets (GitHub, rendered
        pages, a notebook opened before it runs); a short stable text/plain (what nbval compares)."""
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        view = self.view
        picture = self.images[view].value if view in self.images else b""
        if not picture:
            picture = figure_bytes(views.figure(self, "head" if view == "generation" else view), "png", self.dpi)
        bundle["image/png"] = base64.b64encode(picture).decode("ascii")  # as Jupyter stores images
        return bundle
