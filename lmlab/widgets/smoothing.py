"""Add-k smoothing against validation loss (notebook 01): move k, see the validation curve and one row of the table.

    from lmlab.widgets.smoothing import SmoothingExplorer, k_sweep, validation_loss

    explorer = SmoothingExplorer(train_ids, val_ids, vocab_size=8, n=3, sizes=[500, 2000, 16_000])
    explorer                       # the live widget: sliders for k and the amount of training text
    explorer.set(k=0.3)            # the same from code; returns explorer.values (plain numbers)
    explorer.static_figure()       # the picture, for readers who do not run the notebook

The numbers are ``NGramLM``'s: ``validation_loss`` is the mean cross-entropy on the validation tokens of
an add-k n-gram model fit on the training tokens, what ``NGramLM(V, n, k).fit(train)(val[None, :-1],
val[None, 1:])`` gives, computed from count tables: each text is counted once, and a new k only changes a
(K, V) table, so an update takes a few milliseconds. The figure is redrawn with blitting (``lmlab.viz.live.Blitter``): its axes and labels are drawn once, the lines and bars
on top of them at each update.

Left panel: validation loss against k (log scale) for the chosen amount of training text, the current k
marked. Right panel: the next-token distribution after one context: the counts normalized (k = 0, the
MLE), the add-k model at the current k, and the true distribution when the source's table is given.

Letters: V vocab size, K contexts (V ** (n - 1)).
"""

from __future__ import annotations

import html
import math
import time
from typing import Any, Sequence

import torch
from torch import Tensor

from lmlab.viz.live import Blitter
from lmlab.viz.plots import new_figure
from lmlab.widgets.base import LiveWidget
from lmlab.widgets.one_thread import one_thread

__all__ = ["validation_loss", "k_sweep", "SmoothingExplorer", "DEFAULT_KS"]

DEFAULT_KS = [round(10 ** (e / 4), 6) for e in range(-12, 9)]  # 0.001 ... 100, four points per decade


def _as_ids(ids: Any, vocab_size: int, name: str) -> Tensor:
    t = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if t.numel() < 2:
        raise ValueError(f"{name} must hold at least 2 token ids, got {t.numel()}")
    if int(t.min()) < 0 or int(t.max()) >= vocab_size:
        raise ValueError(f"{name} must hold ids in [0, vocab_size={vocab_size}), got ids from {int(t.min())} "
                         f"to {int(t.max())}")
    return t


def ngram_counts(ids: Tensor, vocab_size: int, m: int) -> Tensor:
    """How often each token follows each context of m - 1 tokens. Shape: (T,) -> (V ** (m - 1), V), float64

    Contexts are numbered as base-V numbers (context (a, b) has id a * V + b), as in ``NGramLM``.
    Example: ids [0, 1, 0, 1], V = 2, m = 2 -> [[0, 2], [1, 0]]
    """
    V = vocab_size
    grams = ids.unfold(0, m, 1)  # (T - m + 1, m)
    flat = (grams * (V ** torch.arange(m - 1, -1, -1))).sum(1)  # (T - m + 1,) base-V number of each m-gram
    return torch.bincount(flat, minlength=V**m).reshape(V ** (m - 1), V).double()


def _add_k(counts: Tensor, k: float) -> Tensor:
    """(count + k) / (row total + k V), rows without data uniform (as NGramLM). Shape: (K, V) -> (K, V)"""
    c = counts + k
    total = c.sum(1, keepdim=True)  # (K, 1)
    return torch.where(total > 0, c / total.clamp_min(1e-300), torch.full_like(c, 1.0 / counts.shape[1]))


class _Scorer:
    """Count tables of one training text and of the validation text, for losses at any k in microseconds.

    The validation loss is NGramLM's: position t of the validation text is predicted from the n - 1 tokens
    before it, the first n - 2 positions from the shorter context they have (a lower-order model).
    """

    def __init__(self, train: Tensor, val: Tensor, vocab_size: int, n: int):
        self.vocab_size, self.n = vocab_size, n
        self.train = {m: ngram_counts(train, vocab_size, m) for m in range(2, n + 1)}  # order -> (V^(m-1), V)
        self.val = ngram_counts(val, vocab_size, n)  # (K, V): the positions with a full context
        self.first = [(val[: t + 1], int(val[t + 1])) for t in range(n - 2)]  # (context, next) of the first ones
        self.N = len(val) - 1  # predicted positions

    def loss(self, k: float) -> float:
        V = self.vocab_size
        P = _add_k(self.train[self.n], k)  # (K, V)
        seen = self.val > 0
        total = -(self.val[seen] * P[seen].log()).sum().item()
        for ctx, nxt in self.first:  # the first positions: a shorter context
            m = len(ctx) + 1
            row = int((ctx * (V ** torch.arange(m - 2, -1, -1))).sum())
            total -= math.log(_add_k(self.train[m][row : row + 1], k)[0, nxt].item())
        return total / self.N


