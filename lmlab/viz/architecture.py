"""Diagrams of the architectures the notebooks build: the LSTM cell, the causal mask, multi-head attention and
the GPT block, drawn with matplotlib patches.

    from lmlab.viz.architecture import lstm_cell_diagram
    lstm_cell_diagram()          # a matplotlib Figure; a notebook shows it as a picture

Each function returns a ``Figure`` made with ``lmlab.viz.plots.new_figure`` (never pyplot), about 8 inches
wide at 100 dpi, text at least 9 pt. The pictures are fixed: they show the structure, not a model's numbers.
"""

from __future__ import annotations

from typing import Any

from lmlab.viz.plots import new_figure

__all__ = ["lstm_cell_diagram", "causal_mask_diagram", "multi_head_diagram", "gpt_block_diagram"]

GATE = "#cfe2f3"  # learned layers (a matrix product and a nonlinearity)
POINT = "#fde9c9"  # elementwise operations, no parameters
STREAM = "#555555"
HEADS = ["#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69"]
PT = 10  # text size in points


def _canvas(width: float, height: float, xlim: tuple[float, float], ylim: tuple[float, float]) -> tuple[Any, Any]:
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.set(xlim=xlim, ylim=ylim, aspect="equal")
    ax.axis("off")
    return fig, ax


def _box(ax: Any, x: float, y: float, w: float, h: float, text: str, color: str = GATE, size: float = PT,
         weight: str = "normal") -> None:
    """A rounded box centred at (x, y)."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                facecolor=color, edgecolor="black", linewidth=1.0, zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=size, fontweight=weight, zorder=4)


def _op(ax: Any, x: float, y: float, symbol: str, r: float = 0.28) -> None:
    """An elementwise operation: a circle with its symbol."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle((x, y), r, facecolor=POINT, edgecolor="black", linewidth=1.0, zorder=3))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=PT + 2, zorder=4)


