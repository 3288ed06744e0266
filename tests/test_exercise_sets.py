"""Every exercise of every notebook: its worked solution passes, and it has hints, an explanation and points.

The per-notebook files (tests/test_exercises*.py) check the references and the feedback on typical mistakes.
"""

from __future__ import annotations

import pytest

from lmlab.exercises import exercise_modules, exercise_set
from exercise_helpers import solution_function

MODULES = exercise_modules()
EXERCISES = [(module, exercise) for module in MODULES for exercise in exercise_set(module).exercises.values()]


def test_every_notebook_with_exercises_has_a_module():
    assert MODULES[:4] == ["nb01", "nb02", "nb03", "nb04"] and len(MODULES) >= 4


@pytest.mark.parametrize("module, exercise", EXERCISES, ids=[f"{m}.{e.name}" for m, e in EXERCISES])
def test_worked_solution_passes(module, exercise):
    name = exercise.title.split("(")[0]  # the function the learner writes, as the title shows it
    result = exercise.evaluate(solution_function(exercise, name))
    assert result.passed, result.message
    assert result.points == exercise.points > 0


@pytest.mark.parametrize("module, exercise", EXERCISES, ids=[f"{m}.{e.name}" for m, e in EXERCISES])
def test_has_hints_solution_and_explanation(module, exercise):
    assert len(exercise.hints) >= 2 and all(h.strip() for h in exercise.hints)
    assert exercise.solution_code.strip() and exercise.explanation.strip() and exercise.prompt.strip()


@pytest.mark.parametrize("module, exercise", EXERCISES, ids=[f"{m}.{e.name}" for m, e in EXERCISES])
def test_a_stub_is_not_yet_solved(module, exercise):
    def stub(*args, **kwargs):
        raise NotImplementedError("write your solution here")

    result = exercise.evaluate(stub)
    assert not result.passed and "Not yet solved" in result.message, result.message


@pytest.mark.parametrize("module, exercise", EXERCISES, ids=[f"{m}.{e.name}" for m, e in EXERCISES])
def test_worked_solution_passes_the_hidden_cases_of_two_seeds(module, exercise):
    """Hidden cases come from the teacher's seed: the same seed gives the same cases, another seed others."""
    assert repr(exercise.hidden_cases(1)) == repr(exercise.hidden_cases(1))
    assert repr(exercise.hidden_cases(1)) != repr(exercise.hidden_cases(2))
    hidden = exercise.hidden_cases(1) + exercise.hidden_cases(2)
    results = exercise.run_cases(solution_function(exercise, exercise.function_name), hidden)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]
