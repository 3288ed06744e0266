"""Comparing a learner's result with a reference: normalise first, then compare, then explain.

`plain(value)` turns whatever the learner's function returned into plain values the checks can trust:
exact built-in types (an ``int`` subclass becomes an ``int``, a ``Counter`` a ``dict``, a list subclass a
``list``), numpy scalars into Python numbers, tensors into detached CPU tensors of type ``torch.Tensor``
(so an answer computed on a GPU is compared on the CPU), and anything else into an `Opaque` stand-in.
The checks never call a method of the learner's object after that: an object whose ``__eq__`` says
True to everything, or raises, is just an Opaque value that equals nothing.

Then: `as_number` and `as_index` for single numbers, `compare_numbers` and `compare_tensors` for the
generic comparison with a kind explanation, `number_near` and `tensors_close` for recognising typical
mistakes, and `diagnosing()` around those diagnoses so that one that itself fails (an unexpected shape,
say) falls back to the plain comparison instead of stopping the check.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from lmlab.exercises.describe import Opaque, describe, fmt_float, type_name
from lmlab.exercises.failures import CheckFailed

__all__ = ["plain", "as_number", "as_index", "compare_numbers", "compare_tensors", "number_near",
           "tensors_close", "diagnosing"]

MAX_DEPTH = 20  # nested containers deeper than this are not looked into


def plain(value: Any) -> Any:
    """`value` as plain data: exact built-in types, CPU tensors, `Opaque` for everything else. Never raises.

    Example: ``plain((np.int64(3), torch.ones(2, requires_grad=True)))`` -> ``(3, tensor([1., 1.]))``
    """
    try:
        return _plain(value, 0)
    except Exception:  # noqa: BLE001 - a learner's object may fail in any way: then it is opaque
        return _opaque(value)


def _plain(value: Any, depth: int) -> Any:
    if value is None or value is Ellipsis or type(value) in (bool, int, float, complex, str):
        return value
    if depth > MAX_DEPTH:
        return _opaque(value)
    if isinstance(value, torch.Tensor):
        return _plain_tensor(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__int__(value)  # the C method: an int subclass cannot change what it holds
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(memoryview(value))
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in list.__iter__(value)]
    if isinstance(value, tuple):  # namedtuples and torch.Size too
        return tuple(_plain(v, depth + 1) for v in tuple.__iter__(value))
    if isinstance(value, dict):  # Counter, OrderedDict, defaultdict...
        return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in dict.items(value)}
    if isinstance(value, frozenset):
        return frozenset(_plain(v, depth + 1) for v in frozenset.__iter__(value))
    if isinstance(value, set):
        return {_plain(v, depth + 1) for v in set.__iter__(value)}
    if type(value).__module__ == "numpy":
        return _plain_numpy(value)
    return _opaque(value)


def _plain_tensor(t: torch.Tensor) -> Any:
    with torch._C.DisableTorchFunctionSubclass():  # noqa: SLF001 - a subclass must not intercept the copy
        if t.is_meta:
            return Opaque("torch.Tensor", f"a tensor of shape {tuple(t.shape)}, {t.dtype} on the meta device "
                                          "(it has a shape but no values)")
        if t.layout != torch.strided:
            t = t.to_dense()
        if t.is_quantized:
            t = t.dequantize()
        out = t.detach().to("cpu").resolve_conj().resolve_neg().clone()  # a copy the check owns
        return out if type(out) is torch.Tensor else out.as_subclass(torch.Tensor)


def _plain_numpy(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return Opaque("numpy.ndarray", f"a numpy.ndarray of shape {tuple(value.shape)}, {value.dtype}")
    return _opaque(value)


def _opaque(value: Any) -> Opaque:
    kind = type(value)
    return Opaque(f"{kind.__module__}.{kind.__qualname__}", describe(value))


# ----------------------------------------------------------------------------------------------------
# Single numbers


def as_number(got: Any, name: str, *, show_input: str = "") -> float:
    """A learner's single number (int, float, one-element tensor) as a float, or a kind `CheckFailed`."""
    got = plain(got)
    if isinstance(got, bool):
        raise CheckFailed(f"`{name}` returned a bool; it should return a number.", input=show_input, got=got)
    if isinstance(got, torch.Tensor):
        if got.numel() != 1 or got.is_complex():
            raise CheckFailed(
                f"`{name}` returned a tensor of shape {tuple(got.shape)}; it should return a single number "
                f"(a float, or a tensor with one element: use .mean() or .item()).",
                input=show_input, got=got)
        return float(got.reshape(()).item())
    if isinstance(got, (int, float)):
        return float(got)
    if got is None:
        raise CheckFailed(f"`{name}` returned None. If it is still a stub, write its body; otherwise it probably "
                          f"lacks a `return` statement.", input=show_input, got=None)
    raise CheckFailed(f"`{name}` returned {type_name(got)}; it should return a single number (a float).",
                      input=show_input, got=got)


def as_index(got: Any) -> Any:
    """A returned index as a plain int when it is one (an int, a numpy integer, a 0-d integer tensor).

    Anything else comes back as `plain` made it (a bool stays a bool: False is not index 0).
    """
    got = plain(got)
    if isinstance(got, torch.Tensor) and got.dim() == 0 and not got.is_floating_point() and not got.is_complex() \
            and got.dtype != torch.bool:
        return int(got.item())
    return got


