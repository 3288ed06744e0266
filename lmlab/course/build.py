"""Student notebooks from the solution notebooks, and the teacher's solutions manual (`lmlab course build`).

One source of truth: the notebooks in `notebooks/` contain the solutions, marked so that `build` can cut
them out (the full convention is in docs/teachers.md):

- In a code cell, the lines from ``# BEGIN SOLUTION`` to ``# END SOLUTION`` (optionally
  ``# BEGIN SOLUTION q1`` to name the exercise) are replaced by a stub:
    * an indented block (inside a function body) becomes
      ``raise NotImplementedError("Exercise q1: write your solution here")`` at the same indentation;
    * a top-level block becomes one ``name = ...`` line per variable it assigns (``...`` makes the check
      say "not yet solved"), or a ``# Exercise q1: write your solution here`` comment if it assigns none.
- Cells with markers, and cells tagged ``solution``, lose their outputs. A code cell tagged ``solution``
  must contain markers; a Markdown cell tagged ``solution`` is replaced by an empty answer.
- Cells that call ``.check(`` or ``.progress(`` (or are tagged ``clear-output``) keep their source and
  lose their outputs. Cells tagged ``teacher-only`` are removed.
- The exercise cell that defines a graded function (``def attention`` for ``nb05.q1``) is marked in its
  metadata (``{"lmlab": {"exercise": "nb05.q1", ...}}``): the grader finds it there.
- No teaching cell may define a graded function under its graded name: a learner who deleted the
  exercise cell would pass with the teaching copy. `build` refuses such a notebook; importing lmlab's own
  implementation under the name is allowed (the checks recognise it) and reported.

``build(...)`` writes ``OUT/student/<name>.ipynb`` for each notebook and, if asked,
``OUT/teacher/solutions_manual.md``. Re-running gives byte-identical files.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmlab.course.cells import (
    EXERCISE_META,
    GradedFunction,
    exercise_modules_of,
    graded_functions,
    parse_cell,
    top_level_names,
)
from lmlab.files import atomic_write

__all__ = ["build", "BuildReport", "make_student_notebook", "teaching_cell_problems"]

BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\b[ \t]*(?P<name>\w+)?.*$")
END_RE = re.compile(r"^[ \t]*#\s*END SOLUTION\b")
CHECK_CALL_RE = re.compile(r"\.(check|progress)\s*\(")
STUDENT_ANSWER_MD = "**Your answer:** ..."


@dataclass
class BuildReport:
    """What `build` wrote: the student notebooks, the solutions manual, the exercises it found, and notes."""

    student_notebooks: list[Path] = field(default_factory=list)
    solutions_manual: Path | None = None
    solution_blocks: dict[str, int] = field(default_factory=dict)  # notebook file name -> blocks cut out
    exercise_modules: dict[str, list[str]] = field(default_factory=dict)  # notebook file name -> ["nb01"]
    notes: list[str] = field(default_factory=list)  # e.g. a teaching cell importing lmlab's implementation

    def __str__(self) -> str:
        lines = [f"Wrote {len(self.student_notebooks)} student notebook(s):"]
        for p in self.student_notebooks:
            lines.append(f"  {p}  ({self.solution_blocks.get(p.name, 0)} solution block(s) cut out)")
        if self.solutions_manual:
            lines.append(f"Solutions manual (do not hand out): {self.solutions_manual}")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Cutting solutions out of a cell


def _stub_for_block(block: list[str], indent: str, name: str | None) -> list[str]:
    label = f"Exercise {name}" if name else "Exercise"
    if indent:
        return [f'{indent}raise NotImplementedError("{label}: write your solution here")']
    names: list[str] = []
    try:
        tree = ast.parse("\n".join(block))
    except SyntaxError:
        tree = None
    for node in tree.body if tree is not None else []:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        else:
            targets = []
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    if not names:
        return [f"# {label}: write your solution here"]
    return [f"{n} = ...  # {label}: your answer here" for n in names]


def _cut_solutions(source: str, where: str) -> tuple[str, int]:
    """Replace every BEGIN/END SOLUTION block of a code cell's source; return (new source, blocks cut)."""
    out: list[str] = []
    lines = source.split("\n")
    i, blocks = 0, 0
    while i < len(lines):
        m = BEGIN_RE.match(lines[i])
        if END_RE.match(lines[i]):
            raise ValueError(f"{where}: '# END SOLUTION' on line {i + 1} without a '# BEGIN SOLUTION' before it")
        if not m:
            out.append(lines[i])
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not END_RE.match(lines[j]):
            if BEGIN_RE.match(lines[j]):
                raise ValueError(f"{where}: '# BEGIN SOLUTION' on line {j + 1} inside another block (line {start + 1})")
            j += 1
        if j == len(lines):
            raise ValueError(f"{where}: '# BEGIN SOLUTION' on line {start + 1} has no '# END SOLUTION'")
        out.extend(_stub_for_block(lines[start + 1 : j], m.group("indent"), m.group("name")))
        blocks += 1
        i = j + 1
    return "\n".join(out), blocks


