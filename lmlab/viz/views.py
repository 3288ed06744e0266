"""What each view of an explorer shows: its live image, its plain Figure and its readout line.

Functions of an ``AttentionExplorer`` (``ex``): they read its controls (layer, head, query, key, mode,
step) and data, and keep what each image shows in ``ex.shown`` (for checks and tests).

Letters: L layers, H heads, T tokens.
"""

from __future__ import annotations

import html
from typing import Any

from lmlab.viz.internals import Ablation
from lmlab.viz.lines import LiveLines, plot_lines
from lmlab.viz.live import LiveBars, LiveHeatmap
from lmlab.viz.neuron import plot_neuron
from lmlab.viz.plots import (
    LABEL_PT, TITLE_PT, figure_bytes, new_figure, plot_attention, plot_grid, plot_query, plot_rollout, token_label,
)
from lmlab.viz.ui import VIEWS

__all__ = ["render", "figure", "static_figure", "readout", "plot_ablation"]


def _state(ex: Any) -> tuple[int, int, int]:
    return ex.layer.value, ex.head.value, ex.query.value


def _weights_name(ex: Any) -> str:
    return "value-weighted attention" if ex.mode.value == "value-weighted" else "attention"


def _selected_heads(ex: Any) -> list[int]:
    return [h for h, box in enumerate(ex.heads) if box.value]


def _live(ex: Any, view: str) -> Any:
    if view not in ex.live:
        H = ex.weights.size(1)
        make = {"head": LiveHeatmap, "rollout": LiveHeatmap, "query": LiveBars,
                "lines": lambda tokens, dpi: LiveLines(tokens, H, dpi)}[view]
        ex.live[view] = make(ex.tokens, ex.dpi)
    return ex.live[view]


def render(ex: Any, view: str) -> bytes | None:
    """PNG bytes of ``view`` for the current controls (None: nothing to draw, e.g. before a generation)."""
    layer, head, query = _state(ex)
    if view in ("head", "rollout", "query", "lines"):
        live = _live(ex, view)
        if view == "head":
            ex.shown[view] = ex.matrix()[layer, head]  # (T, T)
            extra = " (value-weighted)" if ex.mode.value == "value-weighted" else ""
            return live.render(ex.shown[view], f"layer {layer}, head {head}{extra}", query, ex.key)
        if view == "rollout":
            ex.shown[view] = ex.rollout(layer)  # (T, T)
            return live.render(ex.shown[view], f"rollout through layers 0..{layer}", query, ex.key)
        if view == "query":
            ex.shown[view] = ex.matrix()[layer, head, query]  # (T,)
            return live.render(ex.shown[view], query, f"query {query} '{token_label(ex.tokens[query])}': "
                                                      f"layer {layer}, head {head}, {_weights_name(ex)}")
        heads = _selected_heads(ex)
        ex.shown[view] = ex.matrix()[layer][heads]  # (heads, T, T)
        return live.render(ex.matrix()[layer], heads, query, f"layer {layer}: {_weights_name(ex)}", ex.key)
    if view in ("neuron", "ablation") and not ex.inspectable:
        return None
    if view == "ablation":
        ab = ex.ablation()
        ex.shown[view] = ab
        ex.w.ablation_text.value = ablation_html(ab, ex.tokens)
    if view == "generation" and ex.trace is None:
        return None
    fig = figure(ex, view)
    return figure_bytes(fig, "png", ex.dpi)


def figure(ex: Any, view: str) -> Any:
    """The matplotlib Figure of ``view`` for the current controls (None for "generation" before a generation)."""
    layer, head, query = _state(ex)
    tokens, w = ex.tokens, ex.matrix()
    if view == "head":
        return plot_attention(tokens, w, layer, head, query=query)
    if view == "grid":
        return plot_grid(w, selected=(layer, head))
    if view == "lines":
        return plot_lines(tokens, w, layer, _selected_heads(ex), query=query)
    if view == "query":
        return plot_query(tokens, w[layer, head, query], query,
                          title=f"query {query} '{token_label(tokens[query])}': layer {layer}, head {head}")
    if view == "rollout":
        return plot_rollout(tokens, ex.rollout(layer), query=query, title=f"rollout through layers 0..{layer}")
    if view == "neuron":
        vec = ex.vectors()
        ex.shown[view] = vec.scores(layer, head)[query]  # (T,)
        return plot_neuron(tokens, vec.q[layer, head], vec.k[layer, head], query, causal=ex.causal,
                           title=f"neuron view: layer {layer}, head {head}, query {query} "
                                 f"'{token_label(tokens[query])}'")
    if view == "ablation":
        return plot_ablation(ex.ablation(), tokens)
    if view == "generation":
        return _generation_figure(ex)
    raise ValueError(f"view must be one of {VIEWS}, got {view!r}")


