"""The rules a call of the learner's function must keep while an exercise is checked.

- **No implementation of the exercise itself.** While the function runs, a profiler (``sys.setprofile``)
  watches which Python functions it calls. Calling one that already implements the exercise (lmlab's
  own, listed in the exercise's ``forbidden``, or any function of the exercise module, whose references
  the check compares with) is found by its code object, whatever name the learner reached it under.
- **Inputs unchanged.** The arguments are copied before the call and compared afterwards: tensors,
  modules (weights and gradients), lists, dicts and dataclasses.

The rules come from the exercise being checked (`rules_for`, set by `Exercise.evaluate`); tests that pass
a reference itself as the answer turn the watch off with `unwatched()`. `lmlab.exercises.safety` applies
them in `call_safely`.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, is_dataclass
from types import CodeType
from typing import Any

import torch

__all__ = ["Rules", "rules_for", "unwatched", "current_rules", "resolve", "CallWatch", "snapshot",
           "changed_argument", "UNCOMPARED"]


# ----------------------------------------------------------------------------------------------------
# The rules of the exercise being checked


@dataclass(frozen=True)
class Rules:
    """What a call of the learner's function must not do while one exercise is checked."""

    forbidden: tuple[str, ...] = ()  # dotted names of functions that implement the exercise
    reference_files: tuple[str, ...] = ()  # files of the exercise modules: every function in them is a reference


_RULES: contextvars.ContextVar[Rules] = contextvars.ContextVar("lmlab_exercise_rules", default=Rules())
_WATCHING: contextvars.ContextVar[bool] = contextvars.ContextVar("lmlab_exercise_watching", default=True)


@contextlib.contextmanager
def rules_for(rules: Rules) -> Iterator[None]:
    """Check calls made inside the block against `rules`."""
    token = _RULES.set(rules)
    try:
        yield
    finally:
        _RULES.reset(token)


def current_rules() -> Rules:
    """The rules of the exercise being checked (none outside a check, or inside `unwatched()`)."""
    return _RULES.get() if _WATCHING.get() else Rules()


@contextlib.contextmanager
def unwatched() -> Iterator[None]:
    """Calls inside the block are not watched: for tests that pass a reference itself as the answer."""
    token = _WATCHING.set(False)
    try:
        yield
    finally:
        _WATCHING.reset(token)


def resolve(dotted: str) -> Any:
    """The object a dotted name names: ``"lmlab.attention.causal_mask"``, ``"torch.autograd.grad"``."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot import {dotted}")


@functools.lru_cache(maxsize=64)
def _forbidden_codes(names: tuple[str, ...]) -> dict[CodeType, str]:
    codes: dict[CodeType, str] = {}
    for dotted in names:
        try:
            code = getattr(inspect.unwrap(resolve(dotted)), "__code__", None)
        except (ImportError, AttributeError):
            continue  # not part of this version of lmlab: nothing to watch for
        if code is not None:
            codes[code] = dotted
    return codes


class CallWatch:
    """A profiler for the current thread that notes calls of forbidden functions: ``watch.run(fn, args, kwargs)``."""

    def __init__(self, rules: Rules) -> None:
        self.codes = _forbidden_codes(tuple(rules.forbidden))
        self.reference_files = frozenset(rules.reference_files)
        self.hits: list[str] = []

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call" or self.hits:
            return
        code = frame.f_code
        if code in self.codes:
            self.hits.append(self.codes[code])
        elif code.co_filename in self.reference_files:
            module = frame.f_globals.get("__name__", "the exercise module")
            self.hits.append(f"{module}.{code.co_name}")

    def run(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if not (self.codes or self.reference_files):
            return fn(*args, **kwargs)
        previous = sys.getprofile()
        sys.setprofile(self._profile)
        try:
            return fn(*args, **kwargs)
        finally:
            sys.setprofile(previous)


# ----------------------------------------------------------------------------------------------------
# Inputs must come back unchanged


def snapshot(value: Any) -> Any:
    """A private deep copy of the arguments, gradients of modules included, to compare after the call."""
    try:
        copied = copy.deepcopy(value)
        _copy_grads(value, copied)
        return copied
    except Exception:  # noqa: BLE001 - what cannot be copied is not compared
        return UNCOMPARED


def _copy_grads(original: Any, copied: Any) -> None:
    """deepcopy leaves out the parameters' ``.grad``: copy them too."""
    if isinstance(original, torch.nn.Module):
        for p, q in zip(original.parameters(), copied.parameters()):
            q.grad = None if p.grad is None else p.grad.detach().clone()
    elif isinstance(original, (list, tuple)):
        for a, b in zip(original, copied):
            _copy_grads(a, b)
    elif isinstance(original, dict):
        for key in original:
            _copy_grads(original[key], copied[key])


UNCOMPARED: Any = object()


def _differs(before: Any, after: Any) -> bool:
    """Did the learner's call change this argument? Functions and random generators are not compared."""
    if before is UNCOMPARED or isinstance(after, torch.Generator):
        return False
    if isinstance(after, torch.Tensor):
        return not _same_tensor(before, after)
    if isinstance(after, torch.nn.Module):
        return _differs(before.state_dict(), after.state_dict()) or _differs(_grads(before), _grads(after))
    if callable(after):
        return False
    if isinstance(after, (list, tuple)):
        return len(before) != len(after) or any(_differs(b, a) for b, a in zip(before, after))
    if isinstance(after, dict):
        return before.keys() != after.keys() or any(_differs(before[k], after[k]) for k in after)
    if is_dataclass(after) and not isinstance(after, type):
        return _differs(vars(before), vars(after))
    if after is None or type(after) in (bool, int, str):
        return before is not after and before != after
    if type(after) is float:
        return not (before == after or before != before and after != after)  # NaN stays NaN
    return False


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: p.grad for name, p in module.named_parameters()}


def _same_tensor(before: Any, after: torch.Tensor) -> bool:
    if not isinstance(before, torch.Tensor) or before.shape != after.shape or before.dtype != after.dtype:
        return False
    if before.is_floating_point() or before.is_complex():
        return bool(((before == after) | (torch.isnan(before) & torch.isnan(after))).all())
    return bool(torch.equal(before, after))


def changed_argument(fn: Any, before: tuple, args: tuple, kwargs: dict) -> str | None:
    """The name of the first argument the call changed in place, or None."""
    for i, (b, a) in enumerate(zip(before[0], args)):
        if _differs(b, a):
            return _parameter_name(fn, i)
    for key, a in kwargs.items():
        if _differs(before[1][key], a):
            return key
    return None


def _parameter_name(fn: Any, index: int) -> str:
    try:
        params = list(inspect.signature(fn).parameters)
        return params[index]
    except (TypeError, ValueError, IndexError):
        return f"argument {index + 1}"
