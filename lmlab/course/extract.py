"""What the grader takes from a submission: its imports and its exercise cells, found by their metadata.

`lmlab course build` marks each exercise cell of a student notebook (``{"lmlab": {"exercise": "nb05.q1",
"function": "attention", "order": 0}}``). The grader grades the function defined in that cell, and
nothing else of the notebook but its import statements. An exercise whose cell is gone (deleted, or its
metadata removed), copied, moved after the cell that checks it, or out of order with the other exercise
cells scores zero, with the reason.

`scan` looks for what graded mode does not allow in an exercise cell: code that loads code the grader
cannot see (``exec``, ``eval``, ``compile``, ``__import__``, ``importlib``), reaches into the interpreter
(``sys.modules``, ``sys.setprofile``, ``gc``, ``ctypes``, ``inspect``, ``__code__``, ``__globals__``...),
or touches processes and file descriptors (``os.fork``, ``os.dup2``, ``subprocess``, ``signal``...).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from lmlab.course.cells import EXERCISE_META, exercise_key_of, import_statements, parse_cell, python_source

__all__ = ["ExerciseCell", "Extraction", "extract", "scan"]

_NAMES = {"exec", "eval", "compile", "__import__", "globals", "breakpoint", "open", "input"}
_MODULES = {"importlib", "ctypes", "gc", "inspect", "marshal", "subprocess", "multiprocessing", "signal", "socket",
            "threading", "_thread", "builtins", "sys", "os", "shutil", "pathlib", "io", "pickle", "runpy", "code"}
_ATTRIBUTES = {"__code__", "__globals__", "__closure__", "__subclasses__", "__builtins__", "__dict__", "__class__",
               "__bases__", "__mro__", "__loader__", "__spec__", "f_globals", "f_locals", "f_back", "gi_frame",
               "tb_frame", "co_code"}


@dataclass
class ExerciseCell:
    """Where the exercise `key` is in a submission, or why it cannot be graded."""

    key: str  # "nb05.q1"
    function: str  # "attention"
    index: int | None = None  # cell number (from 1), None when not found
    source: str = ""  # the cell's code as plain Python
    problem: str = ""  # why it scores zero without running, "" when it can be graded


@dataclass
class Extraction:
    """The imports of a submission and its exercise cells, in notebook order."""

    imports: list[str] = field(default_factory=list)
    cells: dict[str, ExerciseCell] = field(default_factory=dict)


def extract(nb: Any, expected: list[tuple[str, str]]) -> Extraction:
    """Find the exercise cells of `expected` ``[(key, function), ...]`` in the submission `nb`."""
    out = Extraction()
    marked: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        key = exercise_key_of(cell)
        if key is not None:
            marked.setdefault(key, []).append(index)
        elif (tree := parse_cell(cell.source)) is not None:
            out.imports += import_statements(tree)
    order = [i for key, _ in expected for i in marked.get(key, [])[:1]]
    for key, function in expected:
        found = marked.get(key, [])
        ex = out.cells[key] = ExerciseCell(key, function)
        if not found:
            ex.problem = (f"no cell is marked as the exercise cell of {key} (the one handed out with "
                          f"`def {function}`): it was deleted or its metadata removed, or the notebook never had it; "
                          f"graded mode grades only that cell")
        elif len(found) > 1:
            ex.problem = (f"cells {', '.join(map(str, found))} are all marked as the exercise cell of {key} (a copied "
                          f"cell?): keep one")
        else:
            ex.index = found[0]
            ex.source = python_source(nb.cells[ex.index - 1].source)
            ex.problem = _moved(nb, ex, order) or _scan_problem(ex)
    return out


def _moved(nb: Any, ex: ExerciseCell, order: list[int]) -> str:
    assert ex.index is not None
    meta = nb.cells[ex.index - 1].metadata.get(EXERCISE_META, {})
    name = ex.key.split(".")[-1]
    check = re.compile(rf"\.{re.escape(name)}\.check\s*\(")
    checks = [i for i, c in enumerate(nb.cells, start=1) if c.cell_type == "code" and check.search(c.source)]
    if checks and min(checks) < ex.index:
        return f"the exercise cell of {ex.key} was moved below the cell that checks it (cell {min(checks)})"
    if order != sorted(order) and isinstance(meta.get("order"), int):
        return (f"the exercise cells were moved out of their order ({ex.key} is now cell {ex.index}); put them back "
                f"where they were handed out")
    return ""


def _scan_problem(ex: ExerciseCell) -> str:
    found = scan(ex.source)
    if not found:
        return ""
    return (f"the exercise cell of {ex.key} uses {', '.join(f'`{f}`' for f in found)}, which graded mode does not "
            f"allow in an exercise cell (it could load or change code the grader does not see)")


def scan(source: str) -> list[str]:
    """The constructs of `source` that graded mode does not allow in an exercise cell, in order of appearance."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the worker reports the syntax error itself
    found: list[str] = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Name) and node.id in _NAMES | _MODULES:
            name = node.id
        elif isinstance(node, ast.Attribute) and node.attr in _ATTRIBUTES:
            name = node.attr
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            name = next((m for m in modules if m.split(".")[0] in _MODULES), None)
        if name is not None and name not in found:
            found.append(name)
    return found