def _is_exercise_cell(cell: Any) -> bool:
    tags = set(cell.get("metadata", {}).get("tags", []))
    return cell.cell_type == "code" and ("solution" in tags or any(BEGIN_RE.match(x) for x in cell.source.split("\n")))


# ----------------------------------------------------------------------------------------------------
# Graded functions: marked in their exercise cell, never defined in a teaching cell


def teaching_cell_problems(nb: Any, graded: dict[str, GradedFunction], *, name: str = "notebook"
                           ) -> tuple[list[str], list[str]]:
    """(problems, notes) about teaching cells that bind a graded function's name.

    A problem: a teaching cell defines or assigns the name (a learner who deletes the exercise cell would
    pass with it), or imports something other than lmlab's implementation under it. A note: it imports
    lmlab's own implementation (allowed: the checks recognise that implementation and give no points).
    """
    from lmlab.exercises.guards import resolve

    problems, notes = [], []
    for index, cell in enumerate(nb.cells, start=1):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type != "code" or _is_exercise_cell(cell) or "teacher-only" in tags:
            continue
        tree = parse_cell(cell.source)
        for fn, kind in (top_level_names(tree) if tree else {}).items():
            if fn not in graded:
                continue
            where = f"{name}, cell {index}"
            target = _imported_object(tree, fn) if kind == "import" else None
            if target is not None and any(_same(resolve, target, f) for f in graded[fn].forbidden):
                notes.append(f"{where} imports {target} as `{fn}`, the function {graded[fn].key} grades "
                             f"(allowed: the checks recognise lmlab's implementation)")
                continue
            what = f"imports {target} as" if kind == "import" else f"defines ({kind})"
            problems.append(f"{where} {what} `{fn}`, the function exercise {graded[fn].key} grades: a learner who "
                            f"deletes the exercise cell would pass with it. Rename it in the teaching cell "
                            f"(e.g. `my_{fn}`) and in the cells that use it.")
    return problems, notes


def _imported_object(tree: Any, fn: str) -> str | None:
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == fn:
                    return f"{node.module}.{alias.name}"
    return None


def _same(resolve: Any, a: str, b: str) -> bool:
    try:
        return resolve(a) is resolve(b)
    except (ImportError, AttributeError):
        return False


def _mark_exercise_cell(cell: Any, graded: dict[str, GradedFunction], order: int, where: str) -> bool:
    """Mark an exercise cell with the exercise whose function it defines; True if it defines one."""
    tree = parse_cell(cell.source)
    defined = [fn for fn, kind in (top_level_names(tree) if tree else {}).items() if fn in graded and kind == "def"]
    if len(defined) > 1:
        raise ValueError(f"{where} defines {len(defined)} graded functions ({', '.join(defined)}); "
                         f"put each exercise in a cell of its own")
    if not defined:
        return False
    g = graded[defined[0]]
    cell.metadata[EXERCISE_META] = {"exercise": g.key, "function": g.function, "order": order}
    return True


# ----------------------------------------------------------------------------------------------------
# The student notebook


def make_student_notebook(nb: Any, *, name: str = "notebook") -> tuple[Any, int]:
    """The student version of a solution notebook (an nbformat NotebookNode), and the number of blocks cut.

    Raises ValueError, naming the notebook and cell, for unbalanced markers, a `solution` code cell
    without markers, or a teaching cell that defines a graded function (see `teaching_cell_problems`).
    """
    import nbformat

    graded = graded_functions(exercise_modules_of(nb))
    problems, _ = teaching_cell_problems(nb, graded, name=name)
    if problems:
        raise ValueError("; ".join(problems))
    nb = copy.deepcopy(nb)
    cells, total, order = [], 0, 0
    for index, cell in enumerate(nb.cells, start=1):
        tags = set(cell.get("metadata", {}).get("tags", []))
        where = f"{name}, cell {index}"
        if "teacher-only" in tags:
            continue
        cell.get("metadata", {}).pop("execution", None)  # timestamps from nbclient
        cell.get("metadata", {}).pop(EXERCISE_META, None)  # only build marks exercise cells
        if cell.cell_type == "code":
            if _is_exercise_cell(cell) and _mark_exercise_cell(cell, graded, order, where):
                order += 1
            source, blocks = _cut_solutions(cell.source, where)
            if "solution" in tags and blocks == 0:
                raise ValueError(f"{where} is tagged 'solution' but has no '# BEGIN SOLUTION' ... '# END SOLUTION' "
                                 f"block; mark the lines to cut out, or remove the tag")
            total += blocks
            cell.source = source
            if blocks or "solution" in tags or "clear-output" in tags or CHECK_CALL_RE.search(source):
                cell.outputs = []
                cell.execution_count = None
        elif "solution" in tags:
            cell.source = STUDENT_ANSWER_MD
            cell.pop("attachments", None)
            total += 1
        cells.append(cell)
    nb.cells = cells
    nbformat.validate(nb)
    return nb, total


