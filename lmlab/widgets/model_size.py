"""A GPT's width and depth against its parameter count and training compute (notebook 06).

    from lmlab.widgets.model_size import SizeExplorer, gpt_size

    gpt_size(vocab_size=50257, block_size=1024, n_layer=12, n_embd=768)   # GPT-2 small, plain numbers
    explorer = SizeExplorer()       # the live widget: sliders for n_layer, n_embd, block_size, a vocabulary menu
    explorer.set(n_layer=24)        # the same from code; returns explorer.values
    explorer.static_figure()        # the picture, for readers who do not run the notebook

The counts are those of ``lmlab.GPT`` with biases (as GPT-2): the token embedding, tied to the output layer
and counted once; the position table; per block two LayerNorms, attention (fused W_QKV and W_O with biases)
and the MLP (C -> 4C -> C with biases); the final LayerNorm. Training FLOPs per token follow notebook 06:
6 per weight that enters a matrix product (all but the position table; the tied matrix once, as the output
layer) plus 12 L T C for the attention scores and the weighted sum of values (Chowdhery et al., 2022).

Letters: V vocab size, T context (block_size), L layers (n_layer), C width (n_embd).
"""

from __future__ import annotations

import time
from typing import Any

from lmlab.viz.live import Blitter
from lmlab.viz.plots import new_figure
from lmlab.widgets.base import LiveWidget

__all__ = ["gpt_size", "SizeExplorer", "VOCABS", "WIDTHS", "CONTEXTS", "REFERENCES"]

