"""The public machinery of the exercises in one place, for writing checkers (see docs/teachers.md).

Writing an exercise (see `lmlab/exercises/nb01.py` for real ones)::

    def _check_double(fn, timeout, cases):
        for x in cases:
            got = call_safely(fn, x, timeout=timeout, show_input=f"x={x}")
            if got != 2 * x:
                raise CheckFailed("double(x) should return 2 * x.", input=f"x={x}", expected=2 * x, got=got)

    q1 = Exercise("q1", "double(x)", prompt="Write double(x) -> 2x.", checker=_check_double,
                  hints=["Multiply.", "Use *.", "return 2 * x"], solution_code="def double(x):\\n    return 2 * x",
                  explanation="Doubling is multiplying by two.", cases=[0, 1, -3],
                  hidden=lambda rng: [rng.randint(-100, 100) for _ in range(3)])
    EXERCISES = ExerciseSet("nb00", "00 · demo", [q1])

The pieces live in modules by concern: `describe` (describing values), `failures` (what a check
raises), `compare` (plain values and comparisons), `guards` (the rules of an exercise), `safety`
(calling the learner's code), `exercise` (the exercise objects), `graded` (graded mode).
"""

from lmlab.exercises.compare import (
    as_index,
    as_number,
    compare_numbers,
    compare_tensors,
    diagnosing,
    number_near,
    plain,
    tensors_close,
)
from lmlab.exercises.describe import Opaque, describe
from lmlab.exercises.exercise import CaseResult, CheckResult, Exercise, ExerciseSet
from lmlab.exercises.failures import (
    CheckFailed,
    ForbiddenCall,
    InputChanged,
    LearnerError,
    NotSolved,
    TimeLimitExceeded,
)
from lmlab.exercises.guards import Rules, rules_for, unwatched
from lmlab.exercises.safety import DEFAULT_TIMEOUT, call_safely, require_callable

__all__ = [
    "CheckFailed", "NotSolved", "LearnerError", "TimeLimitExceeded", "ForbiddenCall", "InputChanged",
    "CheckResult", "CaseResult", "Exercise", "ExerciseSet", "call_safely", "require_callable", "compare_tensors",
    "compare_numbers", "as_number", "as_index", "plain", "number_near", "tensors_close", "diagnosing", "describe",
    "Opaque", "Rules", "rules_for", "unwatched", "DEFAULT_TIMEOUT",
]
