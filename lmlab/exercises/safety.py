"""Calling a learner's function safely: time limit, exceptions, printed output, plain results.

`call_safely(fn, *args, timeout=..., show_input=...)` is how every checker calls the learner's code. It
turns every problem into a `CheckFailed` the learner can read:

- **Time limit.** On Unix, on the main thread (the normal case in a notebook and in a script), the
  function is interrupted with ``signal.setitimer`` after `timeout` seconds, so an endless Python loop
  really stops; one long C call (a huge torch op) stops only when it returns. Elsewhere (Windows, or a
  check started from another thread) it runs in a daemon thread that is abandoned after `timeout`
  seconds and keeps running in the background; the feedback says so.
- **Exceptions** become `LearnerError` with the learner's own frames only; a stub is `NotSolved`.
- **Rules of the exercise** (`lmlab.exercises.guards`): calling an implementation of the exercise is a
  `ForbiddenCall`, changing an input in place an `InputChanged`.
- **Plain results.** The result comes back as `plain(...)` made it (exact types, CPU tensors), so the
  checker never touches the learner's object itself.

In graded mode the learner's function lives in another process: the grader passes a `CheckedCaller`,
whose ``checked_call`` does the same there and sends back the plain result (see `lmlab.course.remote`).
"""

from __future__ import annotations

import io
import re
import signal
import sysconfig
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmlab.exercises.compare import plain
from lmlab.exercises.describe import brief, name_of, truncate, type_name
from lmlab.exercises.guards import UNCOMPARED, CallWatch, Rules, changed_argument, current_rules, snapshot
from lmlab.exercises.failures import (
    CheckFailed,
    ForbiddenCall,
    InputChanged,
    LearnerError,
    NotSolved,
    TimeLimitExceeded,
)

__all__ = ["DEFAULT_TIMEOUT", "CheckedCaller", "call_safely", "run_call", "require_callable", "BoundedBuffer",
           "printed_note", "learner_traceback"]

DEFAULT_TIMEOUT = 5.0  # seconds per call of the learner's function
MAX_CAPTURED_CHARS = 500  # printed output of the learner's code shown in the feedback
KEEP_CAPTURED_CHARS = 20_000  # what the capture buffer keeps before counting only


# ----------------------------------------------------------------------------------------------------
# Capturing what the learner's code prints


class BoundedBuffer(io.TextIOBase):
    """A text stream that keeps only the first characters written and counts the rest."""

    def __init__(self, keep: int = KEEP_CAPTURED_CHARS) -> None:
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


def printed_note(total: int, text: str) -> str | None:
    """The feedback's note about what the learner's code printed (`total` characters, `text` the start)."""
    if total == 0:
        return None
    shown = text[:MAX_CAPTURED_CHARS]
    head = f"Your code printed {total:,} characters during the check"
    if total > len(shown):
        head += f"; the first {len(shown):,} are shown"
    return head + ":\n" + "\n".join("  | " + line for line in shown.splitlines())


# ----------------------------------------------------------------------------------------------------
# The time limit


class _Interrupt(BaseException):
    """Raised inside the learner's code by the alarm; a BaseException so `except Exception` can't eat it."""


class _TimedOut(Exception):
    def __init__(self, interrupted: bool) -> None:
        super().__init__("timed out")
        self.interrupted = interrupted


