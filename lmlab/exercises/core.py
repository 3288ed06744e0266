"""The machinery behind self-checking exercises: `Exercise`, `ExerciseSet`, and helpers for checkers.

A learner meets it as ``ex.q1.check(my_function)``, ``ex.q1.hint()``, ``ex.q1.solution()`` and
``ex.progress()``. Everything the learner sees is printed as plain text, so it reads the same in Jupyter,
in a terminal, and in the stored outputs that nbval compares (no timings, no memory addresses, no
random temporary file names).

Writing an exercise (see `lmlab/exercises/nb01.py` for the real ones)::

    def _check_double(fn, timeout):
        require_callable(fn, "double")
        for x in [0, 1, -3]:
            got = call_safely(fn, x, timeout=timeout, show_input=f"x={x}")
            if got != 2 * x:
                raise CheckFailed("double(x) should return 2 * x.", input=f"x={x}", expected=2 * x, got=got)

    q1 = Exercise("q1", "double", prompt="Write double(x) -> 2x.", checker=_check_double,
                  hints=["Multiply.", "Use *.", "return 2 * x"], solution_code="def double(x):\n    return 2 * x",
                  explanation="Doubling is multiplying by two.")
    EXERCISES = ExerciseSet("nb00", "00 · demo", [q1])

A checker receives the learner's object and the per-call time limit in seconds; it returns normally when
everything is right and raises `CheckFailed` (or one of its subclasses, usually via `call_safely`,
`require_callable`, `compare_tensors` or `compare_numbers`) with a specific explanation otherwise.

Time limits: on Unix, when the check runs on the main thread (the normal case in a notebook and in a
script), the learner's function is interrupted with ``signal.setitimer`` after ``timeout`` seconds, so an
endless loop really stops. A long single C call (one huge torch op) is interrupted only when it returns.
Elsewhere (Windows, or a check started from another thread) the function runs in a daemon thread that
is abandoned after ``timeout`` seconds: Python cannot kill a thread, so it keeps running in the
background until it finishes or the kernel restarts; the feedback says so.

Grading: when the environment variable ``LMLAB_GRADE_FILE`` names a file, every ``check`` appends one
JSON line ``{"notebook", "exercise", "passed", "points", "max_points", "message", "summary"}`` to it;
`lmlab.course.grade` reads these lines. Checks run in the learner's own process, so they are feedback
and grading aids, not a sandbox: a determined learner can forge results.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
import sysconfig
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckFailed",
    "NotSolved",
    "LearnerError",
    "TimeLimitExceeded",
    "CheckResult",
    "Exercise",
    "ExerciseSet",
    "call_safely",
    "require_callable",
    "compare_tensors",
    "compare_numbers",
    "as_number",
    "describe",
    "GRADE_FILE_ENV",
]

GRADE_FILE_ENV = "LMLAB_GRADE_FILE"
DEFAULT_TIMEOUT = 5.0  # seconds per call of the learner's function
MAX_CAPTURED_CHARS = 500  # printed output of the learner's code shown in the feedback
_KEEP_CAPTURED_CHARS = 20_000  # what the capture buffer keeps before counting only

_PASS = "✓"
_FAIL = "✗"
_TODO = "·"


# ----------------------------------------------------------------------------------------------------
# Structured failures raised by checkers


_UNSET: Any = object()


class CheckFailed(Exception):
    """A check found something wrong. `message` explains it; the other fields say where.

    `input`, `expected` and `got` are shown as ``describe(value)`` unless they are already strings;
    a field left out is not shown (``got=None`` is shown, as "None").
    """

    def __init__(
        self,
        message: str,
        *,
        input: Any = _UNSET,
        expected: Any = _UNSET,
        got: Any = _UNSET,
        details: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.input = input
        self.expected = expected
        self.got = got
        self.details = details

    def explain(self) -> str:
        """The full, multi-line explanation shown to the learner."""
        lines = [self.message]
        for label, value in (("input", self.input), ("expected", self.expected), ("got", self.got)):
            if value is _UNSET or (label == "input" and not value):
                continue
            text = value if isinstance(value, str) else describe(value)
            lines.append(_labelled(f"{label}:", text))
        if self.details:
            lines.append(self.details)
        return "\n".join(lines)


class NotSolved(CheckFailed):
    """The learner's answer is still the stub (`raise NotImplementedError`, `...`)."""


