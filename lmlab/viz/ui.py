"""The explorer's widgets: controls, tabs, images and the pointer events that reach Python.

``build(explorer, new_tokens)`` makes every widget of one explorer and connects it to that explorer's
methods (``on_control``, ``on_pointer``, ``open_head``, ...); nothing is shared between explorers.
Clicks and pointer moves on an image come from ``ipyevents`` with the position in the image's pixels.

Letters: L layers, H heads.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from typing import Any

__all__ = ["VIEWS", "TITLES", "NOTE", "Widgets", "build", "hint"]

VIEWS = ("head", "grid", "lines", "neuron", "query", "rollout", "ablation", "generation")
TITLES = ("Head", "All heads", "Lines", "Neuron", "Query", "Rollout", "Ablation", "Generation")
IMAGE_VIEWS = ("head", "lines", "neuron", "query", "rollout", "ablation", "generation")
POINTER_VIEWS = ("head", "lines", "query", "rollout")  # images that answer clicks and the pointer

NOTE = ("Attention weights show where a head reads from, not why the model predicts what it does: a head can "
        "attend to a token and add almost nothing (try value-weighted), and different weights can give the same "
        "prediction (Jain &amp; Wallace, 2019; Wiegreffe &amp; Pinter, 2019). To test whether a head matters, "
        "remove it: the Ablation tab.")
_CSS = ("<style>.lmlab-attention-explorer select, .lmlab-mono {font-family: 'DejaVu Sans Mono', Menlo, Consolas, "
        "monospace;} .lmlab-thumb img {cursor: pointer;} .lmlab-pointer img {cursor: crosshair;} "
        ".lmlab-note {color: #555; font-size: 12px; line-height: 1.35;}</style>")
_VIEW_NOTES = {
    "lines": "Each line joins a query (left) to a key (right); its opacity is the weight, its colour the head. "
             "Click a token on the left to make it the query.",
    "neuron": "How one weight is made: the query vector q, every key vector k, their element-wise product "
              "(its sum over the head's dimensions, divided by \u221ahs, is the score), and softmax(scores) = "
              "the weights. Notebook 05 builds the same formula by hand.",
    "rollout": "Rollout through layers 0..layer (Abnar &amp; Zuidema, 2020): heads averaged, identity added for the "
               "residual, rows renormalized.",
    "ablation": "The selected head's output set to zero: the loss on this text and the predictions at the query, "
                "with and without the head.",
}


@dataclass
class Widgets:
    """Every widget of one explorer."""

    text_box: Any
    run_button: Any
    status: Any
    layer: Any
    head: Any
    query: Any
    mode: Any  # "attention" or "value-weighted"
    heads: list[Any]  # the lines view: one checkbox per head
    readout: Any  # the weight under the pointer or last clicked
    tabs: Any
    images: dict[str, Any]
    thumbnails: dict[tuple[int, int], Any]
    thumb_boxes: dict[tuple[int, int], Any]
    events: list[Any]  # ipyevents.Event objects: kept so that they live as long as the explorer
    new_tokens: Any
    generate_button: Any
    step: Any
    generated_text: Any
    ablation_text: Any
    unavailable: Any  # shown in the neuron and ablation tabs when the model cannot be looked inside
    widget: Any  # the whole explorer


def hint(text: str) -> str:
    return f"<i style='color:#555'>{html.escape(text, quote=False)}</i>"


def _event_class() -> type:
    """ipyevents' Event widget: clicks and pointer moves on an image, with the position in its pixels."""
    try:
        from ipyevents import Event
    except ImportError as err:
        raise ImportError("the attention explorer needs the ipyevents package for clicks on its pictures: "
                          "pip install ipyevents (then reload the page)") from err
    return Event


def _controls(L: int, H: int, inspectable: bool) -> dict[str, Any]:
    import ipywidgets as widgets

    small = {"description_width": "42px"}
    c = {
        "text_box": widgets.Textarea(placeholder="Type a text, then press Show attention", rows=3,
                                     layout=widgets.Layout(width="98%")),
        "run_button": widgets.Button(description="Show attention", button_style="primary"),
        "status": widgets.HTML(value=""),
        "layer": widgets.Dropdown(options=[(str(i), i) for i in range(L)], value=0, description="layer",
                                  layout=widgets.Layout(width="130px"), style=small),
        "head": widgets.Dropdown(options=[(str(i), i) for i in range(H)], value=0, description="head",
                                 layout=widgets.Layout(width="130px"), style=small),
        "query": widgets.Dropdown(description="query", layout=widgets.Layout(width="230px"), style=small),
        "mode": widgets.Dropdown(options=["attention", "value-weighted"] if inspectable else ["attention"],
                                 value="attention", description="weights", layout=widgets.Layout(width="230px"),
                                 style={"description_width": "55px"}),
        "readout": widgets.HTML(value=""),
    }
    for name in ("text_box", "run_button", "layer", "head", "query", "mode", "readout"):
        c[name].add_class(f"lmlab-{name}")
    c["readout"].add_class("lmlab-mono")
    return c


