"""What the notebooks' widgets share: a picture redrawn by a ``Blitter``, controls set from code without
triggering themselves, and a display that works with and without a running kernel.

A widget subclasses ``LiveWidget`` and sets ``self.fig``, ``self._blit`` (a ``lmlab.viz.live.Blitter``),
``self.dpi``, ``self.image`` (an ``ipywidgets.Image``) and ``self.widget`` (the box it shows), and defines
``render() -> PNG bytes`` and ``_on_control(change)``.
"""

from __future__ import annotations

import base64
from typing import Any, Iterable

from lmlab.viz.plots import figure_bytes

__all__ = ["LiveWidget"]


class LiveWidget:
    """Shared behaviour of the widgets in ``lmlab.widgets`` (see the module docstring)."""

    def static_figure(self) -> Any:
        """The current picture as a plain matplotlib Figure (shows as an image in any notebook viewer)."""
        self.render()
        for artist in self._blit.dynamic:
            artist.set_animated(False)
        fig = self.fig
        fig._repr_png_ = lambda: figure_bytes(fig, "png", self.dpi)
        return fig

    def _set_controls(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Move each control to its value without calling ``_on_control`` (the values came from code)."""
        for control, value in pairs:
            if control.value != value:
                control.unobserve(self._on_control, names="value")
                control.value = value
                control.observe(self._on_control, names="value")

    def _picture(self) -> bytes:
        """The PNG stored beside the live widget for places without one."""
        return self.image.value or self.render()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        """The live widget; a PNG of the picture for places without live widgets; a stable text/plain."""
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        bundle["image/png"] = base64.b64encode(self._picture()).decode("ascii")
        bundle["text/plain"] = repr(self)
        return bundle
