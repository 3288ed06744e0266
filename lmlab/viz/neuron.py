"""The neuron view (how one weight is made) and the generation view's figure of every step.

Neuron view, for one head and one query i (notebook 05's formula, one number at a time):

    score_ij = sum_d q_i[d] * k_j[d] / sqrt(hs)        weight_ij = softmax_j(score_ij)   (masked keys: none)

It shows the query vector q_i, every key vector k_j, their element-wise product q_i * k_j (whose row
sums, divided by sqrt(hs), are the scores), the scores and the weights. A dimension where the product
is large and positive is one where the query and the key agree.

Letters: T tokens, hs head size, N generated tokens, P prompt tokens.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from lmlab.viz.plots import (
    CMAP, LABEL_PT, MAX_LABELS, PITCH_IN, TITLE_PT, TOKEN_FONT, new_figure, tick_positions, token_label,
)
from lmlab.viz.weights import GenerationTrace

__all__ = ["plot_neuron", "plot_generation"]


def _token_ticks(ax: Any, tokens: list[str], axis: str = "y") -> None:
    pos = tick_positions(len(tokens))
    labels = [token_label(tokens[i]) for i in pos]
    if axis == "y":
        ax.set_yticks(pos, labels, fontsize=LABEL_PT, family=TOKEN_FONT)
    else:
        turned = max((len(s) for s in labels), default=0) > 2
        ax.set_xticks(pos, labels, fontsize=LABEL_PT, family=TOKEN_FONT, rotation=90 if turned else 0)


def plot_neuron(tokens: list[str], q: Tensor, k: Tensor, query: int, *, causal: bool, title: str = "") -> Any:
    """The neuron view of one head for query ``query``: q, every k, q * k, scores and weights.

    Shape: tokens (T strings), q (T, hs), k (T, hs)
    """
    T, hs = k.shape
    if q.shape != k.shape or len(tokens) != T:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and {len(tokens)} tokens must agree")
    if not 0 <= query < T:
        raise ValueError(f"query must be in 0..{T - 1}, got {query}")
    seen = torch.arange(T) <= query if causal else torch.ones(T, dtype=torch.bool)  # (T,) keys the query may see
    product = q[query][None, :] * k  # (1, hs) * (T, hs) -> (T, hs)
    scores = product.sum(-1) / math.sqrt(hs)  # (T,)
    weights = torch.softmax(scores.masked_fill(~seen, float("-inf")), dim=-1)  # (T,)
    nan = torch.full_like(product, float("nan"))
    product, k = torch.where(seen[:, None], product, nan), torch.where(seen[:, None], k, nan)  # masked keys blank

    height = max(3.0, min(T, MAX_LABELS) * PITCH_IN)
    fig = new_figure(3.2 * 2 + 2.4 * 2 + 1.0, height + 2.0)
    gs = fig.add_gridspec(2, 4, height_ratios=[0.9, height], width_ratios=[3.2, 3.2, 2.4, 2.4])
    limit = float(torch.nan_to_num(k).abs().max().clamp_min(1e-6))
    prod_limit = float(torch.nan_to_num(product).abs().max().clamp_min(1e-6))
    ax_q = fig.add_subplot(gs[0, 0])
    ax_q.imshow(q[query][None].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax_q.set_yticks([0], [token_label(tokens[query])], fontsize=LABEL_PT, family=TOKEN_FONT, color="tab:red")
    ax_q.set_xticks([])
    ax_q.set_title(f"query vector q of token {query}", fontsize=LABEL_PT + 1)
    ax_k = fig.add_subplot(gs[1, 0])
    im_k = ax_k.imshow(k.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    _token_ticks(ax_k, tokens)
    ax_k.set_xlabel("dimension of the head", fontsize=LABEL_PT + 1)
    ax_k.set_title("key vectors k", fontsize=LABEL_PT + 1)
    fig.colorbar(im_k, ax=[ax_q, ax_k], location="bottom", fraction=0.04, pad=0.08).ax.tick_params(labelsize=8)
    ax_p = fig.add_subplot(gs[1, 1], sharey=ax_k)
    im_p = ax_p.imshow(product.numpy(), cmap="PuOr_r", vmin=-prod_limit, vmax=prod_limit, aspect="auto",
                       interpolation="nearest")
    ax_p.tick_params(labelleft=False)
    ax_p.set_xlabel("dimension of the head", fontsize=LABEL_PT + 1)
    ax_p.set_title("q \u00d7 k, element-wise", fontsize=LABEL_PT + 1)
    fig.colorbar(im_p, ax=ax_p, location="bottom", fraction=0.04, pad=0.08).ax.tick_params(labelsize=8)
    for col, values, name, color in ((2, scores, "score = sum(q \u00d7 k) / \u221ahs", "tab:gray"),
                                     (3, weights, "weight = softmax(score)", "tab:blue")):
        ax = fig.add_subplot(gs[1, col], sharey=ax_k)
        shown = torch.where(seen, values, torch.zeros_like(values))
        ax.barh(range(T), shown.numpy(), color=["tab:red" if j == query else color for j in range(T)], height=0.8)
        ax.tick_params(labelleft=False, labelsize=LABEL_PT)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(name, fontsize=LABEL_PT + 1)
    fig.suptitle(title or f"neuron view, query {query} '{token_label(tokens[query])}'", fontsize=TITLE_PT)
    return fig


def plot_generation(trace: GenerationTrace, layer: int, head: int, step: int | None = None) -> Any:
    """Every step of a generation in one heatmap: row s is where the newest position looked when it chose
    token s (its label), over the positions before it. ``step`` outlines one row.

    Shape: trace.weights (L, H, P+N, P+N) -> a figure of N rows x (P+N-1) columns
    """
    N, P = trace.steps, trace.prompt_len
    rows = torch.stack([torch.nn.functional.pad(trace.step_weights(s)[layer, head], (0, N - s))
                        for s in range(1, N + 1)])  # N x (P+s-1,) -> (N, P+N-1)
    keys = trace.tokens[: P + N - 1]
    width = max(5.0, min(len(keys), MAX_LABELS) * PITCH_IN + 2.5)
    fig = new_figure(width, max(2.0, min(N, MAX_LABELS) * PITCH_IN) + 1.8)
    ax = fig.add_subplot()
    im = ax.imshow(rows.numpy(), cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    _token_ticks(ax, keys, "x")
    pos = tick_positions(N)
    ax.set_yticks(pos, [f"{s + 1}: {token_label(trace.tokens[P + s])}" for s in pos], fontsize=LABEL_PT,
                  family=TOKEN_FONT)
    ax.axvline(P - 0.5, color="white", linewidth=1.2, linestyle="--")
    if step is not None:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((-0.5, step - 1.5), P + N - 1, 1, fill=False, edgecolor="red", linewidth=1.6))
    ax.set_xlabel("position looked at (left of the dashed line: the prompt)", fontsize=LABEL_PT + 1)
    ax.set_ylabel("step: token chosen", fontsize=LABEL_PT + 1)
    ax.set_title(f"generation, layer {layer}, head {head}: where each new token's position looked",
                 fontsize=TITLE_PT)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("attention weight", fontsize=LABEL_PT + 1)
    bar.ax.tick_params(labelsize=LABEL_PT)
    return fig
