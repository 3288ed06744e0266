"""A BPE merge stepper (notebook 03): step through the merges BPE learns and watch a text's tokens change.

    from lmlab.widgets.bpe_stepper import BPEStepper, merge_steps

    stepper = BPEStepper(text[:5000], n_merges=40)    # the live widget: a slider for the number of merges
    stepper.set(merges=5, pattern="gpt2")              # the same from code; returns stepper.values
    steps = merge_steps(text[:5000], 40, pattern=None) # the numbers the widget shows, as a plain function
    stepper.static_figure()                            # the text's tokens after a few merges, as a picture

The merges are those of ``lmlab.tokenizers`` (``incremental_merges``: the most frequent pair first, ties to
the smallest pair), learned on the training text with or without GPT-2's pre-tokenization regex. Each step
records the pair, the new token's bytes, how often the pair occurred in the training text when it was
merged, and the tokens of the shown text (by default the start of the training text) after that merge.
Everything is computed once, when the stepper is made, so moving the slider only draws.

Letters: none (no tensors here).
"""

from __future__ import annotations

import html
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lmlab.tokenizers import PATTERNS, incremental_merges, merge, split_chunks
from lmlab.viz.plots import figure_bytes, new_figure
from lmlab.widgets.base import LiveWidget

__all__ = ["MergeStep", "merge_steps", "BPEStepper", "PATTERN_CHOICES"]

PATTERN_CHOICES = {"none": None, "gpt2": "gpt2"}  # no pre-tokenization (merges cross words), GPT-2's regex
_COLORS = ("#dbe8f6", "#f6e7d2")  # alternate token backgrounds
_NEW = "#f4b6b6"  # the token made by the last merge


@dataclass
class MergeStep:
    """One merge: ``pair`` -> ``new_id`` (the bytes ``token``), seen ``count`` times in the training text when
    it was merged, and the shown text's ``tokens`` (as bytes) after it."""

    index: int  # 1 for the first merge; 0 is the start (bytes only)
    pair: tuple[int, int] | None
    new_id: int | None
    token: bytes
    count: int
    tokens: list[bytes]


def _pattern(pattern: str | None) -> str | None:
    if pattern not in PATTERN_CHOICES.values():
        raise ValueError(f"pattern must be None (no pre-tokenization) or 'gpt2', got {pattern!r}")
    return PATTERNS[pattern] if pattern else None


