"""Graded mode: in a process that runs a learner's code for grading, the exercise modules are stand-ins.

When the environment variable ``LMLAB_GRADED`` is ``1`` (the grader sets it for every process it starts;
a teacher may set it on an exam server), ``from lmlab.exercises import nb05 as ex`` gives a stand-in
module instead of the real one: ``ex.q1.check(fn)`` says that the grader checks the exercise on hidden
cases, and there are no references, checkers, hints or worked solutions to call or to read. The real
modules cannot be imported in that process.

This keeps the solutions out of the learner's reach in the processes the grader starts. It does not
decide any grade: the grader computes grades in its own process (see `lmlab.course`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import types
from typing import Any

__all__ = ["GRADED_ENV", "graded_mode_requested", "install_graded_mode", "is_exercise_module", "StandInModule"]

GRADED_ENV = "LMLAB_GRADED"
_MODULE_RE = re.compile(r"lmlab\.exercises\.nb\d+(_\w+)?")  # nb05, and helpers of one notebook: nb01_tables
_EXERCISE_RE = re.compile(r"q\d+")


def is_exercise_module(name: str) -> bool:
    """True for the modules that hold a notebook's checks and references: ``lmlab.exercises.nb05``."""
    return _MODULE_RE.fullmatch(name) is not None


def graded_mode_requested() -> bool:
    """True when this process was started in graded mode (``LMLAB_GRADED=1``)."""
    return os.environ.get(GRADED_ENV) == "1"


class StandInExercise:
    """What ``ex.q1`` is in graded mode: it checks nothing and shows no solution."""

    def __init__(self, key: str) -> None:
        self.key = key  # "nb05.q1"

    def check(self, answer: Any = Ellipsis, *, timeout: float | None = None) -> None:
        """In graded mode the grader checks this exercise on hidden cases after you submit."""
        print(f"{self.key}: graded mode. The grader checks this exercise on hidden cases after you submit; "
              f"your notebook's own checks are off.")

    def hint(self, n: int | None = None) -> None:
        print(f"{self.key}: hints are not available in graded mode.")

    def solution(self) -> None:
        print(f"{self.key}: worked solutions are not available in graded mode.")


class StandInModule(types.ModuleType):
    """What ``lmlab.exercises.nbNN`` is in graded mode: ``q1``, ``q2``... and ``progress`` only."""

    def __getattr__(self, name: str) -> Any:
        key = self.__name__.rsplit(".", 1)[-1]
        if _EXERCISE_RE.fullmatch(name):
            return StandInExercise(f"{key}.{name}")
        if name == "progress":
            return lambda: print(f"{key}: graded mode; the grader reports your progress after you submit.")
        raise AttributeError(f"{self.__name__}.{name} is not available in graded mode (no references, checkers "
                             f"or solutions in a process that runs code for grading)")


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of ``lmlab.exercises.nbNN`` with a `StandInModule`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not _MODULE_RE.fullmatch(fullname):
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: Any) -> types.ModuleType:
        return StandInModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install_graded_mode() -> None:
    """From now on in this process, ``lmlab.exercises.nbNN`` imports give stand-ins; real ones are forgotten."""
    if not any(isinstance(f, _StandInFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StandInFinder())
    package = sys.modules.get("lmlab.exercises")
    for name in [n for n in sys.modules if _MODULE_RE.fullmatch(n)]:
        del sys.modules[name]
        if package is not None and hasattr(package, name.rsplit(".", 1)[-1]):
            delattr(package, name.rsplit(".", 1)[-1])