def _notebook_list(notebooks: list[Path] | Path) -> list[Path]:
    items = [notebooks] if isinstance(notebooks, (str, Path)) else list(notebooks)
    found: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found.extend(sorted(p for p in item.glob("*.ipynb")))
        elif item.is_file():
            found.append(item)
        else:
            raise FileNotFoundError(f"no notebook or folder at {item}")
    if not found:
        raise ValueError(f"no .ipynb files in {', '.join(map(str, items)) or 'the empty list'}")
    names = [p.name for p in found]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two notebooks share a file name ({', '.join(dup)}); the student folder needs unique names")
    return found


def build(notebooks: list[Path] | Path, out_dir: Path, *, solutions_manual: bool = True) -> BuildReport:
    """Write student versions of `notebooks` (files, or folders of .ipynb) and optionally a solutions manual.

    Student notebooks go to ``out_dir/student/`` (hand out this folder); the manual to
    ``out_dir/teacher/solutions_manual.md``. Output is deterministic: rebuilding gives identical bytes.
    """
    import nbformat

    paths = _notebook_list(notebooks)
    student_dir = Path(out_dir) / "student"
    report = BuildReport()
    read = []
    for path in paths:
        try:
            read.append((path, nbformat.read(path, as_version=4)))
        except Exception as exc:  # noqa: BLE001 - any read problem is reported with the file name
            raise ValueError(f"{path} is not a readable notebook: {exc}") from exc
    problems = [p for path, nb in read
                for p in teaching_cell_problems(nb, graded_functions(exercise_modules_of(nb)), name=path.name)[0]]
    if problems:  # all of them at once, before anything is written
        raise ValueError("teaching cells define graded functions:\n" + "\n".join(f"  - {p}" for p in problems))
    manual_parts: list[tuple[Path, Any, list[str]]] = []
    students = []
    for path, nb in read:
        mods = exercise_modules_of(nb)
        student, blocks = make_student_notebook(nb, name=path.name)
        report.notes += teaching_cell_problems(nb, graded_functions(mods), name=path.name)[1]
        students.append((student_dir / path.name, student))
        report.solution_blocks[path.name] = blocks
        report.exercise_modules[path.name] = mods
        manual_parts.append((path, nb, mods))
    student_dir.mkdir(parents=True, exist_ok=True)
    for target, student in students:
        _write_if_changed(target, nbformat.writes(student) + "\n")
        report.student_notebooks.append(target)
    if solutions_manual:
        manual = Path(out_dir) / "teacher" / "solutions_manual.md"
        manual.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(manual, _manual_markdown(manual_parts))
        report.solutions_manual = manual
    return report


def _write_if_changed(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return
    atomic_write(path, data)


def _manual_markdown(parts: list[tuple[Path, Any, list[str]]]) -> str:
    from lmlab.exercises import exercise_set

    out = ["# Solutions manual", "",
           "Written by `lmlab course build` from the solution notebooks. For teachers: do not hand this out.", ""]
    for path, nb, mods in parts:
        out += [f"## {path.name}", ""]
        blocks = [(i, c) for i, c in enumerate(nb.cells, start=1)
                  if _is_exercise_cell(c) or "solution" in c.get("metadata", {}).get("tags", [])]
        if blocks:
            out += ["### Solution cells of the notebook", ""]
            for i, cell in blocks:
                lang = "python" if cell.cell_type == "code" else "markdown"
                out += [f"Cell {i}:", "", f"```{lang}", cell.source.rstrip("\n"), "```", ""]
        for mod in mods:
            exs = exercise_set(mod)
            out += [f"### Exercises in `lmlab.exercises.{mod}`: {exs.title}", ""]
            for ex in exs:
                out += [f"#### {ex.name} · {ex.title} ({ex.points:g} points)", "", f"**Task.** {ex.prompt}", "",
                        "**Hints.**", "", *[f"{k}. {h}" for k, h in enumerate(ex.hints, start=1)], "",
                        "**Worked solution.**", "", "```python", ex.solution_code.strip("\n"), "```", "",
                        f"**Why.** {ex.explanation}", ""]
    return "\n".join(out).rstrip("\n") + "\n"
