"""Self-checking exercises for the lmlab notebooks.

In a notebook: ``from lmlab.exercises import nb01 as ex``, then ``ex.q1.check(my_function)``,
``ex.q1.hint()``, ``ex.q1.solution()`` and ``ex.progress()``. One module per notebook (`nb01`, ...);
the machinery is in `lmlab.exercises.core`. Teachers: see docs/teachers.md and `lmlab.course`.

In graded mode (``LMLAB_GRADED=1``, set by the grader for the processes that run learners' code) the
notebook modules are stand-ins without references or solutions: see `lmlab.exercises.graded`.
"""

from lmlab.exercises.exercise import CheckResult, Exercise, ExerciseSet
from lmlab.exercises.failures import CheckFailed
from lmlab.exercises.graded import graded_mode_requested, install_graded_mode

__all__ = ["CheckFailed", "CheckResult", "Exercise", "ExerciseSet", "exercise_set", "exercise_modules"]

if graded_mode_requested():
    install_graded_mode()


def exercise_set(module: str) -> ExerciseSet:
    """The `ExerciseSet` of a notebook's exercise module, by its name (e.g. ``"nb01"``)."""
    import importlib

    if not module.isidentifier():
        raise ValueError(f"not an exercise module name: {module!r} (expected something like 'nb01')")
    try:
        mod = importlib.import_module(f"lmlab.exercises.{module}")
    except ModuleNotFoundError as exc:
        raise ValueError(f"no exercise module lmlab.exercises.{module}") from exc
    exercises = getattr(mod, "EXERCISES", None)
    if not isinstance(exercises, ExerciseSet):
        raise ValueError(f"lmlab.exercises.{module} has no EXERCISES registry (an ExerciseSet)")
    return exercises


def exercise_modules() -> list[str]:
    """The names of the notebooks' exercise modules, in order: ``["nb01", "nb02", ...]``."""
    import pkgutil
    import re

    return sorted(m.name for m in pkgutil.iter_modules(__path__) if re.fullmatch(r"nb\d+", m.name))
