"""Reading notebook cells as Python: the names a cell defines, its imports, and the exercises a notebook uses.

Shared by `build` (no teaching cell may define a graded function) and `grade` (which cell is the exercise
cell of which exercise). A code cell may hold IPython syntax (``%matplotlib``, ``!pip``); it is turned into
plain Python first, as IPython does before running it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["EXERCISE_META", "python_source", "parse_cell", "top_level_names", "import_statements",
           "exercise_modules_of", "GradedFunction", "graded_functions", "exercise_key_of"]

EXERCISE_META = "lmlab"  # cell.metadata["lmlab"] = {"exercise": "nb05.q1", "function": "attention", "order": 0}
_MODULE_RE = re.compile(r"lmlab\.exercises(?:\.(\w+)|\s+import\s+([\w\s,]+))")


def python_source(source: str) -> str:
    """A code cell's source as plain Python (IPython magics and shell escapes become function calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # without IPython, magics stay as they are (and fail to parse)
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - a cell IPython cannot read either: keep it as it is
        return source


def parse_cell(source: str) -> ast.Module | None:
    """The cell's syntax tree, or None when it is not valid Python."""
    try:
        return ast.parse(python_source(source))
    except SyntaxError:
        return None


def top_level_names(tree: ast.Module) -> dict[str, str]:
    """The names a cell binds at its top level, each with how: "def", "class", "assignment" or "import".

    Example: ``def f(): ...`` and ``from m import g as h`` -> ``{"f": "def", "h": "import"}``
    """
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = "def"
        elif isinstance(node, ast.ClassDef):
            names[node.name] = "class"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = "import"
        else:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)) else []
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.setdefault(leaf.id, "assignment")
    return names


def import_statements(tree: ast.Module) -> list[str]:
    """The cell's top-level import statements, as source lines."""
    return [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]


def exercise_modules_of(nb: Any) -> list[str]:
    """The exercise modules a notebook imports (``from lmlab.exercises import nb05 as ex`` -> ``["nb05"]``)."""
    from lmlab.exercises import exercise_modules

    known = set(exercise_modules())
    found: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for m in _MODULE_RE.finditer(cell.source):
            names = [m.group(1)] if m.group(1) else [n.split(" as ")[0].strip() for n in m.group(2).split(",")]
            found += [n for n in names if n in known and n not in found]
    return found


@dataclass(frozen=True)
class GradedFunction:
    """A function an exercise grades: ``attention`` is graded by ``nb05.q1``."""

    key: str  # "nb05.q1"
    function: str  # "attention"
    forbidden: tuple[str, ...]  # lmlab's implementations of it (importing one under the name is allowed)


def graded_functions(modules: list[str]) -> dict[str, GradedFunction]:
    """The functions the exercises of `modules` grade, by function name."""
    from lmlab.exercises import exercise_set

    out: dict[str, GradedFunction] = {}
    for mod in modules:
        for ex in exercise_set(mod):
            out[ex.function_name] = GradedFunction(f"{mod}.{ex.name}", ex.function_name, tuple(ex.forbidden))
    return out


def exercise_key_of(cell: Any) -> str | None:
    """The exercise a cell of a student notebook was handed out for (``"nb05.q1"``), from its metadata."""
    meta = cell.get("metadata", {}).get(EXERCISE_META)
    if isinstance(meta, dict) and isinstance(meta.get("exercise"), str):
        return meta["exercise"]
    return None
