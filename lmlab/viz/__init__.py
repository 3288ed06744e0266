"""Looking inside attention: weights from any model, static plots, and the ``AttentionExplorer`` widget.

    from lmlab.viz import AttentionExplorer, attention_weights, attention_rollout, plot_attention

    tokens, w = attention_weights(model, tokenizer, "The cat sat.")   # w: (L, H, T, T)
    fig = plot_attention(tokens, w, layer=0, head=1)                  # static matplotlib figure
    AttentionExplorer(model, tokenizer, "The cat sat.")               # live widget in a notebook

Modules: ``weights`` (model-independent attention tensors, rollout, attention during generation),
``internals`` (query/key/value vectors, value-weighted attention, head ablation), ``plots``, ``lines``
and ``neuron`` (matplotlib figures), ``live`` (figures that redraw quickly), ``ui`` (the widgets),
``views`` (what each view shows), ``explorer`` (the widget's state and events), ``export`` (files).
matplotlib, ipywidgets and ipyevents are imported only when a figure or a widget is made.
"""

from lmlab.viz.explorer import AttentionExplorer
from lmlab.viz.internals import Ablation, HeadVectors, ablate_head, head_vectors, value_weighted
from lmlab.viz.lines import plot_lines
from lmlab.viz.neuron import plot_generation, plot_neuron
from lmlab.viz.plots import plot_attention, plot_grid, plot_query, plot_rollout, token_label
from lmlab.viz.weights import (
    GenerationTrace, attention_rollout, attention_weights, generation_attention, token_strings,
)

__all__ = [
    "AttentionExplorer", "attention_weights", "attention_rollout", "plot_attention", "plot_query",
    "plot_rollout", "plot_grid", "plot_lines", "plot_neuron", "plot_generation", "token_label", "token_strings",
    "GenerationTrace", "generation_attention", "HeadVectors", "head_vectors", "value_weighted", "Ablation",
    "ablate_head",
]