class LearnerError(CheckFailed):
    """The learner's code raised an exception."""


class TimeLimitExceeded(CheckFailed):
    """The learner's code ran longer than the time limit."""


class _Interrupt(BaseException):
    """Raised inside the learner's code by the alarm; a BaseException so `except Exception` can't eat it."""


def _labelled(label: str, text: str) -> str:
    pad = " " * 12
    body = text.splitlines() or [""]
    first = f"  {label:<10}{body[0]}"
    return "\n".join([first] + [pad + line for line in body[1:]])


# ----------------------------------------------------------------------------------------------------
# Describing values briefly and deterministically


def describe(value: Any, *, max_chars: int = 400) -> str:
    """A short, stable text for a value: tensors show shape, dtype and (small ones) their values.

    Never raises: a learner's object whose ``repr`` fails is described by its type.

    Example: ``describe(torch.tensor([1.0, 2.0]))`` -> ``'tensor([1.0000, 2.0000]) (shape (2,), torch.float32)'``
    """
    try:
        return _describe(value, max_chars)
    except Exception as exc:  # noqa: BLE001 - a learner's object may fail to print itself
        return f"a {type(value).__name__} (it cannot be shown: {type(exc).__name__})"


def _describe(value: Any, max_chars: int) -> str:
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        meta = f"shape {shape}, {value.dtype}"
        if value.is_meta:
            return f"a tensor of {meta} on the meta device (no values)"
        if value.numel() <= 36:
            with _print_options():
                body = repr(value.detach().cpu())
            body = re.sub(r",\s*(requires_grad|grad_fn)=.*\)$", ")", body)
            return _truncate(f"{body} ({meta})", max_chars)
        return f"a tensor of {meta}"
    if value is None:
        return "None"
    if value is Ellipsis:
        return "... (Ellipsis)"
    if isinstance(value, float):
        return _fmt_float(value)
    if isinstance(value, (str, int, bool, list, tuple, dict)):
        return _truncate(repr(value), max_chars)
    if callable(value):
        return f"the function {_name_of(value, type(value).__name__)}"
    return _truncate(f"a {type(value).__name__}: {value!r}", max_chars)


@contextlib.contextmanager
def _print_options() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        old = torch._tensor_str.PRINT_OPTS  # noqa: SLF001 - restore exactly what was there
        saved = (old.precision, old.sci_mode, old.linewidth, old.threshold)
        torch.set_printoptions(precision=4, sci_mode=False, linewidth=90, threshold=1000)
        stack.callback(
            lambda: torch.set_printoptions(
                precision=saved[0], sci_mode=saved[1], linewidth=saved[2], threshold=saved[3]
            )
        )
        yield


def _fmt_float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return repr(x)
    return f"{x:.6g}"


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"... ({len(text) - max_chars:,} more characters)"


# ----------------------------------------------------------------------------------------------------
# Calling the learner's code safely