def compare_numbers(expected: float, got: float, *, rtol: float = 1e-4, atol: float = 1e-6,
                    name: str = "your result", show_input: str = "") -> None:
    """Raise `CheckFailed` unless ``|got - expected| <= atol + rtol * |expected|`` (NaN never matches)."""
    if math.isnan(got):
        raise CheckFailed(f"{name} is NaN (not a number). A 0/0 or a log of a negative number?",
                          input=show_input, expected=expected, got=got)
    if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        raise CheckFailed(f"{name} is {fmt_float(got)}, but it should be {fmt_float(expected)} "
                          f"(difference {fmt_float(got - expected)}).", input=show_input, expected=expected, got=got)


def number_near(got: float, *, rtol: float, atol: float) -> Callable[[Any], bool]:
    """A predicate ``near(value)``: is `got` within the tolerances of `value`? (For recognising mistakes.)"""

    def near(value: Any) -> bool:
        try:
            return math.isclose(got, float(value), rel_tol=rtol, abs_tol=atol)
        except (TypeError, ValueError, OverflowError, RuntimeError):
            return False

    return near


def tensors_close(a: Any, b: Any, *, rtol: float, atol: float) -> bool:
    """True when `a` and `b` are tensors of the same shape whose values agree (as float64). Never raises."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    try:
        return bool(torch.allclose(a.detach().cpu().double(), b.detach().cpu().double(), rtol=rtol, atol=atol))
    except (RuntimeError, TypeError):
        return False


@contextlib.contextmanager
def diagnosing() -> Iterator[None]:
    """Around the diagnoses of typical mistakes: a `CheckFailed` goes through; any other error ends them quietly.

    The code after the block (the plain comparison) then decides, so a diagnosis that does not fit an
    unusual answer never turns into "the checker failed".
    """
    try:
        yield
    except CheckFailed:
        raise
    except Exception:  # noqa: BLE001 - a diagnosis that does not apply: fall back to the plain comparison
        pass


# ----------------------------------------------------------------------------------------------------
# Tensors


def compare_tensors(expected: torch.Tensor, got: Any, *, rtol: float = 1e-4, atol: float = 1e-6,
                    name: str = "your result", show_input: str = "", exact_dtype: bool = False) -> None:
    """Raise a `CheckFailed` that explains how `got` differs from `expected`; return None when they match.

    It checks, in this order: that `got` is a tensor, its shape, its kind of dtype (floating vs integer;
    the exact dtype too with ``exact_dtype=True``), NaN where the reference has none, then the values
    with ``torch.isclose(got, expected, rtol, atol)``, reporting the largest difference and where it is.
    """
    inp = show_input
    got = plain(got)
    if isinstance(got, Opaque) and got.type_name == "torch.Tensor":
        raise CheckFailed(f"{name} is {got.text}: compute it on the CPU (or a GPU) so that it has values.",
                          input=inp, got=got)
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{name} should be a torch.Tensor of shape {tuple(expected.shape)}, but it is "
                          f"{type_name(got)}.{_not_a_tensor_hint(got)}", input=inp, got=got)
    if got.shape != expected.shape:
        raise CheckFailed(f"{name} has shape {tuple(got.shape)}, but it should have shape {tuple(expected.shape)}.",
                          input=inp, expected=f"shape {tuple(expected.shape)}", got=got)
    if expected.is_floating_point() and not got.is_floating_point():
        raise CheckFailed(f"{name} has dtype {got.dtype}, but a floating-point tensor is expected "
                          f"(integer division or integer tensors lose the fractions). Convert with .float().",
                          input=inp, expected=expected, got=got)
    if exact_dtype and got.dtype != expected.dtype:
        raise CheckFailed(f"{name} has dtype {got.dtype}, but it should be {expected.dtype}.", input=inp, got=got)
    g = got.to(torch.float64)
    e = expected.detach().cpu().to(torch.float64)
    bad_nan = torch.isnan(g) & ~torch.isnan(e)
    if bad_nan.any():
        first = bad_nan.nonzero()[0]
        raise CheckFailed(
            f"{name} contains {int(bad_nan.sum())} NaN value(s) (not a number), the first at {_index(first)}, "
            f"where the answer is {fmt_float(float(e[tuple(first)]))}. NaN usually comes from 0/0 or log of a "
            f"negative number.", input=inp, expected=expected, got=got)
    close = torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        diff = (g - e).abs().nan_to_num(nan=0.0, posinf=math.inf)
        diff[close] = 0.0
        first = (diff == diff.max()).nonzero()[0]
        raise CheckFailed(
            f"{name} has {int((~close).sum())} of {close.numel()} values off; the largest difference is "
            f"{fmt_float(float(diff.max()))} at {_index(first)}: expected {fmt_float(float(e[tuple(first)]))}, "
            f"got {fmt_float(float(g[tuple(first)]))}.", input=inp, expected=expected, got=got)


def _not_a_tensor_hint(got: Any) -> str:
    if isinstance(got, (list, tuple)):
        return " Build the result with torch operations, or convert it with torch.tensor(...)."
    if got is None:
        return " Did you forget a `return` statement?"
    if isinstance(got, Opaque) and got.type_name == "numpy.ndarray":
        return " Convert it with torch.from_numpy(...)."
    return ""


def _index(idx: torch.Tensor) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"