def validation_loss(train_ids: Any, val_ids: Any, vocab_size: int, n: int, k: float) -> float:
    """Mean cross-entropy (nats per token) on ``val_ids`` of ``NGramLM(vocab_size, n, k)`` fit on ``train_ids``.

    ``inf`` when k = 0 and the validation text holds an n-gram the training text does not. Computed from count
    tables in float64 (NGramLM's own forward gives the same number up to its float32 rounding).

    Example:
        >>> validation_loss([0, 1, 0, 1, 0], [0, 1, 0], vocab_size=2, n=2, k=0.0)   # 1 -> 0 and 0 -> 1 always
        0.0
    """
    if not k >= 0:
        raise ValueError(f"k must be >= 0, got {k!r}")
    return k_sweep(train_ids, val_ids, vocab_size, n, [k])[0]


def k_sweep(train_ids: Any, val_ids: Any, vocab_size: int, n: int, ks: Sequence[float] = DEFAULT_KS) -> list[float]:
    """``validation_loss`` for every k in ``ks`` (each text is counted once)."""
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
    if n not in (2, 3):
        raise ValueError(f"n must be 2 (bigram) or 3 (trigram), got {n!r}")
    train, val = _as_ids(train_ids, vocab_size, "train_ids"), _as_ids(val_ids, vocab_size, "val_ids")
    if not ks or any(not k >= 0 for k in ks):
        raise ValueError(f"ks must be a non-empty list of numbers >= 0, got {ks!r}")
    scorer = _Scorer(train, val, vocab_size, n)
    return [scorer.loss(k) for k in ks]


