"""What the training loop shows while it runs: a tqdm progress bar with the latest losses, and, in a
notebook, a loss plot redrawn at most once a second.

The bar is on when asked (``TrainConfig.progress=True``), or, by default, in a notebook or a terminal unless
the environment variable ``LMLAB_PROGRESS`` is ``"0"`` (tests and stored notebook outputs set it).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

__all__ = ["in_notebook", "progress_on", "LivePlot", "Progress"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (without importing IPython when it is not loaded)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def progress_on(flag: bool | None) -> bool:
    """Whether to show a progress bar: ``flag`` when given, else on in a notebook or terminal unless
    ``LMLAB_PROGRESS=0``."""
    if flag is not None:
        return flag
    if os.environ.get("LMLAB_PROGRESS") == "0":
        return False
    return in_notebook() or sys.stderr.isatty()


class LivePlot:
    """Redraw the loss plot (``history.plot``) in a notebook cell, at most once a second."""

    def __init__(self) -> None:
        self.last = 0.0

    def update(self, history: Any, force: bool = False) -> None:
        if not force and time.perf_counter() - self.last < 1.0:
            return
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        fig, ax = plt.subplots(figsize=(5, 3))
        history.plot(ax)
        clear_output(wait=True)
        display(fig)
        plt.close(fig)
        self.last = time.perf_counter()


class Progress:
    """The progress bar of one training run (from step ``initial`` to ``total``) and its live plot.

    ``show``: this process shows progress at all (only rank 0 does); ``flag`` and ``live_plot`` are the
    ``TrainConfig`` settings.
    """

    def __init__(self, total: int, initial: int, *, show: bool, flag: bool | None, live_plot: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, desc="train", disable=not (show and progress_on(flag)))
        self.postfix: dict[str, str] = {}  # live numbers shown after the bar
        self.live = LivePlot() if (live_plot and show and in_notebook()) else None

    def step(self) -> None:
        self.bar.update(1)

    def show(self, **numbers: str) -> None:
        """Update the numbers after the bar, e.g. ``show(loss="1.2345", lr="1.00e-03")``."""
        self.postfix.update(numbers)
        self.bar.set_postfix(self.postfix)

    def plot(self, history: Any, force: bool = False) -> None:
        if self.live is not None:
            self.live.update(history, force=force)

    def close(self) -> None:
        self.bar.close()
