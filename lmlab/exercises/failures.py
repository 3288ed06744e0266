"""What a check raises when an answer is not right: `CheckFailed` and its kinds.

A checker raises ``CheckFailed(message, input=..., expected=..., got=...)``; the learner reads
``explain()``: the message, then the input tried, the value expected and the value got. Many checks of
one case share the same input, expected and got, so ``CheckFailed.at(...)`` makes a small function that
raises with them::

    fail = CheckFailed.at(input=shown, expected=expected, got=got)
    if near(expected / math.log(2)):
        raise fail("This looks like bits (log base 2); ...")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lmlab.exercises.describe import describe, labelled

__all__ = ["CheckFailed", "NotSolved", "LearnerError", "TimeLimitExceeded", "ForbiddenCall", "InputChanged"]

UNSET: Any = object()  # a field not given to CheckFailed is not shown ("got=None" is shown as None)


class CheckFailed(Exception):
    """A check found something wrong. `message` explains it; the other fields say where.

    `input`, `expected` and `got` are shown as ``describe(value)`` unless they are already strings;
    a field left out is not shown.
    """

    def __init__(self, message: str, *, input: Any = UNSET, expected: Any = UNSET, got: Any = UNSET,
                 details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.input = input
        self.expected = expected
        self.got = got
        self.details = details

    @classmethod
    def at(cls, *, input: Any = UNSET, expected: Any = UNSET, got: Any = UNSET) -> Callable[[str], CheckFailed]:
        """A function ``message -> CheckFailed`` with these fields, for the several diagnoses of one case."""

        def fail(message: str) -> CheckFailed:
            return cls(message, input=input, expected=expected, got=got)

        return fail

    def explain(self) -> str:
        """The full, multi-line explanation shown to the learner."""
        lines = [self.message]
        for label, value in (("input", self.input), ("expected", self.expected), ("got", self.got)):
            if value is UNSET or (label == "input" and not value):
                continue
            text = value if isinstance(value, str) else describe(value)
            lines.append(labelled(f"{label}:", text))
        if self.details:
            lines.append(self.details)
        return "\n".join(lines)


class NotSolved(CheckFailed):
    """The learner's answer is still the stub (`raise NotImplementedError`, `...`)."""


class LearnerError(CheckFailed):
    """The learner's code raised an exception."""


class TimeLimitExceeded(CheckFailed):
    """The learner's code ran longer than the time limit."""


class ForbiddenCall(CheckFailed):
    """The learner's code called a function that implements the exercise (lmlab's own, a reference...)."""


class InputChanged(CheckFailed):
    """The learner's code changed one of its inputs in place."""