class SmoothingExplorer(LiveWidget):
    """Sliders for add-k smoothing's k and the amount of training text; the validation curve and one row.

    Args:
        train_ids, val_ids: token ids (lists or LongTensors) of the training and validation texts.
        vocab_size: V; n: the order of the n-gram model (2 bigram, 3 trigram).
        sizes: the amounts of training text (prefixes of ``train_ids``) the slider offers; default: the
            whole text, a quarter and a sixteenth.
        k, n_train: the first k and training size shown (default: the middle size); ks: the grid of the
            validation curve (default 0.001 to 100, four points per decade).
        alphabet: one character per token id, for labels (default: the ids as numbers).
        floor: a loss to draw as a dotted line (the entropy rate of a source), or None.
        true_table: the source's true next-token table, shape (K, V) or (V,) * n, drawn as markers, or None.
        dpi: resolution of the picture.
    """

    def __init__(self, train_ids: Any, val_ids: Any, vocab_size: int, n: int = 2, *, sizes: Sequence[int] | None = None,
                 k: float = 0.1, n_train: int | None = None, ks: Sequence[float] = DEFAULT_KS,
                 alphabet: str | None = None,
                 floor: float | None = None, true_table: Tensor | None = None, dpi: int = 100):
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
        if n not in (2, 3):
            raise ValueError(f"n must be 2 (bigram) or 3 (trigram), got {n!r}")
        self.train, self.val = _as_ids(train_ids, vocab_size, "train_ids"), _as_ids(val_ids, vocab_size, "val_ids")
        self.vocab_size, self.n, self.dpi = vocab_size, n, dpi
        total = len(self.train)
        sizes = list(sizes) if sizes is not None else sorted({max(n, total // 16), max(n, total // 4), total})
        if not sizes or any(not isinstance(s, int) or not n <= s <= total for s in sizes):
            raise ValueError(f"sizes must be ints between n={n} and len(train_ids)={total}, got {sizes!r}")
        self.sizes = sorted(set(sizes))
        self.ks = [float(x) for x in ks]
        if len(self.ks) < 2 or any(not x > 0 for x in self.ks):
            raise ValueError(f"ks must hold at least 2 numbers > 0 (the curve's x axis is logarithmic), got {ks!r}")
        if alphabet is not None and len(alphabet) != vocab_size:
            raise ValueError(f"alphabet must have one character per token id ({vocab_size}), got {len(alphabet)}")
        self.alphabet = alphabet
        self.floor = floor
        self.true_table = None if true_table is None else torch.as_tensor(true_table).double().reshape(-1, vocab_size)
        if self.true_table is not None and len(self.true_table) != vocab_size ** (n - 1):
            raise ValueError(f"true_table must have {vocab_size ** (n - 1)} rows (one per context), "
                             f"got {len(self.true_table)}")
        self._scorers: dict[int, _Scorer] = {}  # training size -> its count tables
        self._curves: dict[int, list[float]] = {}  # training size -> validation loss at each k of self.ks
        if n_train is not None and n_train not in self.sizes:
            raise ValueError(f"n_train must be one of the sizes {self.sizes}, got {n_train!r}")
        if not k > 0:
            raise ValueError(f"k must be > 0 (the slider is logarithmic), got {k!r}")
        self.k, self.n_train = float(k), self.sizes[len(self.sizes) // 2] if n_train is None else n_train
        self.context = self._most_frequent_context()
        self.last_update_seconds: float | None = None
        self._figure()
        self._build_widgets()
        self._refresh()

    # -- numbers ----------------------------------------------------------------------------------------

    def _scorer(self, size: int) -> _Scorer:
        if size not in self._scorers:
            self._scorers[size] = _Scorer(self.train[:size], self.val, self.vocab_size, self.n)
        return self._scorers[size]

    def curve(self, n_train: int | None = None) -> list[float]:
        """Validation loss at each k of ``self.ks`` for a training size (default: the current one)."""
        size = self.n_train if n_train is None else n_train
        if size not in self._curves:
            scorer = self._scorer(size)
            self._curves[size] = [scorer.loss(k) for k in self.ks]
        return self._curves[size]

    def _context_counts(self) -> Tensor:
        return self._scorer(self.n_train).train[self.n]  # (K, V)

    def _most_frequent_context(self) -> int:
        return int(self._context_counts().sum(1).argmax())

    def context_label(self, context: int) -> str:
        digits, V = [], self.vocab_size
        for _ in range(self.n - 1):
            digits.append(context % V)
            context //= V
        ids = digits[::-1]
        return "".join(self.alphabet[i] for i in ids) if self.alphabet else " ".join(map(str, ids))

    @property
    def values(self) -> dict[str, Any]:
        """What the widget shows, as plain numbers: k, training size, context, losses, the row's probabilities."""
        counts = self._context_counts()[self.context].double()  # (V,)
        smoothed = (counts + self.k) / (counts.sum() + self.k * self.vocab_size)  # (V,)
        curve = self.curve()
        best = min(range(len(curve)), key=curve.__getitem__)
        return {"k": self.k, "n_train": self.n_train, "context": self.context_label(self.context),
                "context_count": int(counts.sum()), "val_loss": self._scorer(self.n_train).loss(self.k),
                "best_k": self.ks[best], "best_loss": curve[best], "probs": [round(float(p), 6) for p in smoothed]}

    def set(self, k: float | None = None, n_train: int | None = None, context: str | None = None) -> dict[str, Any]:
        """Change k, the training size or the context (its characters, or ids separated by spaces), as the
        controls do; returns ``values``."""
        if k is not None:
            if not k > 0:
                raise ValueError(f"k must be > 0 here (the slider is logarithmic), got {k!r}")
            self.k = float(k)
        if n_train is not None:
            if n_train not in self.sizes:
                raise ValueError(f"n_train must be one of the sizes {self.sizes}, got {n_train!r}")
            self.n_train = n_train
        if context is not None:
            labels = [self.context_label(c) for c in range(self.vocab_size ** (self.n - 1))]
            if context not in labels:
                raise ValueError(f"context must be one of {labels[:8]}..., got {context!r}")
            self.context = labels.index(context)
        self._sync_controls()
        self._refresh()
        return self.values

    # -- picture ----------------------------------------------------------------------------------------

    def _figure(self) -> None:
        fig = new_figure(8.4, 3.1, self.dpi)
        ax_loss, ax_row = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
        every = [loss for size in self.sizes for loss in self.curve(size) if math.isfinite(loss)]
        low = min(every + ([self.floor] if self.floor is not None else []))
        high = min(max(every), math.log(self.vocab_size) + 0.6)
        ax_loss.set(xscale="log", xlim=(self.ks[0], self.ks[-1]), ylim=(low - 0.05, high + 0.05),
                    xlabel="smoothing k (pseudo-counts, log scale)", ylabel="validation loss (nats/token)")
        if self.floor is not None:
            ax_loss.axhline(self.floor, color="k", ls=":", lw=1, label="entropy rate (floor)")
        ax_loss.axhline(math.log(self.vocab_size), color="gray", ls="--", lw=1, label="uniform model")
        (self._line,) = ax_loss.plot(self.ks, self.curve(), color="tab:blue", marker=".", label="add-k model")
        (self._dot,) = ax_loss.plot([self.k], [self.curve()[0]], "o", color="tab:red", ms=8, label="current k")
        ax_loss.legend(fontsize=8, loc="upper center", ncols=2, framealpha=0.9)
        self._loss_title = ax_loss.set_title(" ", fontsize=10)
        V, x = self.vocab_size, torch.arange(self.vocab_size).float()
        self._bars = ax_row.bar(x - 0.2, [0] * V, width=0.4, color="tab:blue", label="add-k model")
        self._mle = ax_row.bar(x + 0.2, [0] * V, width=0.4, color="0.75", label="counts (k = 0)")
        dynamic = [self._line, self._dot, self._loss_title, *self._bars, *self._mle]
        if self.true_table is not None:
            (self._true,) = ax_row.plot(x, [0] * V, "k_", ms=16, mew=2, label="true probability")
            dynamic.append(self._true)
        labels = list(self.alphabet) if self.alphabet else [str(i) for i in range(V)]
        ax_row.set(xticks=x.tolist(), ylim=(0, 1), xlabel="next token", ylabel="probability")
        ax_row.set_xticklabels(labels, fontsize=9)
        ax_row.legend(fontsize=9, loc="upper right")
        self._row_title = ax_row.set_title(" ", fontsize=10)
        dynamic.append(self._row_title)
        self.fig = fig
        self._blit = Blitter(fig, dynamic, self.dpi)

    def render(self) -> bytes:
        """The picture for the current settings, as PNG bytes."""
        values = self.values
        curve = self.curve()
        self._line.set_ydata([min(c, 1e3) for c in curve])
        self._dot.set_data([self.k], [min(values["val_loss"], 1e3)])
        self._loss_title.set_text(f"{self.n_train:,} training tokens: loss {values['val_loss']:.3f} at k = {self.k:.3g}")
        counts = self._context_counts()[self.context].double()
        mle = counts / counts.sum() if counts.sum() > 0 else torch.zeros_like(counts)
        for bar, p in zip(self._bars, values["probs"]):
            bar.set_height(p)
        for bar, p in zip(self._mle, mle.tolist()):
            bar.set_height(p)
        if self.true_table is not None:
            self._true.set_ydata(self.true_table[self.context].tolist())
        self._row_title.set_text(f"after {values['context']!r} (seen {values['context_count']} times)")
        return self._blit.png()

    # -- widgets ----------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as widgets

        exponents = [math.log10(k) for k in self.ks]
        self.k_slider = widgets.FloatLogSlider(value=self.k, base=10, min=exponents[0], max=exponents[-1], step=0.05,
                                               description="k", readout_format=".3g", continuous_update=True)
        self.size_slider = widgets.SelectionSlider(options=[(f"{s:,}", s) for s in self.sizes], value=self.n_train,
                                                   description="training", continuous_update=True)
        labels = [self.context_label(c) for c in range(self.vocab_size ** (self.n - 1))]
        self.context_menu = widgets.Dropdown(options=[(repr(s), i) for i, s in enumerate(labels)],
                                             value=self.context, description="context")
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.readout = widgets.HTML()
        for control in (self.k_slider, self.size_slider, self.context_menu):
            control.observe(self._on_control, names="value")
        controls = widgets.HBox([self.k_slider, self.size_slider, self.context_menu])
        self.widget = widgets.VBox([controls, self.image, self.readout])
        self.widget.add_class("lmlab-smoothing-explorer")

    def _on_control(self, change: dict) -> None:
        self.k, self.n_train, self.context = float(self.k_slider.value), self.size_slider.value, self.context_menu.value
        with one_thread():  # small tensors: one thread answers faster (lmlab/widgets/one_thread.py)
            self._refresh()

    def _sync_controls(self) -> None:
        self._set_controls(((self.k_slider, self.k), (self.size_slider, self.n_train),
                           (self.context_menu, self.context)))

    def _refresh(self) -> None:
        t0 = time.perf_counter()
        self.image.value = self.render()
        v = self.values
        self.readout.value = (f"k = {v['k']:.3g}: validation loss <b>{v['val_loss']:.3f}</b> nats/token; best k on "
                              f"the grid: {v['best_k']:.3g} ({v['best_loss']:.3f}) with {v['n_train']:,} training "
                              f"tokens. {html.escape(self._advice(v))}")
        self.last_update_seconds = time.perf_counter() - t0

    @staticmethod
    def _advice(v: dict[str, Any]) -> str:
        if v["k"] < v["best_k"] / 3:
            return "Too little smoothing: unseen n-grams get almost no probability."
        if v["k"] > v["best_k"] * 3:
            return "Too much smoothing: the model drifts towards uniform."
        return "Near the best k for this much data."

    def __repr__(self) -> str:
        return f"SmoothingExplorer(n={self.n}, vocab_size={self.vocab_size}, sizes={self.sizes})"