def merge_steps(text: str, n_merges: int, pattern: str | None = None, show: str | None = None) -> list[MergeStep]:
    """The first ``n_merges`` merges BPE learns on ``text``, with the tokens of ``show`` (default: ``text``)
    after each; element 0 is the start, one token per byte.

    Example: merge_steps("aaabdaaabac", 2)[1] -> MergeStep(index=1, pair=(97, 97), new_id=256, token=b'aa',
    count=4, tokens=[b'aa', b'a', b'b', ...])
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    if not isinstance(n_merges, int) or n_merges < 0:
        raise ValueError(f"n_merges must be an int >= 0, got {n_merges!r}")
    regex = _pattern(pattern)
    merges = incremental_merges(text, 256 + n_merges, regex)
    words = Counter(split_chunks(text, regex))  # distinct chunks of the training text and their counts
    train = [(list(w.encode("utf-8")), c) for w, c in words.items()]
    shown = [list(c.encode("utf-8")) for c in split_chunks(text if show is None else show, regex)]
    vocab = {i: bytes([i]) for i in range(256)}

    def tokens() -> list[bytes]:
        return [vocab[i] for ids in shown for i in ids]

    steps = [MergeStep(0, None, None, b"", 0, tokens())]
    for pair, new_id in merges:
        count = sum(c * sum(1 for p in zip(ids, ids[1:]) if p == pair) for ids, c in train)
        train = [(merge(ids, pair, new_id), c) for ids, c in train]
        shown = [merge(ids, pair, new_id) for ids in shown]
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        steps.append(MergeStep(len(steps), pair, new_id, vocab[new_id], count, tokens()))
    return steps


def _shown(token: bytes) -> str:
    """A token as visible text: spaces as an open box, newlines as an arrow, broken UTF-8 as a replacement mark."""
    return token.decode("utf-8", errors="replace").replace(" ", "\u2423").replace("\n", "\u21b5")


class BPEStepper(LiveWidget):
    """A slider over the merges BPE learns on a text; the shown text's tokens after that many merges.

    Args:
        text: the training text (a few thousand characters train in a blink).
        n_merges: how many merges the slider reaches.
        show: the text whose tokens are shown (default: the first 400 characters of ``text``).
        pattern: the first choice, None (merges may cross words) or "gpt2" (GPT-2's regex first).
        merges: the first position of the slider.
    """

    def __init__(self, text: str, n_merges: int = 40, *, show: str | None = None, pattern: str | None = None,
                 merges: int = 0, dpi: int = 100):
        self.show = text[:400] if show is None else show
        if not self.show:
            raise ValueError("show must be a non-empty string")
        self.n_merges, self.dpi = n_merges, dpi
        self.steps = {p: merge_steps(text, n_merges, p, self.show) for p in PATTERN_CHOICES.values()}
        _pattern(pattern)  # raises ValueError for anything but None and "gpt2"
        self.pattern = pattern
        if not isinstance(merges, int) or not 0 <= merges <= self.max_merges:
            raise ValueError(f"merges must be an int from 0 to {self.max_merges}, got {merges!r}")
        self.merges = merges
        self.last_update_seconds: float | None = None
        self._build_widgets()
        self._refresh()

    @property
    def max_merges(self) -> int:
        """Merges available under both patterns (fewer than n_merges if a text runs out of pairs)."""
        return min(len(s) - 1 for s in self.steps.values())

    @property
    def values(self) -> dict[str, Any]:
        """What the stepper shows, as plain data."""
        step = self.steps[self.pattern][self.merges]
        n_bytes = len(self.steps[self.pattern][0].tokens)
        return {"merges": self.merges, "pattern": self.pattern, "token": step.token, "pair": step.pair,
                "count": step.count, "n_tokens": len(step.tokens), "n_bytes": n_bytes,
                "tokens": [t.decode("utf-8", errors="replace") for t in step.tokens]}

    def set(self, merges: int | None = None, pattern: Any = ...) -> dict[str, Any]:
        """Move the slider / choose the pattern (None or "gpt2") from code; returns ``values``."""
        if pattern is not ...:
            _pattern(pattern)
            self.pattern = pattern
        if merges is not None:
            if not isinstance(merges, int) or not 0 <= merges <= self.max_merges:
                raise ValueError(f"merges must be an int from 0 to {self.max_merges}, got {merges!r}")
            self.merges = merges
        self._sync_controls()
        self._refresh()
        return self.values

    # -- drawing ----------------------------------------------------------------------------------------

    def tokens_html(self) -> str:
        """The shown text as coloured token boxes (HTML); tokens made by the last merge in red."""
        step = self.steps[self.pattern][self.merges]
        spans = []
        for i, token in enumerate(step.tokens):
            color = _NEW if step.index and token == step.token else _COLORS[i % 2]
            text = html.escape(_shown(token))
            spans.append(f"<span style='background:{color};border-radius:3px;padding:1px 0;margin:0 1px'>{text}</span>")
            if token.endswith(b"\n"):
                spans.append("<br>")
        return ("<div class='lmlab-bpe-tokens' style='font-family:\"DejaVu Sans Mono\",Menlo,Consolas,monospace;"
                "font-size:13px;line-height:1.9'>" + "".join(spans) + "</div>")

    def readout_text(self) -> str:
        v = self.values
        where = "GPT-2's regex first" if v["pattern"] else "no pre-tokenization"
        if not v["merges"]:
            return f"Start ({where}): one token per byte, {v['n_bytes']} tokens. Move the slider to merge."
        return (f"Merge {v['merges']} ({where}): the pair {self._pair_text(v['pair'])} becomes the token "
                f"'{_shown(v['token'])}' (seen {v['count']} times in the training text). The shown text is now "
                f"{v['n_tokens']} tokens, from {v['n_bytes']} bytes.")

    def _pair_text(self, pair: tuple[int, int]) -> str:
        tokens = {s.new_id: s.token for s in self.steps[self.pattern][1:]}
        parts = [tokens.get(i, bytes([i]) if i < 256 else b"?") for i in pair]
        return " + ".join(f"'{_shown(p)}'" for p in parts)

    def static_figure(self, at: tuple[int, ...] | None = None, chars: int = 40) -> Any:
        """The first ``chars`` characters of the shown text as token boxes after several numbers of merges, one
        row each, without pre-tokenization and with GPT-2's regex (or only the current choice, given ``at``)."""
        from matplotlib.patches import FancyBboxPatch

        counts = at or tuple(sorted({0, 1, min(5, self.max_merges), min(15, self.max_merges), self.max_merges}))
        patterns = list(PATTERN_CHOICES.values()) if at is None else [self.pattern]
        rows: list[tuple[str, list[bytes]]] = []
        for pattern in patterns:
            rows.append(("GPT-2 regex first" if pattern else "no pre-tokenization", []))
            for k in counts:
                toks = self._prefix_tokens(self.steps[pattern][k].tokens, chars)
                rows.append((f"{k} merge{'s' if k != 1 else ''}: {len(toks)} tokens", toks))
        width = chars + 0.3 * max(len(t) for _, t in rows) + 1
        fig = new_figure(9.0, 0.34 * len(rows) + 0.45, self.dpi)
        fig.set_layout_engine("none")
        ax = fig.add_axes((0.17, 0.01, 0.82, 1 - 0.45 / (0.34 * len(rows) + 0.45)))
        ax.set(xlim=(0, width), ylim=(len(rows) - 0.5, -0.5))
        ax.axis("off")
        for r, (label, toks) in enumerate(rows):
            if not toks:  # a group title
                ax.text(0, r, label, ha="left", va="center", fontsize=10, weight="bold")
                continue
            x = 0.0
            for i, token in enumerate(toks):
                shown = _shown(token)
                ax.add_patch(FancyBboxPatch((x + 0.05, r - 0.36), len(shown) - 0.1, 0.72, boxstyle="round,pad=0.02",
                                            facecolor=_COLORS[i % 2], edgecolor="#888888", linewidth=0.6))
                ax.text(x + len(shown) / 2, r, shown.replace("$", r"\$"), ha="center", va="center", fontsize=10,
                        family="DejaVu Sans Mono")
                x += len(shown) + 0.3
            ax.text(-0.5, r, label, ha="right", va="center", fontsize=9)
        fig.suptitle("BPE: the same text after more and more merges", fontsize=11, y=0.99, va="top")
        fig._repr_png_ = lambda: figure_bytes(fig, "png", self.dpi)
        return fig

    @staticmethod
    def _prefix_tokens(tokens: list[bytes], chars: int) -> list[bytes]:
        out, n = [], 0
        for token in tokens:
            if n >= chars:
                break
            out.append(token)
            n += len(_shown(token))
        return out

    # -- widgets ----------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as widgets

        self.slider = widgets.IntSlider(value=self.merges, min=0, max=self.max_merges, description="merges",
                                        continuous_update=True)
        self.pattern_buttons = widgets.ToggleButtons(
            options=[("no pre-tokenization", "none"), ("GPT-2 regex", "gpt2")],
            value="gpt2" if self.pattern else "none", description="split")
        self.text_view = widgets.HTML()
        self.readout = widgets.HTML()
        self.slider.observe(self._on_control, names="value")
        self.pattern_buttons.observe(self._on_control, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.pattern_buttons]), self.readout, self.text_view])
        self.widget.add_class("lmlab-bpe-stepper")

    def _on_control(self, change: dict) -> None:
        self.merges, self.pattern = self.slider.value, PATTERN_CHOICES[self.pattern_buttons.value]
        self._refresh()

    def _sync_controls(self) -> None:
        self._set_controls(((self.slider, self.merges),
                           (self.pattern_buttons, "gpt2" if self.pattern else "none")))

    def _refresh(self) -> None:
        t0 = time.perf_counter()
        self.text_view.value = self.tokens_html()
        self.readout.value = f"<span class='lmlab-bpe-readout'>{html.escape(self.readout_text())}</span>"
        self.last_update_seconds = time.perf_counter() - t0

    def __repr__(self) -> str:
        return f"BPEStepper(n_merges={self.n_merges}, shown text of {len(self.show)} characters)"

    def _picture(self) -> bytes:
        """The current pattern's merges at several counts, as PNG, for places without live widgets."""
        counts = tuple(sorted({0, 1, min(5, self.max_merges), min(15, self.max_merges), self.max_merges}))
        return figure_bytes(self.static_figure(at=counts), "png", self.dpi)