def _grid(ex: Any, L: int, H: int, size: int = 96) -> tuple[Any, dict, dict, list]:
    """Thumbnails of every head; a click on one opens it."""
    import ipywidgets as widgets

    Event = _event_class()
    thumbs, boxes, events, cells = {}, {}, [], []
    for l in range(L):
        for h in range(H):
            thumb = widgets.Image(format="png", layout=widgets.Layout(width=f"{size}px", height=f"{size}px"))
            label = widgets.HTML(f"<div style='text-align:center;font-size:13px'>layer {l}, head {h}</div>")
            box = widgets.VBox([thumb, label], layout=widgets.Layout(align_items="center", padding="2px"))
            box.add_class("lmlab-thumb")
            event = Event(source=thumb, watched_events=["click"])
            event.on_dom_event(functools.partial(ex.open_head, l, h))
            thumbs[l, h], boxes[l, h] = thumb, box
            events.append(event)
            cells.append(box)
    grid = widgets.GridBox(cells, layout=widgets.Layout(grid_template_columns=f"repeat({H}, {size + 16}px)",
                                                        grid_gap="6px"))
    grid.add_class("lmlab-grid")
    return grid, thumbs, boxes, events


def _images(ex: Any) -> tuple[dict[str, Any], list[Any]]:
    """One image per view; clicks (at once) and pointer moves (at most every 80 ms) go to ``ex.on_pointer``."""
    import ipywidgets as widgets

    Event = _event_class()
    images, events = {}, []
    for view in IMAGE_VIEWS:
        # natural size, not stretched to the box's width (a stretched PNG looks blurred)
        image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        image.add_class(f"lmlab-{view}-image")
        images[view] = image
        if view in POINTER_VIEWS:
            image.add_class("lmlab-pointer")
            click = Event(source=image, watched_events=["click"])
            move = Event(source=image, watched_events=["mousemove"], throttle_or_debounce="throttle", wait=80)
            for event in (click, move):
                event.on_dom_event(functools.partial(ex.on_pointer, view))
                events.append(event)
    return images, events


def _generation_tab(new_tokens: int, max_tokens: int) -> dict[str, Any]:
    import ipywidgets as widgets

    g = {
        "new_tokens": widgets.BoundedIntText(value=new_tokens, min=1, max=max(1, max_tokens),
                                             description="new tokens", layout=widgets.Layout(width="170px")),
        "generate_button": widgets.Button(description="Generate"),
        "step": widgets.IntSlider(value=1, min=1, max=1, description="step", disabled=True,
                                  continuous_update=False),  # one redraw when the handle is let go
        "generated_text": widgets.HTML(value=""),
    }
    g["step"].add_class("lmlab-step")
    g["generate_button"].add_class("lmlab-generate")
    g["generated_text"].add_class("lmlab-generated")
    return g


def build(ex: Any, new_tokens: int) -> Widgets:
    """Every widget of explorer ``ex``, laid out and connected to its methods."""
    import ipywidgets as widgets

    L, H = ex.weights.shape[:2]
    c = _controls(L, H, ex.inspectable)
    c["text_box"].value = ex.text
    grid, thumbs, boxes, thumb_events = _grid(ex, L, H)
    images, image_events = _images(ex)
    g = _generation_tab(new_tokens, ex.max_tokens)
    heads = [widgets.Checkbox(value=True, description=f"head {h}", indent=False, layout=widgets.Layout(width="80px"))
             for h in range(H)]
    ablation_text = widgets.HTML(value="")
    unavailable = widgets.HTML(value="" if ex.inspectable else hint(
        f"Looking inside the heads of {type(ex.model).__name__} is not supported: it needs an lmlab GPT or "
        "MaskedLM, or a GPT-2 or BERT style transformers model."))
    notes = {v: widgets.HTML(f"<div class='lmlab-note'>{t}</div>") for v, t in _VIEW_NOTES.items()}
    tabs = widgets.Tab(children=[
        widgets.VBox([images["head"]]),
        widgets.VBox([widgets.HTML(hint("Click a head to open it.")), grid]),
        widgets.VBox([notes["lines"], widgets.HBox(heads, layout=widgets.Layout(flex_flow="row wrap")),
                      images["lines"]]),
        widgets.VBox([notes["neuron"], unavailable, images["neuron"]]),
        widgets.VBox([images["query"]]),
        widgets.VBox([notes["rollout"], images["rollout"]]),
        widgets.VBox([notes["ablation"], unavailable, ablation_text, images["ablation"]]),
        widgets.VBox([widgets.HBox([g["new_tokens"], g["generate_button"]]), g["step"], g["generated_text"],
                      images["generation"]]),
    ])
    tabs.titles = TITLES
    note = widgets.HTML(f"<div class='lmlab-note'><b>Note.</b> {NOTE}</div>")
    widget = _box_class()([
        widgets.HTML(_CSS), c["text_box"], widgets.HBox([c["run_button"], c["status"]]),
        widgets.HBox([c["layer"], c["head"], c["query"], c["mode"]], layout=widgets.Layout(flex_flow="row wrap")),
        c["readout"], tabs, note,
    ])
    widget.add_class("lmlab-attention-explorer")

    c["run_button"].on_click(lambda _: ex.set_text(c["text_box"].value))
    g["generate_button"].on_click(ex.on_generate)
    for control in (c["layer"], c["head"], c["query"], g["step"], *heads):
        control.observe(ex.on_control, names="value")
    c["mode"].observe(ex.on_mode, names="value")
    tabs.observe(ex.on_tab, names="selected_index")
    return Widgets(heads=heads, tabs=tabs, images=images, thumbnails=thumbs, thumb_boxes=boxes,
                   events=thumb_events + image_events, ablation_text=ablation_text, unavailable=unavailable,
                   widget=widget, **c, **g)


@functools.cache
def _box_class() -> type:
    """A VBox whose text repr is short and stable (nbval compares the text/plain of a widget)."""
    import ipywidgets as widgets

    class ExplorerBox(widgets.VBox):
        def __repr__(self) -> str:
            return getattr(self, "_lmlab_repr", "AttentionExplorer")

    return ExplorerBox