VOCABS = {"characters (65)": 65, "GPT-2 BPE (50,257)": 50257, "GPT-4 BPE (100,277)": 100277}
WIDTHS = [32, 64, 128, 256, 384, 512, 768, 1024, 1280, 1600, 2048, 4096]
CONTEXTS = [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
PARTS = ["token embedding", "position embedding", "attention", "MLP", "LayerNorms"]
COLORS = ["#1f77b4", "#aec7e8", "#ff7f0e", "#2ca02c", "#9467bd"]
# (label, vocab_size, block_size, n_layer, n_embd): models to compare with
REFERENCES = [("notebook 06, CPU", 65, 64, 2, 64), ("nanoGPT Shakespeare", 65, 256, 6, 384),
              ("GPT-2 small", 50257, 1024, 12, 768), ("GPT-2 XL", 50257, 1024, 48, 1600)]


def _check(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def gpt_size(vocab_size: int, block_size: int, n_layer: int, n_embd: int) -> dict[str, Any]:
    """Parameters by part, their total, and training FLOPs per token of ``GPT(GPTConfig(...))`` with biases.

    Example:
        >>> gpt_size(65, 64, 2, 64)["total"]   # the CPU model of notebook 06
        108352
    """
    V, T = _check("vocab_size", vocab_size, 1), _check("block_size", block_size, 1)
    L, C = _check("n_layer", n_layer, 1), _check("n_embd", n_embd, 1)
    parts = {"token embedding": V * C, "position embedding": T * C, "attention": L * (4 * C * C + 4 * C),
             "MLP": L * (8 * C * C + 5 * C), "LayerNorms": L * 4 * C + 2 * C}
    total = sum(parts.values())
    weight_flops = 6 * (total - parts["position embedding"])  # every weight but the position table
    attention_flops = 12 * L * T * C  # QK^T and the weighted sum of V, forward and backward
    return {"parts": parts, "total": total, "flops_per_token": weight_flops + attention_flops,
            "weight_flops": weight_flops, "attention_flops": attention_flops}


def _human(n: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"


class SizeExplorer(LiveWidget):
    """Sliders for n_layer, n_embd and block_size, a vocabulary menu: parameters by part and FLOPs per token.

    Args:
        n_layer, n_embd, block_size, vocab_size: the first setting (n_embd and block_size from ``WIDTHS`` and
            ``CONTEXTS``, vocab_size from ``VOCABS``' values). Default: the CPU model of notebook 06.
        dpi: resolution of the picture.
    """

    def __init__(self, n_layer: int = 2, n_embd: int = 64, block_size: int = 64, vocab_size: int = 65,
                 dpi: int = 100):
        self.n_layer, self.n_embd, self.block_size, self.vocab_size = 1, WIDTHS[0], CONTEXTS[0], 65
        self.dpi = dpi
        self._validate(n_layer, n_embd, block_size, vocab_size)
        self.n_layer, self.n_embd, self.block_size, self.vocab_size = n_layer, n_embd, block_size, vocab_size
        self.last_update_seconds: float | None = None
        self._figure()
        self._build_widgets()
        self._refresh()

    @staticmethod
    def _validate(n_layer: Any, n_embd: Any, block_size: Any, vocab_size: Any) -> None:
        if isinstance(n_layer, bool) or not isinstance(n_layer, int) or not 1 <= n_layer <= 48:
            raise ValueError(f"n_layer must be an int from 1 to 48 (the slider's range), got {n_layer!r}")
        if n_embd not in WIDTHS:
            raise ValueError(f"n_embd must be one of {WIDTHS}, got {n_embd!r}")
        if block_size not in CONTEXTS:
            raise ValueError(f"block_size must be one of {CONTEXTS}, got {block_size!r}")
        if vocab_size not in VOCABS.values():
            raise ValueError(f"vocab_size must be one of {list(VOCABS.values())}, got {vocab_size!r}")

    @property
    def values(self) -> dict[str, Any]:
        """The setting and what the picture shows, as plain numbers."""
        return {"n_layer": self.n_layer, "n_embd": self.n_embd, "block_size": self.block_size,
                "vocab_size": self.vocab_size, **gpt_size(self.vocab_size, self.block_size, self.n_layer, self.n_embd)}

    def set(self, n_layer: int | None = None, n_embd: int | None = None, block_size: int | None = None,
            vocab_size: int | None = None) -> dict[str, Any]:
        """Change the setting as the controls do; returns ``values``."""
        new = (self.n_layer if n_layer is None else n_layer, self.n_embd if n_embd is None else n_embd,
               self.block_size if block_size is None else block_size,
               self.vocab_size if vocab_size is None else vocab_size)
        self._validate(*new)
        self.n_layer, self.n_embd, self.block_size, self.vocab_size = new
        self._sync_controls()
        self._refresh()
        return self.values

    # -- picture ----------------------------------------------------------------------------------------

    def _figure(self) -> None:
        fig = new_figure(8.4, 3.4, self.dpi)
        ax_p, ax_f = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
        self._pbars = ax_p.barh(range(len(PARTS)), [1] * len(PARTS), color=COLORS)
        ax_p.set_yticks(range(len(PARTS)), PARTS, fontsize=9)
        ax_p.invert_yaxis()
        ax_p.set(xlim=(0, 1), xlabel="share of the parameters")
        self._plabels = [ax_p.text(0, i, "", va="center", fontsize=9) for i in range(len(PARTS))]
        self._p_title = ax_p.set_title(" ", fontsize=10)
        refs = [gpt_size(V, T, L, C) for _, V, T, L, C in REFERENCES]
        ax_f.set(xscale="log", yscale="log", xlabel="parameters", ylabel="training FLOPs per token",
                 xlim=(1e4, 3e11), ylim=(5e4, 3e12))
        ax_f.plot([r["total"] for r in refs], [r["flops_per_token"] for r in refs], "s", color="0.55", ms=5)
        for (label, *_), r in zip(REFERENCES, refs):
            ax_f.annotate(label, (r["total"], r["flops_per_token"]), xytext=(4, -10), textcoords="offset points",
                          fontsize=9, color="0.35")
        ax_f.plot([1e4, 3e11], [6e4, 1.8e12], ":", color="0.6", lw=1, label="6 x parameters")
        (self._dot,) = ax_f.plot([1], [1], "o", color="tab:red", ms=9, label="this setting")
        ax_f.legend(fontsize=9, loc="upper left")
        self._f_title = ax_f.set_title(" ", fontsize=10)
        dynamic = [*self._pbars, *self._plabels, self._p_title, self._dot, self._f_title]
        self.fig = fig
        self._blit = Blitter(fig, dynamic, self.dpi)

    def render(self) -> bytes:
        """The picture for the current setting, as PNG bytes."""
        v = self.values
        for i, part in enumerate(PARTS):
            n = v["parts"][part]
            share = n / v["total"]
            self._pbars[i].set_width(share)
            self._plabels[i].set_position((min(share, 0.62) + 0.01, i))
            self._plabels[i].set_text(f"{_human(n)} ({100 * share:.0f}%)")
        self._p_title.set_text(f"L={self.n_layer}, C={self.n_embd}, T={self.block_size}, V={self.vocab_size:,}: "
                               f"{_human(v['total'])} parameters")
        self._dot.set_data([v["total"]], [v["flops_per_token"]])
        share = v["attention_flops"] / v["flops_per_token"]
        self._f_title.set_text(f"{_human(v['flops_per_token'])} FLOPs per token, {100 * share:.0f}% attention")
        return self._blit.png()

    # -- widgets ----------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as widgets

        self.layers = widgets.IntSlider(value=self.n_layer, min=1, max=48, description="n_layer",
                                        continuous_update=True)
        self.width = widgets.SelectionSlider(options=WIDTHS, value=self.n_embd, description="n_embd",
                                             continuous_update=True)
        self.context = widgets.SelectionSlider(options=CONTEXTS, value=self.block_size, description="block_size",
                                               continuous_update=True)
        self.vocab = widgets.Dropdown(options=list(VOCABS.items()), value=self.vocab_size, description="vocabulary")
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.readout = widgets.HTML()
        for control in (self.layers, self.width, self.context, self.vocab):
            control.observe(self._on_control, names="value")
        controls = widgets.VBox([widgets.HBox([self.layers, self.width]), widgets.HBox([self.context, self.vocab])])
        self.widget = widgets.VBox([controls, self.image, self.readout])
        self.widget.add_class("lmlab-size-explorer")

    def _on_control(self, change: dict) -> None:
        self.n_layer, self.n_embd = int(self.layers.value), self.width.value
        self.block_size, self.vocab_size = self.context.value, self.vocab.value
        self._refresh()

    def _sync_controls(self) -> None:
        self._set_controls(((self.layers, self.n_layer), (self.width, self.n_embd),
                           (self.context, self.block_size), (self.vocab, self.vocab_size)))

    def _refresh(self) -> None:
        t0 = time.perf_counter()
        self.image.value = self.render()
        v = self.values
        per_block = v["parts"]["attention"] + v["parts"]["MLP"]
        self.readout.value = (
            f"<b>{v['total']:,}</b> parameters; the {self.n_layer} blocks hold {per_block:,} of them "
            f"(12 C² = {12 * self.n_embd ** 2:,} per block, plus biases). Training costs about "
            f"<b>{v['flops_per_token']:,}</b> FLOPs per token: {v['weight_flops']:,} for the weights (6 per weight) "
            f"and {v['attention_flops']:,} for the attention scores (12 L T C). Doubling n_embd quadruples the "
            f"blocks' parameters; doubling n_layer doubles them; block_size changes only the position table and "
            "the attention term.")
        self.last_update_seconds = time.perf_counter() - t0

    def __repr__(self) -> str:
        return (f"SizeExplorer(n_layer={self.n_layer}, n_embd={self.n_embd}, block_size={self.block_size}, "
                f"vocab_size={self.vocab_size})")
