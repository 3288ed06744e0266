"""Describing values briefly and deterministically, for the feedback a learner reads.

Everything here returns plain text that reads the same in Jupyter, in a terminal and in the stored
outputs nbval compares: no memory addresses, no timings. Nothing here raises on a learner's object: an
object whose ``repr`` fails is described by its type.

`Opaque` stands for a value of a kind the checks never look inside (an object of the learner's own
class, a numpy array, a hash object...): it keeps only the type's name and a short description, so a
check can say what it got without calling any of the object's methods again.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Opaque", "describe", "type_name", "brief", "name_of", "fmt_float", "truncate", "labelled"]


@dataclass(frozen=True, eq=False)
class Opaque:
    """A value the checks do not compare: its type's name (``"numpy.ndarray"``) and a short description.

    Two Opaque values are never equal (``eq=False`` keeps identity comparison), so a check never passes
    because of one.
    """

    type_name: str  # module-qualified: "numpy.ndarray", "_hashlib.HASH", "__main__.Answer"
    text: str  # what describe() showed for the original object

    @property
    def short_name(self) -> str:
        """The type's name without its module: ``"ndarray"``."""
        return self.type_name.rsplit(".", 1)[-1]


def describe(value: Any, *, max_chars: int = 400) -> str:
    """A short, stable text for a value: tensors show shape, dtype and (small ones) their values.

    Example: ``describe(torch.tensor([1.0, 2.0]))`` -> ``'tensor([1.0000, 2.0000]) (shape (2,), torch.float32)'``
    """
    try:
        return _describe(value, max_chars)
    except Exception as exc:  # noqa: BLE001 - a learner's object may fail to print itself
        return f"a {type(value).__name__} (it cannot be shown: {type(exc).__name__})"


def _describe(value: Any, max_chars: int) -> str:
    if isinstance(value, Opaque):
        return value.text
    if isinstance(value, torch.Tensor):
        meta = f"shape {tuple(value.shape)}, {value.dtype}"
        if value.is_meta:
            return f"a tensor of {meta} on the meta device (no values)"
        if value.numel() <= 36:
            with _print_options():
                body = repr(value.detach().cpu())
            body = re.sub(r",\s*(requires_grad|grad_fn)=.*\)$", ")", body)
            return truncate(f"{body} ({meta})", max_chars)
        return f"a tensor of {meta}"
    if value is None:
        return "None"
    if value is Ellipsis:
        return "... (Ellipsis)"
    if isinstance(value, float):
        return fmt_float(value)
    if isinstance(value, (str, int, bool, list, tuple, dict)):
        return truncate(repr(value), max_chars)
    if callable(value):
        return f"the function {name_of(value, type(value).__name__)}"
    return truncate(f"a {type(value).__name__}: {value!r}", max_chars)


@contextlib.contextmanager
def _print_options() -> Iterator[None]:
    old = torch._tensor_str.PRINT_OPTS  # noqa: SLF001 - restore exactly what was there
    saved = dict(precision=old.precision, sci_mode=old.sci_mode, linewidth=old.linewidth, threshold=old.threshold)
    torch.set_printoptions(precision=4, sci_mode=False, linewidth=90, threshold=1000)
    try:
        yield
    finally:
        torch.set_printoptions(**saved)


def type_name(value: Any) -> str:
    """The kind of a value with its article: "a torch.Tensor", "an int", "a ndarray" (Opaque: its type)."""
    if isinstance(value, torch.Tensor):
        return "a torch.Tensor"
    name = value.short_name if isinstance(value, Opaque) else type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def brief(value: Any) -> str:
    """A one-line hint of what a value is: its shape and dtype for a tensor, else a short repr."""
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}, {value.dtype}"
    if isinstance(value, Opaque):
        return truncate(value.text, 60)
    try:
        return truncate(repr(value), 60)
    except Exception as exc:  # noqa: BLE001 - a learner's object may fail to print itself
        return f"it cannot be shown: {type(exc).__name__}"


def name_of(fn: Any, default: str = "your function") -> str:
    """``fn.__name__``, or `default` for objects without one (or whose attribute lookup fails)."""
    try:
        name = getattr(fn, "__name__", default)
    except Exception:  # noqa: BLE001 - a learner's __getattr__ may raise anything
        return default
    return name if isinstance(name, str) else default


def fmt_float(x: float) -> str:
    """Six significant digits; nan and inf as Python writes them."""
    if math.isnan(x) or math.isinf(x):
        return repr(x)
    return f"{x:.6g}"


def truncate(text: str, max_chars: int) -> str:
    """`text`, cut after `max_chars` characters with a note of how many more there were."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"... ({len(text) - max_chars:,} more characters)"


def labelled(label: str, text: str) -> str:
    """``"  input:    first line"`` with the following lines indented under it."""
    pad = " " * 12
    body = text.splitlines() or [""]
    first = f"  {label:<10}{body[0]}"
    return "\n".join([first] + [pad + line for line in body[1:]])
