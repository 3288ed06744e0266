"""Reference loss bands: is my training run "right"?

Learners cannot tell whether a loss curve is normal. For every training cell of the course we ran the same
training with several seeds and kept the spread of the curves as a *band* (small JSON files beside this
module). `compare_to_reference(history, name)` says in words whether a run stays inside the band, and
`plot_against_reference` draws the run over it.

Bands are made with `make_band(curves)` from the course's own runs (scripts/make_reference_bands.py, one recipe per band in scripts/reference_runs/) and saved
with `save_band`. A band holds, for each evaluated step, the lowest and highest loss seen across seeds,
widened by a margin so that ordinary seed-to-seed and machine-to-machine differences stay inside.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

BAND_DIR = Path(__file__).parent


@dataclass
class Band:
    name: str
    steps: list[int]
    low: list[float]
    high: list[float]
    median: list[float]
    runs: int  # how many seeded runs made the band
    what: str = "validation loss"

    def at(self, steps) -> tuple[np.ndarray, np.ndarray]:
        """The band's low and high edges at the given steps (linear interpolation)."""
        s = np.asarray(steps, dtype=float)
        return np.interp(s, self.steps, self.low), np.interp(s, self.steps, self.high)


def make_band(name: str, curves: list[tuple[list[int], list[float]]], margin: float = 0.02,
              what: str = "validation loss") -> Band:
    """Build a band from several runs' curves (each a list of steps and a list of losses, same steps).

    The band at each step is [min - margin * |min|, max + margin * |max|] across runs.
    """
    if len(curves) < 2:
        raise ValueError(f"a band needs at least 2 runs, got {len(curves)}")
    steps = list(curves[0][0])
    for s, _ in curves:
        if list(s) != steps:
            raise ValueError("all runs must be evaluated at the same steps to make a band")
    losses = np.array([c[1] for c in curves], dtype=float)  # (runs, steps)
    lo, hi, med = losses.min(0), losses.max(0), np.median(losses, 0)
    lo, hi = lo - margin * np.abs(lo), hi + margin * np.abs(hi)
    return Band(name, steps, [round(float(x), 5) for x in lo], [round(float(x), 5) for x in hi],
                [round(float(x), 5) for x in med], runs=len(curves), what=what)


def save_band(band: Band, folder: Path | None = None) -> Path:
    path = Path(folder or BAND_DIR) / f"band_{band.name}.json"
    path.write_text(json.dumps(asdict(band), indent=1) + "\n")
    return path


def load_band(name: str, folder: Path | None = None) -> Band:
    folder = Path(folder or BAND_DIR)
    path = folder / f"band_{name}.json"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("band_") for p in folder.glob("band_*.json"))
        raise ValueError(f"no reference band named {name!r}; known bands: {', '.join(known) or 'none'}")
    return Band(**json.loads(path.read_text()))


def _curve(history_or_curve) -> tuple[list[int], list[float]]:
    """Accept a lmlab History (its validation curve) or a (steps, losses) pair."""
    if hasattr(history_or_curve, "val_steps"):
        return list(history_or_curve.val_steps), list(history_or_curve.val_losses)
    steps, losses = history_or_curve
    return list(steps), list(losses)


@dataclass
class Verdict:
    inside: int
    total: int
    above: int
    below: int
    message: str

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.inside >= 0.8 * self.total

    def __str__(self) -> str:
        return self.message


def compare_to_reference(history_or_curve, name: str) -> Verdict:
    """Say in words whether a run's curve stays inside the reference band `name`.

    Only steps inside the band's range are compared.
    """
    band = load_band(name)
    steps, losses = _curve(history_or_curve)
    pts = [(s, l) for s, l in zip(steps, losses) if band.steps[0] <= s <= band.steps[-1]]
    if not pts:
        return Verdict(0, 0, 0, 0, f"no evaluated step of your run falls inside the reference range "
                                   f"(steps {band.steps[0]}..{band.steps[-1]}): evaluate more often or train longer")
    s, l = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    lo, hi = band.at(s)
    inside = int(((l >= lo) & (l <= hi)).sum())
    above, below = int((l > hi).sum()), int((l < lo).sum())
    n = len(pts)
    if not np.all(np.isfinite(l)):
        msg = "your run's loss became NaN or infinite: lower the learning rate or check the data"
    elif inside >= 0.8 * n:
        msg = f"inside the reference band at {inside} of {n} evaluations: your run looks right"
    elif above > below:
        msg = (f"above the reference band at {above} of {n} evaluations: your model learns more slowly than the "
               "course's runs (check the learning rate, the model size and that you train on the right data)")
    else:
        msg = (f"below the reference band at {below} of {n} evaluations: better than the course's runs; "
               "if you did not change the setup, check that validation data does not overlap training data")
    return Verdict(inside, n, above, below, msg)


def plot_against_reference(history_or_curve, name: str, ax=None, label: str = "your run"):
    """Draw the run's validation curve over the reference band; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    band = load_band(name)
    steps, losses = _curve(history_or_curve)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3), dpi=80)
    ax.fill_between(band.steps, band.low, band.high, color="tab:gray", alpha=0.3,
                    label=f"reference ({band.runs} seeds)")
    ax.plot(band.steps, band.median, color="tab:gray", lw=1, ls="--")
    ax.plot(steps, losses, color="tab:blue", marker=".", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{band.what} (nats/token)")
    ax.set_title(f"{name}: your run vs the reference")
    ax.legend(fontsize=8)
    return ax