def _type_name(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        return "a torch.Tensor"
    name = type(obj).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _brief(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        return f"shape {tuple(obj.shape)}, {obj.dtype}"
    try:
        return _truncate(repr(obj), 60)
    except Exception as exc:  # noqa: BLE001 - a learner's object may fail to print itself
        return f"it cannot be shown: {type(exc).__name__}"


def _name_of(fn: Any, default: str = "your function") -> str:
    """``fn.__name__``, or ``default`` for objects without one (or whose attribute lookup fails)."""
    try:
        name = getattr(fn, "__name__", default)
    except Exception:  # noqa: BLE001 - a learner's __getattr__ may raise anything
        return default
    return name if isinstance(name, str) else default


def require_callable(obj: Any, name: str) -> None:
    """Raise a kind `CheckFailed` unless `obj` is a function (the learner may pass its result instead)."""
    if callable(obj) and not isinstance(obj, type):
        return
    if obj is Ellipsis:
        raise NotSolved(f"Not yet solved: define the function `{name}` and pass it to the check.")
    if obj is None:
        raise CheckFailed(
            f"The check received None instead of your function `{name}`. "
            f"Pass the function itself, without calling it: check({name})."
        )
    if isinstance(obj, type):
        raise CheckFailed(f"The check received the class {obj.__name__}; it expects your function `{name}`.")
    raise CheckFailed(
        f"The check expects your function `{name}` itself, but received {_type_name(obj)} "
        f"({_brief(obj)}). Did you pass the result of calling it? "
        f"Write check({name}), without parentheses after {name}."
    )


def call_safely(
    fn: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT, show_input: str = "", **kwargs: Any
) -> Any:
    """Call the learner's `fn(*args, **kwargs)` under a time limit and turn every problem into a `CheckFailed`.

    Returns what `fn` returned. Raises `NotSolved` for a `raise NotImplementedError` stub, `LearnerError`
    (with the exception type, message, and a short traceback of the learner's own frames) for any other
    exception, and `TimeLimitExceeded` after `timeout` seconds. `show_input` describes the call for the
    feedback (``"ids=[0, 1], vocab_size=2"``). See the module docstring for how the time limit works.
    Printed output is not captured here; `Exercise.evaluate` captures it for the whole check.
    """
    name = _name_of(fn)
    try:
        return _run_with_time_limit(fn, args, kwargs, timeout)
    except _TimedOut as exc:
        note = (
            ""
            if exc.interrupted
            else " It could not be stopped, so it keeps running in the background until it finishes "
            "(restart the kernel to stop it)."
        )
        raise TimeLimitExceeded(
            f"`{name}` did not finish within {timeout:g} s.{note} Look for a loop that never ends "
            f"(a `while` whose condition never becomes false) or work that grows too fast.",
            input=show_input,
        ) from None
    except NotImplementedError:
        raise NotSolved(
            f"Not yet solved: replace the `raise NotImplementedError(...)` in `{name}` with your code, "
            f"run that cell, then run this check again."
        ) from None
    except SystemExit as exc:
        raise LearnerError(
            f"`{name}` called exit() (SystemExit: {_safe_str(exc.code)}), which would stop the whole program; "
            f"a function should `return` its result instead.",
            input=show_input,
            details=_learner_traceback(exc),
        ) from None
    except KeyboardInterrupt:
        raise  # the learner pressed stop: stop the check too
    except BaseException as exc:  # noqa: BLE001 - whatever the learner's code raises is feedback
        raise LearnerError(
            f"`{name}` raised {type(exc).__name__}: {_truncate(_safe_str(exc), 400)}",
            input=show_input,
            details=_learner_traceback(exc),
        ) from None


def _safe_str(obj: Any) -> str:
    try:
        return str(obj)
    except Exception as exc:  # noqa: BLE001 - a learner's exception may fail to print itself
        return f"(its message cannot be shown: {type(exc).__name__})"


class _TimedOut(Exception):
    def __init__(self, interrupted: bool) -> None:
        super().__init__("timed out")
        self.interrupted = interrupted


def _run_with_time_limit(fn: Callable[..., Any], args: tuple, kwargs: dict, timeout: float) -> Any:
    use_alarm = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0.0  # nobody else is using the alarm
    )
    if use_alarm:
        def _on_alarm(signum: int, frame: Any) -> None:
            raise _Interrupt()

        previous = signal.signal(signal.SIGALRM, _on_alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                return fn(*args, **kwargs)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Interrupt:
            raise _TimedOut(interrupted=True) from None
        finally:
            signal.signal(signal.SIGALRM, previous)

    box: dict[str, Any] = {}

    def _target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=_target, name="lmlab-exercise-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _TimedOut(interrupted=False)
    if "error" in box:
        raise box["error"]
    return box.get("value")


_INTERNAL_DIRS = tuple(
    str(Path(p).resolve())
    for p in {
        str(Path(__file__).resolve().parent),
        sysconfig.get_paths().get("stdlib", ""),
        sysconfig.get_paths().get("purelib", ""),
        sysconfig.get_paths().get("platlib", ""),
    }
    if p
)


def _learner_traceback(exc: BaseException, max_frames: int = 3) -> str | None:
    """The last few frames of the traceback that lie in the learner's code, without file paths of cells."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not str(Path(f.filename).resolve()).startswith(_INTERNAL_DIRS)
        and "site-packages" not in f.filename
    ]
    if not frames:
        return None
    lines = ["  where (your code, innermost last):"]
    for f in frames[-max_frames:]:
        where = f"line {f.lineno}, in {f.name}"
        if not re.search(r"ipykernel_\d+|<ipython-input|^<", f.filename):
            where = f"{Path(f.filename).name}, {where}"
        lines.append(f"    {where}")
        if f.line:
            lines.append(f"      {f.line.strip()}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Comparing the learner's results with a reference


def as_number(got: Any, name: str, *, show_input: str = "") -> float:
    """Turn a learner's returned number (float, int, numpy scalar, 1-element tensor) into a float, kindly."""
    if isinstance(got, bool):
        raise CheckFailed(f"`{name}` returned a bool; it should return a number.", input=show_input, got=got)
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise CheckFailed(
                f"`{name}` returned a tensor of shape {tuple(got.shape)}; it should return a single number "
                f"(a float, or a tensor with one element: use .mean() or .item()).",
                input=show_input,
                got=got,
            )
        return float(got.detach().reshape(()).item())
    if isinstance(got, (int, float)) or type(got).__module__ == "numpy":
        try:
            return float(got)
        except (TypeError, ValueError):
            pass
    if got is None:
        raise CheckFailed(
            f"`{name}` returned None. If it is still a stub, write its body; otherwise it probably lacks a "
            f"`return` statement.",
            input=show_input,
            got=None,
        )
    raise CheckFailed(
        f"`{name}` returned {_type_name(got)}; it should return a single number (a float).",
        input=show_input,
        got=got,
    )


def compare_numbers(
    expected: float,
    got: float,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    name: str = "your result",
    show_input: str = "",
) -> None:
    """Raise `CheckFailed` unless ``|got - expected| <= atol + rtol * |expected|`` (NaN never matches)."""
    if math.isnan(got):
        raise CheckFailed(
            f"{name} is NaN (not a number). A 0/0 or a log of a negative number?",
            input=show_input,
            expected=expected,
            got=got,
        )
    if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        raise CheckFailed(
            f"{name} is {_fmt_float(got)}, but it should be {_fmt_float(expected)} "
            f"(difference {_fmt_float(got - expected)}).",
            input=show_input,
            expected=expected,
            got=got,
        )


def compare_tensors(
    expected: torch.Tensor,
    got: Any,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    name: str = "your result",
    show_input: str = "",
    exact_dtype: bool = False,
) -> None:
    """Raise a `CheckFailed` that explains how `got` differs from `expected`; return None when they match.

    It checks, in this order: that `got` is a tensor, its shape, its kind of dtype (floating vs integer;
    the exact dtype too with ``exact_dtype=True``), NaN/inf where the reference has none, then the values
    with ``torch.allclose(got, expected, rtol, atol)``, reporting the largest difference and where it is.
    """
    inp = show_input
    if not isinstance(got, torch.Tensor):
        hint = ""
        if isinstance(got, (list, tuple)):
            hint = " Build the result with torch operations, or convert it with torch.tensor(...)."
        elif got is None:
            hint = " Did you forget a `return` statement?"
        elif type(got).__module__ == "numpy":
            hint = " Convert it with torch.from_numpy(...)."
        raise CheckFailed(
            f"{name} should be a torch.Tensor of shape {tuple(expected.shape)}, but it is {_type_name(got)}.{hint}",
            input=inp,
            got=got,
        )
    if got.shape != expected.shape:
        raise CheckFailed(
            f"{name} has shape {tuple(got.shape)}, but it should have shape {tuple(expected.shape)}.",
            input=inp,
            expected=f"shape {tuple(expected.shape)}",
            got=got,
        )
    if expected.is_floating_point() and not got.is_floating_point():
        raise CheckFailed(
            f"{name} has dtype {got.dtype}, but a floating-point tensor is expected "
            f"(integer division or integer tensors lose the fractions). Convert with .float().",
            input=inp,
            expected=expected,
            got=got,
        )
    if exact_dtype and got.dtype != expected.dtype:
        raise CheckFailed(f"{name} has dtype {got.dtype}, but it should be {expected.dtype}.", input=inp, got=got)
    g = got.detach().cpu().to(torch.float64)
    e = expected.detach().cpu().to(torch.float64)
    bad_nan = torch.isnan(g) & ~torch.isnan(e)
    if bad_nan.any():
        where = _index(bad_nan.nonzero()[0])
        raise CheckFailed(
            f"{name} contains {int(bad_nan.sum())} NaN value(s) (not a number), the first at {where}, "
            f"where the answer is {_fmt_float(float(e[tuple(bad_nan.nonzero()[0])]))}. "
            f"NaN usually comes from 0/0 or log of a negative number.",
            input=inp,
            expected=expected,
            got=got,
        )
    close = torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        diff = (g - e).abs().nan_to_num(nan=0.0, posinf=math.inf)
        diff[close] = 0.0
        first = (diff == diff.max()).nonzero()[0]
        where = _index(first)
        raise CheckFailed(
            f"{name} has {int((~close).sum())} of {close.numel()} values off; the largest difference is "
            f"{_fmt_float(float(diff.max()))} at {where}: expected {_fmt_float(float(e[tuple(first)]))}, "
            f"got {_fmt_float(float(g[tuple(first)]))}.",
            input=inp,
            expected=expected,
            got=got,
        )


def _index(idx: torch.Tensor) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


# ----------------------------------------------------------------------------------------------------
# Capturing what the learner's code prints


class _BoundedBuffer(io.TextIOBase):
    """A text stream that keeps only the first characters written and counts the rest."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:  # type: ignore[override]
        s = str(s)
        self.total += len(s)
        if self.kept < self.keep:
            piece = s[: self.keep - self.kept]
            self.parts.append(piece)
            self.kept += len(piece)
        return len(s)

    def text(self) -> str:
        return "".join(self.parts)


def _printed_note(buf: _BoundedBuffer) -> str | None:
    if buf.total == 0:
        return None
    shown = buf.text()[:MAX_CAPTURED_CHARS]
    head = f"Your code printed {buf.total:,} characters during the check"
    if buf.total > len(shown):
        head += f"; the first {len(shown):,} are shown"
    return head + ":\n" + "\n".join("  | " + line for line in shown.splitlines())


# ----------------------------------------------------------------------------------------------------
# Exercises and their registry


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: `passed`, the learner-facing `message`, and points earned."""

    notebook: str
    exercise: str
    passed: bool
    message: str
    points: float
    max_points: float
    summary: str = ""  # one line: "passed", or what is wrong (for the grades CSV)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        state = "passed" if self.passed else "not passed"
        return f"CheckResult({self.notebook}.{self.exercise}: {state}, {self.points:g}/{self.max_points:g} points)"


Checker = Callable[[Any, float], None]


@dataclass(eq=False)
class Exercise:
    """One exercise: what to write (`prompt`), how to check it (`checker`), hints and a worked solution.

    `checker(obj, timeout)` receives the learner's object and the per-call time limit; it raises
    `CheckFailed` on a wrong answer. `solution_code` is Python code; `explanation` says why it works.
    """

    name: str  # "q1": the attribute name in the notebook's exercise module
    title: str  # what the learner writes, e.g. "bigram_probs(ids, vocab_size)"
    prompt: str  # the task, as in the notebook
    checker: Checker
    hints: Sequence[str]  # a ladder, from a nudge to nearly the answer
    solution_code: str  # worked solution code
    explanation: str  # why the solution is right
    points: float = 1.0
    timeout: float = DEFAULT_TIMEOUT  # seconds per call of the learner's function
    notebook: str = ""  # set by ExerciseSet
    _hints_shown: int = field(default=0, repr=False)
    _last: CheckResult | None = field(default=None, repr=False)

    # -- learner-facing --------------------------------------------------------------------------

    def check(self, answer: Any = Ellipsis, *, timeout: float | None = None) -> None:
        """Check your answer and print what is right or wrong. Pass the function itself: check(my_fn)."""
        result = self.evaluate(answer, timeout=timeout)
        self._last = result
        _append_grade_line(result)
        print(result.message)

    def hint(self, n: int | None = None) -> None:
        """Print the next hint (or hint number `n`, from 1) of the ladder."""
        count = len(self.hints)
        if n is None:
            if self._hints_shown >= count:
                print(f"No more hints for {self.name} (there are {count}). "
                      f"ex.{self.name}.solution() shows a worked solution.")
                return
            n = self._hints_shown + 1
        if not isinstance(n, int) or not 1 <= n <= count:
            print(f"{self.name} has hints 1 to {count}; ask for one of those, e.g. ex.{self.name}.hint(1).")
            return
        self._hints_shown = max(self._hints_shown, n)
        more = f" Next: ex.{self.name}.hint()." if n < count else f" Still stuck? ex.{self.name}.solution()."
        print(f"Hint {n} of {count} for {self.name}: {self.hints[n - 1]}\n{more.strip()}")

    def solution(self) -> None:
        """Print the worked solution: code, then why it works."""
        print(self.solution_text())

    # -- for checks, tools and tests -------------------------------------------------------------

    def solution_text(self) -> str:
        code = "\n".join("    " + line if line else "" for line in self.solution_code.strip("\n").splitlines())
        return f"Worked solution for {self.name}: {self.title}\n\n{code}\n\nWhy: {self.explanation.strip()}"

    @property
    def last_result(self) -> CheckResult | None:
        """The result of the latest `check` in this session, or None."""
        return self._last

    def evaluate(self, answer: Any, *, timeout: float | None = None) -> CheckResult:
        """Run the checker on `answer` and return a `CheckResult`; prints nothing and records nothing."""
        limit = self.timeout if timeout is None else float(timeout)
        head = f"{self.name} · {self.title}"
        buf = _BoundedBuffer(_KEEP_CAPTURED_CHARS)
        failure: CheckFailed | None = None
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                if answer is Ellipsis:
                    raise NotSolved("Not yet solved: write your answer, then run this check again.")
                self.checker(answer, limit)
            except CheckFailed as exc:
                failure = exc
            except Exception as exc:  # noqa: BLE001 - a bug in a checker must not crash the notebook
                failure = CheckFailed(
                    f"The checker itself failed ({type(exc).__name__}: {exc}). This is a bug in lmlab, "
                    f"not in your answer; please tell your teacher."
                )
        printed = _printed_note(buf)
        if failure is None:
            lines = [f"{_PASS} {head}: passed. {self.points:g}/{self.points:g} points."]
            passed, points = True, self.points
        elif isinstance(failure, NotSolved):
            lines = [f"{_TODO} {head}: {failure.explain()}"]
            passed, points = False, 0.0
        else:
            hint = f"Stuck? ex.{self.name}.hint() gives a hint."
            lines = [f"{_FAIL} {head}: not yet right.", failure.explain(), hint]
            passed, points = False, 0.0
        if printed:
            lines.insert(len(lines) - 1 if len(lines) > 1 else 1, printed)
        summary = "passed" if failure is None else " ".join(failure.message.split())[:300]
        return CheckResult(self.notebook, self.name, passed, "\n".join(lines), points, self.points, summary)


def _append_grade_line(result: CheckResult) -> None:
    path = os.environ.get(GRADE_FILE_ENV)
    if not path:
        return
    line = json.dumps(
        {
            "notebook": result.notebook,
            "exercise": result.exercise,
            "passed": result.passed,
            "points": result.points,
            "max_points": result.max_points,
            "message": result.message,
            "summary": result.summary,
        },
        ensure_ascii=False,
    )
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError as exc:
        import warnings

        warnings.warn(f"could not record the check result in {path} ({exc})", stacklevel=3)


class ExerciseSet:
    """The exercises of one notebook, in order; `key` (e.g. "nb01") names the module and the grade lines."""

    def __init__(self, key: str, title: str, exercises: Sequence[Exercise]) -> None:
        self.key = key
        self.title = title
        self.exercises: dict[str, Exercise] = {}
        for ex in exercises:
            if ex.name in self.exercises:
                raise ValueError(f"two exercises named {ex.name!r} in {key}; names must be unique")
            ex.notebook = key
            self.exercises[ex.name] = ex

    def __getitem__(self, name: str) -> Exercise:
        return self.exercises[name]

    def __iter__(self) -> Iterator[Exercise]:
        return iter(self.exercises.values())

    @property
    def max_points(self) -> float:
        return sum(ex.points for ex in self)

    def progress_text(self) -> str:
        done = [ex for ex in self if ex.last_result is not None and ex.last_result.passed]
        score = sum(ex.points for ex in done)
        lines = [
            f"{self.title}: {len(done)} of {len(self.exercises)} exercises passed, "
            f"{score:g}/{self.max_points:g} points."
        ]
        for ex in self:
            r = ex.last_result
            if r is None:
                mark, state = _TODO, "not checked yet"
            elif r.passed:
                mark, state = _PASS, "passed"
            else:
                mark, state = _FAIL, "not passed yet"
            lines.append(f"  {mark} {ex.name:<4}{ex.title:<42} {state} ({ex.points:g} pt)")
        return "\n".join(lines)

    def progress(self) -> None:
        """Print which exercises passed in this session."""
        print(self.progress_text())

    def reset(self) -> None:
        """Forget results and hints shown (as after a kernel restart)."""
        for ex in self:
            ex._last = None
            ex._hints_shown = 0