def _generation_figure(ex: Any) -> Any:
    trace = ex.trace
    if trace is None:
        return None
    s, (layer, head) = ex.step.value, (ex.layer.value, ex.head.value)
    q = trace.query_of(s)
    ex.generated_text.value = generation_html(trace, s)
    ex.shown["generation"] = trace.step_weights(s)[layer, head]  # (P + s - 1,)
    new = token_label(trace.tokens[q + 1])
    return plot_query(trace.tokens[: q + 1], ex.shown["generation"], q,
                      title=f"step {s}: '{new}' chosen at position {q} (layer {layer}, head {head})")


def generation_html(trace: Any, step: int | None) -> str:
    """The prompt in black, the generated tokens in blue, the token of ``step`` highlighted."""
    new_pos = None if step is None else trace.query_of(step) + 1
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


def static_figure(ex: Any) -> Any:
    """The head heatmap, the rollout and the query's bars in one Figure."""
    from lmlab.viz.plots import heatmap_size

    layer, head, query = _state(ex)
    width, height = heatmap_size(ex.tokens)
    fig = new_figure(2 * width, height + 3.4)
    gs = fig.add_gridspec(2, 2, height_ratios=[height, 3.0])
    plot_attention(ex.tokens, ex.weights, layer, head, fig.add_subplot(gs[0, 0]), query=query)
    plot_rollout(ex.tokens, ex.rollout(), fig.add_subplot(gs[0, 1]), query=query)
    plot_query(ex.tokens, ex.weights[layer, head, query], query, fig.add_subplot(gs[1, :]),
               title=f"query {query} '{token_label(ex.tokens[query])}': layer {layer}, head {head}")
    return fig


def readout(ex: Any, view: str, q: int | None, k: int | None, pointer: bool = False) -> str:
    """One line for the weight at (query q, key k) of ``view``: what the pointer is on, or the last click."""
    layer, head = ex.layer.value, ex.head.value
    tok = ex.tokens
    if view not in ("head", "rollout", "query", "lines") or q is None and k is None:
        return ""
    what = "under the pointer" if pointer and (q, k) != (ex.query.value, ex.key) else "selected"
    if q is None or k is None:
        pos = q if q is not None else k
        role = "query" if q is not None else "key"
        return f"<span>{what}: {role} {pos} '{html.escape(token_label(tok[pos]))}'</span>"
    if view == "rollout":
        value, source = float(ex.rollout(layer)[q, k]), f"rollout through layers 0..{layer}"
    elif view == "lines":
        heads = ", ".join(f"head {h}: {float(ex.matrix()[layer, h, q, k]):.3f}" for h in range(ex.weights.size(1)))
        return (f"<span>{what}: query {q} '{html.escape(token_label(tok[q]))}' \u2192 key {k} "
                f"'{html.escape(token_label(tok[k]))}', layer {layer}: {heads}</span>")
    else:
        value, source = float(ex.matrix()[layer, head, q, k]), f"layer {layer}, head {head}, {_weights_name(ex)}"
    return (f"<span>{what}: query {q} '{html.escape(token_label(tok[q]))}' \u2192 key {k} "
            f"'{html.escape(token_label(tok[k]))}': <b>{value:.3f}</b> ({source})</span>")


def ablation_html(ab: Ablation, tokens: list[str]) -> str:
    sign = "+" if ab.loss_change >= 0 else "\u2212"
    return (f"<div>Without layer {ab.layer}, head {ab.head}: loss on this text <b>{ab.loss_before:.3f} \u2192 "
            f"{ab.loss_after:.3f}</b> nats ({sign}{abs(ab.loss_change):.3f}); at query {ab.query} "
            f"'{html.escape(token_label(tokens[ab.query]))}' the top prediction is "
            f"'{html.escape(token_label(ab.top_before[0][0]))}' ({ab.top_before[0][1]:.2f}) with the head, "
            f"'{html.escape(token_label(ab.top_after[0][0]))}' ({ab.top_after[0][1]:.2f}) without.</div>")


def plot_ablation(ab: Ablation, tokens: list[str]) -> Any:
    """The top predictions at the query with and without the head, side by side."""
    fig = new_figure(7.5, 3.2)
    axes = fig.subplots(1, 2, sharex=True)
    for ax, top, name, color in ((axes[0], ab.top_before, "with the head", "tab:blue"),
                                 (axes[1], ab.top_after, f"layer {ab.layer}, head {ab.head} zeroed", "tab:orange")):
        labels = [f"'{token_label(t)}'" for t, _ in top][::-1]
        ax.barh(range(len(top)), [p for _, p in top][::-1], color=color)
        ax.set_yticks(range(len(top)), labels, fontsize=LABEL_PT + 1, family="DejaVu Sans Mono")
        ax.set_xlim(0, 1)
        ax.tick_params(axis="x", labelsize=LABEL_PT)
        ax.set_xlabel("probability", fontsize=LABEL_PT + 1)
        ax.set_title(f"{name}: loss {ab.loss_before if color == 'tab:blue' else ab.loss_after:.3f}",
                     fontsize=LABEL_PT + 1)
    fig.suptitle(f"predictions at query {ab.query} '{token_label(tokens[ab.query])}'", fontsize=TITLE_PT)
    return fig
