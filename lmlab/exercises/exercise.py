"""`Exercise` and `ExerciseSet`: what a learner checks, hints and solutions, and what the grader runs.

A learner meets them as ``ex.q1.check(my_function)``, ``ex.q1.hint()``, ``ex.q1.solution()`` and
``ex.progress()``. Everything the learner sees is printed as plain, deterministic text.

An exercise has public cases (the inputs `check` tries, listed in its module) and, for grading, hidden
cases made by ``hidden(rng)`` from a seed the teacher holds (`hidden_cases`). Its checker receives the
learner's function, the per-call time limit and a list of cases; it returns when every case is right and
raises `CheckFailed` for the first one that is not. `evaluate` runs the public cases in one go (self-check);
`run_cases` runs any cases one at a time and scores each (grading).
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmlab.exercises.failures import CheckFailed, NotSolved
from lmlab.exercises.graded import is_exercise_module
from lmlab.exercises.guards import Rules, rules_for
from lmlab.exercises.safety import DEFAULT_TIMEOUT, BoundedBuffer, printed_note, require_callable

__all__ = ["CheckResult", "CaseResult", "Exercise", "ExerciseSet", "Checker"]

_PASS = "✓"
_FAIL = "✗"
_TODO = "·"

Checker = Callable[[Any, float, Sequence[Any]], None]  # checker(fn, timeout, cases)


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


@dataclass(frozen=True)
class CaseResult:
    """One case of one exercise, as the grader scores it."""

    label: str  # "public case 2", "hidden case 1"
    passed: bool
    summary: str  # "passed", or the one-line reason
    message: str = ""  # the full explanation of a failure
    kind: str = ""  # the kind of failure: "CheckFailed", "TimeLimitExceeded"...


@dataclass(eq=False)
class Exercise:
    """One exercise: what to write (`prompt`), how to check it (`checker`, `cases`), hints and a worked solution."""

    name: str  # "q1": the attribute name in the notebook's exercise module
    title: str  # what the learner writes, e.g. "bigram_probs(ids, vocab_size)"
    prompt: str  # the task, as in the notebook
    checker: Checker
    hints: Sequence[str]  # a ladder, from a nudge to nearly the answer
    solution_code: str  # worked solution code
    explanation: str  # why the solution is right
    points: float = 1.0
    timeout: float = DEFAULT_TIMEOUT  # seconds per call of the learner's function
    cases: Sequence[Any] = ()  # the public cases
    hidden: Callable[[random.Random], Sequence[Any]] | None = None  # hidden cases from the teacher's seed
    forbidden: Sequence[str] = ()  # dotted names of functions that implement the exercise (lmlab's own...)
    notebook: str = ""  # set by ExerciseSet
    _hints_shown: int = field(default=0, repr=False)
    _last: CheckResult | None = field(default=None, repr=False)

    @property
    def function_name(self) -> str:
        """The name of the function the learner writes: ``"bigram_probs"``."""
        return self.title.split("(")[0].strip()

    @property
    def rules(self) -> Rules:
        """What the learner's function may not call: the `forbidden` functions and the exercise modules' own."""
        files = {getattr(m, "__file__", None) for name, m in list(sys.modules.items()) if is_exercise_module(name)}
        return Rules(tuple(self.forbidden), tuple(sorted(f for f in files if f)))

    # -- learner-facing --------------------------------------------------------------------------

    def check(self, answer: Any = Ellipsis, *, timeout: float | None = None) -> None:
        """Check your answer and print what is right or wrong. Pass the function itself: check(my_fn)."""
        result = self.evaluate(answer, timeout=timeout)
        self._last = result
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

    def hidden_cases(self, seed: int) -> list[Any]:
        """The hidden cases made from the teacher's `seed` (the same seed gives the same cases)."""
        if self.hidden is None:
            return []
        return list(self.hidden(random.Random(f"{seed}:{self.notebook}.{self.name}")))

    def evaluate(self, answer: Any, *, timeout: float | None = None) -> CheckResult:
        """Run the checker on the public cases and return a `CheckResult`; prints nothing and records nothing."""
        limit = self.timeout if timeout is None else float(timeout)
        buf = BoundedBuffer()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            failure = self._failure(answer, limit, list(self.cases))
        return self._result(failure, printed_note(buf.total, buf.text()))

    def run_cases(self, answer: Any, cases: Sequence[Any], *, labels: Sequence[str] | None = None,
                  timeout: float | None = None) -> list[CaseResult]:
        """Check `answer` on each case separately (for grading): one `CaseResult` per case."""
        limit = self.timeout if timeout is None else float(timeout)
        labels = list(labels) if labels is not None else [f"case {i}" for i in range(1, len(cases) + 1)]
        results = []
        for label, case in zip(labels, cases):
            failure = self._failure(answer, limit, [case])
            if failure is None:
                results.append(CaseResult(label, True, "passed"))
            else:
                results.append(CaseResult(label, False, _one_line(failure.message), failure.explain(),
                                          type(failure).__name__))
        return results

    def _failure(self, answer: Any, limit: float, cases: list[Any]) -> CheckFailed | None:
        try:
            if answer is Ellipsis:
                raise NotSolved("Not yet solved: write your answer, then run this check again.")
            require_callable(answer, self.function_name)
            with rules_for(self.rules):
                self.checker(answer, limit, cases)
        except CheckFailed as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - a bug in a checker must not crash the notebook
            return CheckFailed(f"The checker itself failed ({type(exc).__name__}: {exc}). This is a bug in lmlab, "
                               f"not in your answer; please tell your teacher.")
        return None

    def _result(self, failure: CheckFailed | None, printed: str | None) -> CheckResult:
        head = f"{self.name} · {self.title}"
        if failure is None:
            lines = [f"{_PASS} {head}: passed. {self.points:g}/{self.points:g} points."]
        elif isinstance(failure, NotSolved):
            lines = [f"{_TODO} {head}: {failure.explain()}"]
        else:
            hint = f"Stuck? ex.{self.name}.hint() gives a hint."
            lines = [f"{_FAIL} {head}: not yet right.", failure.explain(), hint]
        if printed:
            lines.insert(len(lines) - 1 if len(lines) > 1 else 1, printed)
        passed = failure is None
        summary = "passed" if passed else _one_line(failure.message)
        return CheckResult(self.notebook, self.name, passed, "\n".join(lines), self.points if passed else 0.0,
                           self.points, summary)


def _one_line(message: str) -> str:
    return " ".join(message.split())[:300]


class ExerciseSet:
    """The exercises of one notebook, in order; `key` (e.g. "nb01") names the module."""

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
        lines = [f"{self.title}: {len(done)} of {len(self.exercises)} exercises passed, "
                 f"{score:g}/{self.max_points:g} points."]
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
