"""Helpers for the exercise tests (tests/test_exercises*.py)."""


def solution_function(exercise, name: str):
    """The function defined by an exercise's worked solution (what `ex.qN.solution()` shows must itself pass)."""
    import math

    import torch
    import torch.nn.functional as F

    namespace: dict = {"torch": torch, "math": math, "F": F}
    exec(exercise.solution_code, namespace)
    return namespace[name]


def fails_with(exercise, answer, *fragments):
    """The check of `answer` fails, and its message contains every fragment (the specific feedback)."""
    result = exercise.evaluate(answer)
    assert not result.passed
    for fragment in fragments:
        assert fragment in result.message, result.message