def _arrow(ax: Any, points: list[tuple[float, float]], color: str = "black", lw: float = 1.3) -> None:
    """A polyline through ``points`` with an arrowhead at the end."""
    xs, ys = zip(*points)
    ax.plot(xs[:-1], ys[:-1], color=color, lw=lw, zorder=2, solid_capstyle="butt")
    ax.annotate("", xy=points[-1], xytext=points[-2], zorder=2,
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": lw, "shrinkA": 0, "shrinkB": 0})


def lstm_cell_diagram() -> Any:
    """One LSTM step: the four gates computed from [h_{t-1}, x_t], the additive cell path along the top."""
    fig, ax = _canvas(8.2, 4.6, (-0.6, 11.2), (-0.9, 6.0))
    cy, by, gy = 5.0, 0.6, 2.1  # heights: cell path, input bus, gate boxes
    gates = {"f": 2.4, "i": 4.0, "g": 6.0, "o": 7.6}
    # the cell path: c_{t-1} -> x f -> + i g -> c_t
    _arrow(ax, [(-0.5, cy), (gates["f"] - 0.28, cy)], STREAM, 2.2)
    _op(ax, gates["f"], cy, "×")
    _arrow(ax, [(gates["f"] + 0.28, cy), (4.72, cy)], STREAM, 2.2)
    _op(ax, 5.0, cy, "+")
    _arrow(ax, [(5.28, cy), (11.0, cy)], STREAM, 2.2)
    ax.text(-0.5, cy + 0.3, "$c_{t-1}$", fontsize=PT + 1)
    ax.text(10.5, cy - 0.55, "$c_t$", fontsize=PT + 1)
    ax.text(5.5, cy + 0.35, "cell state: only × f and + i·g change it", fontsize=PT - 1, style="italic")
    # the input bus: h_{t-1} from the left, x_t from below
    _arrow(ax, [(-0.5, by), (gates["o"], by)], "black", 1.3)
    ax.text(-0.5, by - 0.45, "$h_{t-1}$", fontsize=PT + 1)
    _arrow(ax, [(0.9, -0.8), (0.9, by)], "black", 1.3)
    ax.text(1.05, -0.75, "$x_t$", fontsize=PT + 1)
    labels = {"f": "σ\nforget f", "i": "σ\ninput i", "g": "tanh\ncandidate g", "o": "σ\noutput o"}
    for name, x in gates.items():
        _arrow(ax, [(x, by), (x, gy - 0.55)])
        _box(ax, x, gy, 1.4, 1.05, labels[name], size=PT - 1)
    _arrow(ax, [(gates["f"], gy + 0.53), (gates["f"], cy - 0.28)])  # f -> x on the cell path
    _op(ax, 5.0, 3.6, "×")  # i * g
    _arrow(ax, [(gates["i"], gy + 0.53), (gates["i"], 3.6), (4.72, 3.6)])
    _arrow(ax, [(gates["g"], gy + 0.53), (gates["g"], 3.05), (5.0, 3.05), (5.0, 3.32)])
    _arrow(ax, [(5.0, 3.88), (5.0, cy - 0.28)])
    # the output: h_t = o * tanh(c_t)
    _arrow(ax, [(9.0, cy), (9.0, 4.2)])
    _box(ax, 9.0, 3.8, 1.0, 0.6, "tanh", POINT, size=PT - 1)
    _arrow(ax, [(9.0, 3.5), (9.0, 2.98)])
    _op(ax, 9.0, 2.7, "×")
    _arrow(ax, [(gates["o"], gy + 0.53), (gates["o"], 2.7), (8.72, 2.7)])
    _arrow(ax, [(9.28, 2.7), (11.0, 2.7)], STREAM, 2.2)
    ax.text(10.3, 2.95, "$h_t$", fontsize=PT + 1)
    ax.text(9.3, 1.6, "$h_t$ goes to the output\nlayer and to step $t+1$", fontsize=PT - 1)
    ax.text(2.0, -0.75, "each gate: $\\sigma$ or tanh of $W_{i\\cdot} x_t + W_{h\\cdot} h_{t-1} + b$",
            fontsize=PT - 1)
    ax.set_title("One LSTM step (PyTorch's gate order: i, f, g, o)", fontsize=PT + 1)
    return fig


def causal_mask_diagram(tokens: str = "to be or") -> Any:
    """The causal mask over the characters of ``tokens``: allowed (query, key) pairs and the -inf scores."""
    T = len(tokens)
    fig = new_figure(7.6, 3.6)
    left, right = fig.subplots(1, 2)
    labels = [repr(c)[1:-1] if c != " " else "␣" for c in tokens]
    for ax, title in ((left, "mask: True = may attend"), (right, "scores: $-\\infty$ gets weight 0")):
        for i in range(T):
            for j in range(T):
                allowed = j <= i
                ax.add_patch(_square(j, i, "#6baed6" if allowed else "#f0f0f0"))
                if ax is left:
                    text = "T" if allowed else "F"
                else:
                    text = "$s_{%d%d}$" % (i, j) if allowed else "$-\\infty$"
                ax.text(j, i, text, ha="center", va="center", fontsize=PT - 2 if ax is right else PT,
                        color="black" if allowed else "#999999")
        ax.set(xlim=(-0.5, T - 0.5), ylim=(T - 0.5, -0.5), aspect="equal")
        ax.set_xticks(range(T), labels, fontsize=PT)
        ax.set_yticks(range(T), labels, fontsize=PT)
        ax.set_xlabel("key j (what is looked at)", fontsize=PT)
        ax.set_title(title, fontsize=PT + 1)
        ax.tick_params(length=0)
    left.set_ylabel("query i (who looks)", fontsize=PT)
    return fig


def _square(x: float, y: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=color, edgecolor="white", linewidth=1.5)


def _bar(ax: Any, x: float, y: float, w: float, h: float, n: int, label: str) -> list[tuple[float, float]]:
    """A vertical bar of C channels cut into n coloured head slices; returns the slices' right-edge centres."""
    from matplotlib.patches import Rectangle

    centres = []
    for k in range(n):
        top = y + h / 2 - k * h / n
        ax.add_patch(Rectangle((x - w / 2, top - h / n), w, h / n, facecolor=HEADS[k % len(HEADS)],
                               edgecolor="black", linewidth=0.8, zorder=3))
        centres.append((x + w / 2, top - h / (2 * n)))
    ax.text(x, y + h / 2 + 0.25, label, ha="center", va="bottom", fontsize=PT)
    return centres


def multi_head_diagram(n_head: int = 3) -> Any:
    """Multi-head attention: project x to Q, K, V; each head takes its own slice of channels; concatenate; W_O."""
    if not 1 <= n_head <= len(HEADS):
        raise ValueError(f"n_head must be between 1 and {len(HEADS)} for the picture, got {n_head}")
    fig, ax = _canvas(8.6, 4.6, (-0.4, 12.6), (-0.6, 6.4))
    _box(ax, 0.6, 3.0, 1.1, 1.4, "x\n(T, C)", "white")
    ys = {"Q": 5.0, "K": 3.0, "V": 1.0}
    slices = {}
    for name, y in ys.items():
        _arrow(ax, [(1.15, 3.0), (2.0, y)])
        _box(ax, 2.6, y, 1.2, 0.8, f"$W_{name}$", GATE)
        _arrow(ax, [(3.2, y), (3.9, y)])
        slices[name] = _bar(ax, 4.2, y, 0.5, 1.3, n_head, f"{name} (T, C)")
    head_y = [5.0 - k * 4.0 / max(n_head - 1, 1) for k in range(n_head)] if n_head > 1 else [3.0]
    for k, y in enumerate(head_y):
        for name in ys:
            start = slices[name][k]
            _arrow(ax, [start, (5.85, y)], HEADS[k % len(HEADS)], 1.0)
        _box(ax, 7.1, y, 2.5, 0.85, f"head {k}\nsoftmax$(Q_{k} K_{k}^T/\\sqrt{{h_s}})\\,V_{k}$",
             HEADS[k % len(HEADS)], size=PT - 1)
    concat = _bar(ax, 9.3, 3.0, 0.5, 2.6, n_head, "concat (T, C)")
    for k, y in enumerate(head_y):
        _arrow(ax, [(8.35, y), (9.05, concat[k][1])], HEADS[k % len(HEADS)], 1.0)
    _arrow(ax, [(9.55, 3.0), (10.2, 3.0)])
    _box(ax, 10.75, 3.0, 1.0, 0.8, "$W_O$", GATE)
    _arrow(ax, [(11.25, 3.0), (11.9, 3.0)])
    ax.text(12.0, 3.0, "out\n(T, C)", va="center", fontsize=PT)
    ax.text(4.2, -0.5, f"each head: $h_s = C / n_h$ channels ({n_head} heads here)", ha="center", fontsize=PT - 1)
    ax.set_title("Multi-head attention: split, attend, concatenate, project", fontsize=PT + 1)
    return fig


def gpt_block_diagram() -> Any:
    """A decoder-only GPT: embeddings, L pre-LayerNorm blocks on the residual stream, the tied output layer."""
    fig, ax = _canvas(7.0, 7.4, (-0.4, 9.4), (-0.7, 9.6))
    sx = 2.0  # the residual stream
    _box(ax, sx, -0.2, 3.4, 0.6, "token ids $x_1 \\dots x_T$", "white")
    _box(ax, sx, 0.9, 3.6, 0.7, "$W_E[x_t] + W_P[t]$  (+ dropout)", GATE, size=PT - 1)
    _arrow(ax, [(sx, 0.1), (sx, 0.55)])
    _arrow(ax, [(sx, 1.25), (sx, 8.0)], STREAM, 2.4)
    ax.text(sx - 0.35, 5.35, "residual stream $h$ (T, C)", rotation=90, ha="right", va="center", fontsize=PT - 1,
            style="italic")
    for y0, (norm, layer, extra) in ((2.1, ("LN$_1$", "causal multi-head\nself-attention", "dropout")),
                                     (4.7, ("LN$_2$", "MLP: $C \\to 4C$, GELU,\n$4C \\to C$", "dropout"))):
        _arrow(ax, [(sx, y0), (3.4, y0)])
        _box(ax, 4.0, y0, 1.1, 0.6, norm, POINT)
        _arrow(ax, [(4.55, y0), (5.0, y0), (5.0, y0 + 0.45)])
        _box(ax, 5.9, y0 + 0.95, 2.6, 0.9, layer, GATE, size=PT - 1)
        _box(ax, 7.9, y0 + 0.95, 1.0, 0.5, extra, "white", size=PT - 2)
        _arrow(ax, [(7.2, y0 + 0.95), (7.4, y0 + 0.95)])
        _arrow(ax, [(7.9, y0 + 1.2), (7.9, y0 + 1.95), (sx + 0.28, y0 + 1.95)])
        _op(ax, sx, y0 + 1.95, "+")
    ax.add_patch(_dashed(0.7, 1.7, 8.4, 5.1))
    ax.text(8.45, 6.95, "× L blocks", ha="right", fontsize=PT, fontweight="bold")
    _box(ax, sx, 8.3, 1.4, 0.55, "LN$_f$", POINT)
    _box(ax, 5.6, 8.3, 3.6, 0.55, "logits $= \\mathrm{LN}_f(h)\\,W_E^T$ (tied)", GATE, size=PT - 1)
    _arrow(ax, [(sx + 0.7, 8.3), (3.8, 8.3)])
    _arrow(ax, [(7.4, 8.3), (7.4, 9.05)])
    ax.text(7.4, 9.15, "softmax: $p(x_{t+1} \\mid x_{\\leq t})$", ha="center", fontsize=PT - 1)
    ax.set_title("A GPT (decoder-only transformer), pre-LayerNorm as GPT-2", fontsize=PT + 1)
    return fig


def _dashed(x: float, y: float, w: float, h: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, linestyle="--", edgecolor="#888888", linewidth=1.2)
