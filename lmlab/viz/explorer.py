"""AttentionExplorer: a widget to look at every head's attention on any text you type.

    explorer = AttentionExplorer(model, tokenizer, "The cat sat on the mat.")
    explorer            # the live widget (JupyterLab, Notebook 7, VS Code, Colab)
    explorer.static_figure()                     # a plain matplotlib figure, for HTML renders
    explorer.export("head.svg", view="head")     # .png, .svg or a self-contained .html

Views (tabs): one head as a heatmap; all layers x heads as thumbnails (click a button to open one);
one query token's attention as bars; attention rollout through the layers; and, for causal models,
a greedy generation you step through token by token to see where each new token's choice looked.

How it stays quick: the attention tensor is computed once per text and cached; a control change
redraws only the visible view, with matplotlib (Agg, dpi 80) into PNG bytes shown by a
``widgets.Image`` (no JavaScript plotting library, nothing from a CDN, nothing printed into an
``Output`` widget that nbval would record). ``last_update_seconds`` holds the time from the last
control change to the new image bytes.

Each explorer owns all its state and widgets; several in one notebook do not interact.

Letters: L layers, H heads, T tokens.
"""

from __future__ import annotations

import base64
import functools
import html
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch.nn as nn
from torch import Tensor

from lmlab.viz.plots import (
    LiveBars, LiveHeatmap, figure_bytes, new_figure, plot_attention, plot_query, plot_rollout, thumbnail_png,
    token_label,
)
from lmlab.viz.weights import (
    GenerationTrace, attention_rollout, attention_weights, generation_attention, is_causal,
)

__all__ = ["AttentionExplorer"]

VIEWS = ("head", "grid", "query", "rollout", "generation")
_TITLES = ("Head", "All heads", "Query", "Rollout", "Generation")
_CACHED_TEXTS = 4  # texts whose attention stays cached per explorer


@functools.cache
def _box_class() -> type:
    """A VBox whose text repr is short and stable (nbval compares the text/plain of a widget)."""
    import ipywidgets as widgets

    class ExplorerBox(widgets.VBox):
        def __repr__(self) -> str:
            return getattr(self, "_lmlab_repr", "AttentionExplorer")

    return ExplorerBox


def _plain(token: str, max_len: int = 12) -> str:
    return token_label(token, max_len).replace(r"\$", "$")


