"""Helpers for the exercise tests (tests/test_exercise*.py)."""

from lmlab.exercises.core import unwatched


def solution_function(exercise, name: str):
    """The function defined by an exercise's worked solution (what `ex.qN.solution()` shows must itself pass)."""
    import math

    import torch
    import torch.nn.functional as F

    namespace: dict = {"torch": torch, "math": math, "F": F}
    exec(exercise.solution_code, namespace)
    return namespace[name]


def passes(exercise, answer):
    """A reference of the check passed as the answer passes (the watch for references is off for it)."""
    with unwatched():
        result = exercise.evaluate(answer)
    assert result.passed, result.message
    assert result.points == exercise.points
    return result


def fails_with(exercise, answer, *fragments):
    """The check of `answer` fails, and its message contains every fragment (the specific feedback).

    Wrong answers built from the check's own references and variants are allowed here (unwatched): these
    tests are about the diagnosis of the mistake, not about using a reference.
    """
    with unwatched():
        result = exercise.evaluate(answer)
    assert not result.passed
    for fragment in fragments:
        assert fragment in result.message, result.message
    return result