def _run_with_time_limit(target: Callable[[], Any], timeout: float) -> Any:
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
                return target()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Interrupt:
            raise _TimedOut(interrupted=True) from None
        finally:
            signal.signal(signal.SIGALRM, previous)

    box: dict[str, Any] = {}

    def _thread() -> None:
        try:
            box["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=_thread, name="lmlab-exercise-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _TimedOut(interrupted=False)
    if "error" in box:
        raise box["error"]
    return box.get("value")


_INTERNAL_DIRS = tuple(
    str(Path(p).resolve())
    for p in {str(Path(__file__).resolve().parent), *(sysconfig.get_paths().get(k, "") for k in
                                                      ("stdlib", "purelib", "platlib"))}
    if p
)


def learner_traceback(exc: BaseException, max_frames: int = 3) -> str | None:
    """The last few frames of the traceback that lie in the learner's code, without file paths of cells."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(_INTERNAL_DIRS) and "site-packages" not in f.filename]
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
# Calling


class CheckedCaller:
    """Base of objects that run a checked call themselves (the grader's handle on a function in another process)."""

    def checked_call(self, args: tuple, kwargs: dict, *, timeout: float, show_input: str, rules: Rules) -> Any:
        raise NotImplementedError


def require_callable(obj: Any, name: str) -> None:
    """Raise a kind `CheckFailed` unless `obj` is a function (the learner may pass its result instead)."""
    if callable(obj) and not isinstance(obj, type):
        return
    if obj is Ellipsis:
        raise NotSolved(f"Not yet solved: define the function `{name}` and pass it to the check.")
    if obj is None:
        raise CheckFailed(f"The check received None instead of your function `{name}`. "
                          f"Pass the function itself, without calling it: check({name}).")
    if isinstance(obj, type):
        raise CheckFailed(f"The check received the class {obj.__name__}; it expects your function `{name}`.")
    raise CheckFailed(f"The check expects your function `{name}` itself, but received {type_name(obj)} "
                      f"({brief(obj)}). Did you pass the result of calling it? "
                      f"Write check({name}), without parentheses after {name}.")


def call_safely(fn: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT, show_input: str = "",
                **kwargs: Any) -> Any:
    """Call the learner's `fn(*args, **kwargs)` under the time limit and the exercise's rules; return `plain` result.

    Raises `NotSolved` for a ``raise NotImplementedError`` stub, `LearnerError` (the exception, its message
    and the learner's own frames) for any other exception, `TimeLimitExceeded` after `timeout` seconds,
    `ForbiddenCall` and `InputChanged` when the call broke the rules. `show_input` describes the call for
    the feedback (``"ids=[0, 1], vocab_size=2"``).
    """
    rules = current_rules()
    if issubclass(type(fn), CheckedCaller):
        return plain(fn.checked_call(args, kwargs, timeout=timeout, show_input=show_input, rules=rules))
    return run_call(fn, args, kwargs, timeout=timeout, show_input=show_input, rules=rules)


def run_call(fn: Callable[..., Any], args: tuple, kwargs: dict, *, timeout: float, show_input: str,
             rules: Rules) -> Any:
    """The checked call itself (see `call_safely`), in this process."""
    name = name_of(fn)
    before = snapshot((args, kwargs))
    watch = CallWatch(rules)
    try:
        result = _run_with_time_limit(lambda: watch.run(fn, args, kwargs), timeout)
    except _TimedOut as exc:
        note = "" if exc.interrupted else (" It could not be stopped, so it keeps running in the background until "
                                           "it finishes (restart the kernel to stop it).")
        raise TimeLimitExceeded(f"`{name}` did not finish within {timeout:g} s.{note} Look for a loop that never "
                                f"ends (a `while` whose condition never becomes false) or work that grows too fast.",
                                input=show_input) from None
    except NotImplementedError:
        raise NotSolved(f"Not yet solved: replace the `raise NotImplementedError(...)` in `{name}` with your code, "
                        f"run that cell, then run this check again.") from None
    except SystemExit as exc:
        raise LearnerError(f"`{name}` called exit() (SystemExit: {_safe_str(exc.code)}), which would stop the whole "
                           f"program; a function should `return` its result instead.",
                           input=show_input, details=learner_traceback(exc)) from None
    except KeyboardInterrupt:
        raise  # the learner pressed stop: stop the check too
    except BaseException as exc:  # noqa: BLE001 - whatever the learner's code raises is feedback
        raise LearnerError(f"`{name}` raised {type(exc).__name__}: {truncate(_safe_str(exc), 400)}",
                           input=show_input, details=learner_traceback(exc)) from None
    if watch.hits:
        raise ForbiddenCall(f"`{name}` calls `{watch.hits[0]}`, which already does what this exercise asks, so the "
                            f"check gives no points for it. Write the computation yourself.", input=show_input)
    changed = changed_argument(fn, before, args, kwargs) if before is not UNCOMPARED else None
    if changed is not None:
        raise InputChanged(f"`{name}` changed its input `{changed}` in place. Leave the inputs as they are and "
                           f"return new values (for example `params - lr * grads` instead of `params -= ...`, or "
                           f"work on `x.clone()`).", input=show_input)
    return plain(result)


def _safe_str(obj: Any) -> str:
    try:
        return str(obj)
    except Exception as exc:  # noqa: BLE001 - a learner's exception may fail to print itself
        return f"(its message cannot be shown: {type(exc).__name__})"