class AttentionExplorer:
    """Interactive attention explorer for an lmlab GPT / MaskedLM or a Hugging Face model.

    Args:
        model: lmlab ``GPT`` or ``MaskedLM``, or a transformers model built/loaded with
            ``attn_implementation="eager"`` (others return no attention weights).
        tokenizer: the model's tokenizer: lmlab ``CharTokenizer`` / ``BPETokenizer`` or a Hugging Face one.
        text: the first text to show; type another one in the box and press "Show attention".
        max_tokens: longest text accepted (the model's context size is a limit as well).
        new_tokens: how many tokens the generation view adds by default.
        dpi: resolution of the rendered images; 80 keeps them small and quick.

    Raises ValueError if ``text`` is longer than ``max_tokens`` (a text typed later that is too long
    only shows a message and keeps the current view).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, text: str = "The cat sat on the mat because it was tired.",
                 *, max_tokens: int = 512, new_tokens: int = 20, dpi: int = 80):
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
        if not isinstance(new_tokens, int) or new_tokens < 1:
            raise ValueError(f"new_tokens must be a positive int, got {new_tokens!r}")
        if not isinstance(dpi, int) or dpi < 20:
            raise ValueError(f"dpi must be an int >= 20, got {dpi!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.dpi = dpi
        self.last_update_seconds: float | None = None  # control change -> new image bytes
        self.message = ""  # the last problem shown under the text box ("" if none)
        self._cache: OrderedDict[str, tuple[list[str], Tensor]] = OrderedDict()
        self._rollouts: dict[int, Tensor] = {}  # layer -> rollout through layers 0..layer, current text
        self._live: dict[str, LiveHeatmap | LiveBars] = {}  # view -> its quick-redraw figure, current text
        self.shown: dict[str, Tensor] = {}  # view -> the numbers its image shows now (for checks and tests)
        self._stale: set[str] = set(VIEWS)  # views whose image does not match the controls yet
        self._quiet = False  # True while controls are set in bulk: no redraws
        self.trace: GenerationTrace | None = None
        self.causal = is_causal(model)
        self.text = text
        self.tokens, self.weights = self._attention(text)  # raises ValueError if too long
        self._build(new_tokens)
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
        if layer not in self._rollouts:
            self._rollouts[layer] = attention_rollout(self.weights[: layer + 1])
        return self._rollouts[layer]

    # -- widgets ---------------------------------------------------------------------------------------

    def _build(self, new_tokens: int) -> None:
        import ipywidgets as widgets

        L, H = self.weights.shape[:2]
        self.text_box = widgets.Textarea(value=self.text, placeholder="Type a text, then press Show attention",
                                         rows=3, layout=widgets.Layout(width="98%"))
        self.run_button = widgets.Button(description="Show attention", button_style="primary")
        self.status = widgets.HTML(value="")
        self.layer = widgets.Dropdown(options=[(str(i), i) for i in range(L)], value=0, description="layer",
                                      layout=widgets.Layout(width="140px"), style={"description_width": "40px"})
        self.head = widgets.Dropdown(options=[(str(i), i) for i in range(H)], value=0, description="head",
                                     layout=widgets.Layout(width="140px"), style={"description_width": "40px"})
        self.query = widgets.Dropdown(description="query", layout=widgets.Layout(width="230px"),
                                      style={"description_width": "40px"})
        for w, name in ((self.text_box, "text"), (self.run_button, "run"), (self.layer, "layer"),
                        (self.head, "head"), (self.query, "query")):
            w.add_class(f"lmlab-{name}")

        # natural size, not stretched to the box's width (a stretched PNG looks blurred)
        self.images = {v: widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
                       for v in ("head", "query", "rollout", "generation")}
        for v, img in self.images.items():
            img.add_class(f"lmlab-{v}-image")

        self.grid_buttons: dict[tuple[int, int], Any] = {}
        self.thumbnails: dict[tuple[int, int], Any] = {}
        cells = []
        for l in range(L):
            for h in range(H):
                thumb = widgets.Image(format="png", layout=widgets.Layout(width="64px", height="64px"))
                button = widgets.Button(description=f"L{l} H{h}", layout=widgets.Layout(width="64px"),
                                        tooltip=f"open layer {l}, head {h}")
                button.on_click(functools.partial(self._open_head, l, h))
                self.thumbnails[l, h], self.grid_buttons[l, h] = thumb, button
                cells.append(widgets.VBox([thumb, button], layout=widgets.Layout(align_items="center")))
        grid = widgets.GridBox(cells, layout=widgets.Layout(grid_template_columns=f"repeat({H}, 72px)",
                                                            grid_gap="4px"))
        grid.add_class("lmlab-grid")

        self.new_tokens = widgets.BoundedIntText(value=new_tokens, min=1, max=max(1, self.max_tokens),
                                                 description="new tokens", layout=widgets.Layout(width="170px"))
        self.generate_button = widgets.Button(description="Generate", disabled=not self.causal)
        self.step = widgets.IntSlider(value=1, min=1, max=1, description="step", disabled=True,
                                      continuous_update=False)  # one redraw when the handle is let go
        self.generated_text = widgets.HTML(
            value="" if self.causal else "<i>This model is bidirectional: it does not generate left to right.</i>")
        self.step.add_class("lmlab-step")
        self.generate_button.add_class("lmlab-generate")

        self.tabs = widgets.Tab(children=[
            widgets.VBox([self.images["head"]]),
            grid,
            widgets.VBox([self.images["query"]]),
            widgets.VBox([widgets.HTML("<small>Rollout through layers 0..layer (Abnar &amp; Zuidema, 2020): heads "
                                       "averaged, identity added for the residual, rows renormalized.</small>"),
                          self.images["rollout"]]),
            widgets.VBox([widgets.HBox([self.new_tokens, self.generate_button]), self.step, self.generated_text,
                          self.images["generation"]]),
        ])
        self.tabs.titles = _TITLES
        self.widget = _box_class()([
            self.text_box, widgets.HBox([self.run_button, self.status]),
            widgets.HBox([self.layer, self.head, self.query]), self.tabs,
        ])
        self.widget.add_class("lmlab-attention-explorer")

        self.run_button.on_click(lambda _: self.set_text(self.text_box.value))
        self.generate_button.on_click(self._on_generate)
        for control in (self.layer, self.head, self.query, self.step):
            control.observe(self._on_control, names="value")
        self.tabs.observe(self._on_tab, names="selected_index")

    def _new_text_loaded(self) -> None:
        """Controls and thumbnails for a new text; then draw the visible view."""
        self._rollouts = {}
        self._live = {}
        self.shown = {}
        self.trace = None
        self._quiet = True
        try:
            T = len(self.tokens)
            old = self.query.value if self.query.options else None
            self.query.options = [(f"{i}: {_plain(t)}", i) for i, t in enumerate(self.tokens)]
            self.query.value = old if old is not None and old < T else T - 1
            self.step.max, self.step.value, self.step.disabled = 1, 1, True
            if self.causal:
                self.generated_text.value = "<i>Press Generate to continue the text greedily.</i>"
        finally:
            self._quiet = False
        for (l, h), thumb in self.thumbnails.items():
            thumb.value = thumbnail_png(self.weights[l, h])
        self._refresh_labels()
        self._stale = set(VIEWS)
        self._redraw()

    def _refresh_labels(self) -> None:
        L, H, T, _ = self.weights.shape
        self.widget._lmlab_repr = (f"AttentionExplorer({type(self.model).__name__}, {L} layers x {H} heads, "
                                   f"{T} tokens)")
        for (l, h), button in self.grid_buttons.items():
            button.button_style = "info" if (l, h) == (self.layer.value, self.head.value) else ""

    # -- events ----------------------------------------------------------------------------------------

    @property
    def view(self) -> str:
        """The visible view: "head", "grid", "query", "rollout" or "generation". Settable."""
        return VIEWS[self.tabs.selected_index or 0]

    @view.setter
    def view(self, name: str) -> None:
        if name not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {name!r}")
        self.tabs.selected_index = VIEWS.index(name)

    def _on_control(self, change: dict) -> None:
        if self._quiet:
            return
        start = time.perf_counter()
        self._stale = set(VIEWS) - {"grid"}
        self._refresh_labels()
        self._redraw()
        self.last_update_seconds = time.perf_counter() - start

    def _on_tab(self, change: dict) -> None:
        self._redraw()

    def _open_head(self, layer: int, head: int, _button: Any = None) -> None:
        """A thumbnail's button: select its layer and head and switch to the head view."""
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
            self.view = "head"  # redraws through _on_tab

    def _redraw(self) -> None:
        view = self.view
        if view not in self._stale:
            return
        if view != "grid":
            self.images[view].value = self._render(view)
        self._stale.discard(view)

    def _render(self, view: str) -> bytes:
        """PNG bytes of a view for the current controls; head, query and rollout reuse a live figure."""
        layer, head, query = self.layer.value, self.head.value, self.query.value
        tokens, w = self.tokens, self.weights
        if view == "generation":
            fig = self._generation_figure()
            if fig is None:
                return b""
            self.shown[view] = self.trace.step_weights(self.step.value)[layer, head]
            return figure_bytes(fig, "png", self.dpi)
        if view not in self._live:
            self._live[view] = LiveBars(tokens, self.dpi) if view == "query" else LiveHeatmap(tokens, self.dpi)
        live = self._live[view]
        if view == "head":
            self.shown[view] = w[layer, head]  # (T, T)
            return live.render(w[layer, head], f"layer {layer}, head {head}", query)
        if view == "query":
            self.shown[view] = w[layer, head, query]  # (T,)
            return live.render(w[layer, head, query], query,
                               f"query {query} '{token_label(tokens[query])}': layer {layer}, head {head}")
        self.shown[view] = self.rollout(layer)  # (T, T)
        return live.render(self.shown[view], f"rollout through layers 0..{layer}", query)

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

    def _on_generate(self, _button: Any = None) -> None:
        try:
            self.generate(self.new_tokens.value)
        except ValueError:
            pass  # the message is shown under the Generate button

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
        self._stale.add("generation")
        if self.view == "generation":
            self._redraw()
        else:
            self.view = "generation"
        return trace

    # -- figures ---------------------------------------------------------------------------------------

    def figure(self, view: str | None = None) -> Any:
        """The matplotlib Figure of ``view`` (default: the visible one) for the current controls."""
        view = self.view if view is None else view
        layer, head, query = self.layer.value, self.head.value, self.query.value
        tokens, w = self.tokens, self.weights
        if view == "head":
            return plot_attention(tokens, w, layer, head, query=query)
        if view == "query":
            return plot_query(tokens, w[layer, head, query], query,
                              title=f"query {query} '{token_label(tokens[query])}': layer {layer}, head {head}")
        if view == "rollout":
            return plot_rollout(tokens, self.rollout(layer), query=query,
                                title=f"rollout through layers 0..{layer}")
        if view == "grid":
            return self._grid_figure()
        if view == "generation":
            return self._generation_figure()
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")

    def _grid_figure(self) -> Any:
        L, H, T, _ = self.weights.shape
        fig = new_figure(1.3 * H + 0.4, 1.3 * L + 0.4)
        axes = fig.subplots(L, H, squeeze=False)
        for l in range(L):
            for h in range(H):
                ax = axes[l][h]
                ax.imshow(self.weights[l, h].numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"L{l} H{h}", fontsize=7)
        return fig

    def _generation_figure(self) -> Any:
        trace = self.trace
        if trace is None:
            return None
        s = self.step.value
        q = trace.query_of(s)
        layer, head = self.layer.value, self.head.value
        new = token_label(trace.tokens[q + 1])
        self.generated_text.value = self._generation_html(trace, s)
        return plot_query(trace.tokens[: q + 1], trace.step_weights(s)[layer, head], q,
                          title=f"step {s}: '{new}' chosen at position {q} (layer {layer}, head {head})")

    @staticmethod
    def _generation_html(trace: GenerationTrace, step: int) -> str:
        new_pos = trace.query_of(step) + 1
        parts = []
        for i, tok in enumerate(trace.tokens):
            t = html.escape(tok)
            if i == new_pos:
                t = f"<mark style='background:#fd6'><b>{t}</b></mark>"
            elif i >= trace.prompt_len:
                t = f"<span style='color:#1565c0'>{t}</span>"
            parts.append(t)
        return ("<div style='white-space:pre-wrap;font-family:monospace'>" + "".join(parts) + "</div>"
                "<small>black: prompt, blue: generated (greedy), highlighted: this step's token</small>")

    def static_figure(self) -> Any:
        """One matplotlib Figure with the head heatmap, the query bars and the rollout, for the current
        controls: the explorer's picture for places without live widgets (a notebook rendered to HTML)."""
        layer, head, query = self.layer.value, self.head.value, self.query.value
        T = len(self.tokens)
        side = 3.2 if T <= 16 else 4.2
        fig = new_figure(2 * side + 0.5, side + 2.4)
        gs = fig.add_gridspec(2, 2, height_ratios=[side, 2.0])
        plot_attention(self.tokens, self.weights, layer, head, fig.add_subplot(gs[0, 0]), query=query)
        plot_rollout(self.tokens, self.rollout(), fig.add_subplot(gs[0, 1]), query=query)
        plot_query(self.tokens, self.weights[layer, head, query], query, fig.add_subplot(gs[1, :]),
                   title=f"query {query} '{token_label(self.tokens[query])}': layer {layer}, head {head}")
        return fig

    # -- export ----------------------------------------------------------------------------------------

    def export(self, path: str | os.PathLike, view: str | None = None) -> Path:
        """Write ``view`` (default: the visible one) as .png, .svg or a self-contained .html file.

        The HTML file needs nothing from the network: images are embedded as data URIs and the only
        script is inline. For ``view="grid"`` it is a small page with every head: click a thumbnail to
        enlarge it. Returns the path written.
        """
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in ("png", "svg", "html", "htm"):
            raise ValueError(f"cannot tell the format from {path.name!r}: use a name ending in .png, .svg or .html")
        view = self.view if view is None else view
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        fig = self.figure(view)
        if fig is None:
            raise ValueError("nothing to export in the generation view yet: call generate() first")
        if fmt in ("png", "svg"):
            data = figure_bytes(fig, fmt, self.dpi if fmt == "png" else 72)
        else:
            data = self._html(view, fig).encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path

    def _html(self, view: str, fig: Any) -> str:
        L, H, T, _ = self.weights.shape
        title = f"Attention: {type(self.model).__name__}, {L} layers x {H} heads, {T} tokens"
        svg = base64.b64encode(figure_bytes(fig, "svg")).decode("ascii")
        text = html.escape(self.text)
        body = [f"<h1>{html.escape(title)}</h1>", f"<p class='text'>{text}</p>"]
        if view != "grid":
            body.append(f"<img alt='{view} view' src='data:image/svg+xml;base64,{svg}'>")
            script = ""
        else:
            big = {}
            thumbs = []
            for l in range(L):
                row = []
                for h in range(H):
                    key = f"{l}-{h}"
                    png = figure_bytes(plot_attention(self.tokens, self.weights, l, h), "png", self.dpi)
                    big[key] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
                    thumb = base64.b64encode(thumbnail_png(self.weights[l, h])).decode("ascii")
                    row.append(f"<td><img class='thumb' data-key='{key}' title='layer {l}, head {h}' "
                               f"src='data:image/png;base64,{thumb}'><br>L{l} H{h}</td>")
                thumbs.append("<tr>" + "".join(row) + "</tr>")
            first = f"{self.layer.value}-{self.head.value}"
            body.append("<p>Click a head to enlarge it.</p><div class='wrap'><table>" + "".join(thumbs) +
                        f"</table><img id='big' alt='one head' src='{big[first]}'></div>")
            import json

            script = ("<script>const BIG = " + json.dumps(big) + ";\n"
                      "document.querySelectorAll('img.thumb').forEach(function (im) {\n"
                      "  im.addEventListener('click', function () {\n"
                      "    document.getElementById('big').src = BIG[im.dataset.key]; });\n"
                      "});</script>")
        style = ("<style>body{font-family:sans-serif;margin:1em} .text{white-space:pre-wrap;font-family:monospace}"
                 " .wrap{display:flex;gap:1em;align-items:flex-start} td{text-align:center;font-size:11px}"
                 " img.thumb{width:64px;height:64px;cursor:pointer}</style>")
        return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>" +
                style + "</head><body>" + "".join(body) + script + "</body></html>\n")

    # -- display ---------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return repr(self.widget)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        """The live widget, with a short stable text/plain (what nbval compares)."""
        return self.widget._repr_mimebundle_(include=include, exclude=exclude)
