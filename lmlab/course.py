"""Teaching tools: build student notebooks from the solution notebooks, and grade submitted notebooks.

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

`build(...)` writes ``OUT/student/<name>.ipynb`` for each notebook and, if asked,
``OUT/teacher/solutions_manual.md``. Re-running gives byte-identical files.

`grade(...)` executes each submitted notebook in its own process (``python -m lmlab.course _execute``)
with its own temporary working folder and kernel, under a total time limit after which the whole process
tree (kernel included) is killed. Checks report to it through the ``LMLAB_GRADE_FILE`` JSON lines
(see `lmlab.exercises.core`); the last check of each exercise counts. It writes one CSV row per submission.
It is not a sandbox: submitted code runs with your user's rights, and can forge its check results.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["build", "grade", "add_cli", "BuildReport", "GradeReport", "SubmissionGrade", "make_student_notebook"]

BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\b[ \t]*(?P<name>\w+)?.*$")
END_RE = re.compile(r"^[ \t]*#\s*END SOLUTION\b")
CHECK_CALL_RE = re.compile(r"\.(check|progress)\s*\(")
MODULE_RE = re.compile(r"lmlab\.exercises(?:\.(\w+)|\s+import\s+(\w+))")
STUDENT_ANSWER_MD = "**Your answer:** ..."

# ----------------------------------------------------------------------------------------------------
# Building student notebooks


@dataclass
class BuildReport:
    """What `build` wrote: the student notebooks, the solutions manual, and the exercises it found."""

    student_notebooks: list[Path] = field(default_factory=list)
    solutions_manual: Path | None = None
    solution_blocks: dict[str, int] = field(default_factory=dict)  # notebook file name -> blocks cut out
    exercise_modules: dict[str, list[str]] = field(default_factory=dict)  # notebook file name -> ["nb01"]

    def __str__(self) -> str:
        lines = [f"Wrote {len(self.student_notebooks)} student notebook(s):"]
        for p in self.student_notebooks:
            lines.append(f"  {p}  ({self.solution_blocks.get(p.name, 0)} solution block(s) cut out)")
        if self.solutions_manual:
            lines.append(f"Solutions manual (do not hand out): {self.solutions_manual}")
        return "\n".join(lines)


def _stub_for_block(block: list[str], indent: str, name: str | None) -> list[str]:
    label = f"Exercise {name}" if name else "Exercise"
    if indent:
        return [f'{indent}raise NotImplementedError("{label}: write your solution here")']
    names: list[str] = []
    try:
        tree = ast.parse("\n".join(block))
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            else:
                targets = []
            for t in targets:
                if isinstance(t, ast.Name) and t.id not in names:
                    names.append(t.id)
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


def make_student_notebook(nb: Any, *, name: str = "notebook") -> tuple[Any, int]:
    """The student version of a solution notebook (an nbformat NotebookNode), and the number of blocks cut.

    Raises ValueError, naming the notebook and cell, for unbalanced markers or a `solution` code cell
    without markers.
    """
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    cells = []
    total = 0
    for index, cell in enumerate(nb.cells, start=1):
        tags = set(cell.get("metadata", {}).get("tags", []))
        where = f"{name}, cell {index}"
        if "teacher-only" in tags:
            continue
        cell.get("metadata", {}).pop("execution", None)  # timestamps from nbclient
        if cell.cell_type == "code":
            source, blocks = _cut_solutions(cell.source, where)
            if "solution" in tags and blocks == 0:
                raise ValueError(
                    f"{where} is tagged 'solution' but has no '# BEGIN SOLUTION' ... '# END SOLUTION' block; "
                    f"mark the lines to cut out, or remove the tag"
                )
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


def _exercise_modules(nb: Any) -> list[str]:
    from lmlab.exercises import exercise_set

    mods: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for m in MODULE_RE.finditer(cell.source):
            mod = m.group(1) or m.group(2)
            if mod in mods or mod == "core":
                continue
            try:
                exercise_set(mod)
            except ValueError:
                continue
            mods.append(mod)
    return mods


def build(notebooks: list[Path] | Path, out_dir: Path, *, solutions_manual: bool = True) -> BuildReport:
    """Write student versions of `notebooks` (files, or folders of .ipynb) and optionally a solutions manual.

    Student notebooks go to ``out_dir/student/`` (hand out this folder); the manual to
    ``out_dir/teacher/solutions_manual.md``. Output is deterministic: rebuilding gives identical bytes.
    """
    import nbformat

    paths = _notebook_list(notebooks)
    out_dir = Path(out_dir)
    student_dir = out_dir / "student"
    student_dir.mkdir(parents=True, exist_ok=True)
    report = BuildReport()
    manual_parts: list[tuple[Path, Any, list[str]]] = []
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # noqa: BLE001 - any read problem is reported with the file name
            raise ValueError(f"{path} is not a readable notebook: {exc}") from exc
        student, blocks = make_student_notebook(nb, name=path.name)
        target = student_dir / path.name
        _write_if_changed(target, nbformat.writes(student) + "\n")
        report.student_notebooks.append(target)
        report.solution_blocks[path.name] = blocks
        mods = _exercise_modules(nb)
        report.exercise_modules[path.name] = mods
        manual_parts.append((path, nb, mods))
    if solutions_manual:
        manual = out_dir / "teacher" / "solutions_manual.md"
        manual.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(manual, _manual_markdown(manual_parts))
        report.solutions_manual = manual
    return report


def _write_if_changed(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _manual_markdown(parts: list[tuple[Path, Any, list[str]]]) -> str:
    from lmlab.exercises import exercise_set

    out = [
        "# Solutions manual",
        "",
        "Written by `lmlab course build` from the solution notebooks. For teachers: do not hand this out.",
        "",
    ]
    for path, nb, mods in parts:
        out += [f"## {path.name}", ""]
        blocks = [
            (i, c)
            for i, c in enumerate(nb.cells, start=1)
            if (c.cell_type == "code" and any(BEGIN_RE.match(line) for line in c.source.split("\n")))
            or "solution" in c.get("metadata", {}).get("tags", [])
        ]
        if blocks:
            out += ["### Solution cells of the notebook", ""]
            for i, cell in blocks:
                lang = "python" if cell.cell_type == "code" else "markdown"
                out += [f"Cell {i}:", "", f"```{lang}", cell.source.rstrip("\n"), "```", ""]
        for mod in mods:
            exs = exercise_set(mod)
            out += [f"### Exercises in `lmlab.exercises.{mod}`: {exs.title}", ""]
            for ex in exs:
                out += [
                    f"#### {ex.name} · {ex.title} ({ex.points:g} points)",
                    "",
                    f"**Task.** {ex.prompt}",
                    "",
                    "**Hints.**",
                    "",
                    *[f"{k}. {h}" for k, h in enumerate(ex.hints, start=1)],
                    "",
                    "**Worked solution.**",
                    "",
                    "```python",
                    ex.solution_code.strip("\n"),
                    "```",
                    "",
                    f"**Why.** {ex.explanation}",
                    "",
                ]
    return "\n".join(out).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------------------------------
# Grading submitted notebooks


@dataclass
class SubmissionGrade:
    """One graded submission: one CSV row."""

    file: str  # path relative to the submissions folder
    status: str  # ok | error | timeout | invalid
    score: float
    max_score: float
    points: dict[str, float]  # "nb01.q1" -> points earned
    feedback: str


@dataclass
class GradeReport:
    """What `grade` wrote: the CSV path, its exercise columns, and one `SubmissionGrade` per submission."""

    csv_path: Path
    columns: list[str]
    submissions: list[SubmissionGrade]

    def __str__(self) -> str:
        lines = [f"Graded {len(self.submissions)} submission(s) -> {self.csv_path}"]
        for s in self.submissions:
            lines.append(f"  {s.file}: {s.status}, {s.score:g}/{s.max_score:g}")
        return "\n".join(lines)


def _read_submission(path: Path) -> tuple[Any | None, str]:
    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - invalid JSON, wrong schema, bad encoding: all "invalid"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"not a valid notebook ({type(exc).__name__}: {first[:200]})"
    return nb, ""


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill the executor and every process it started (the kernel runs in a session of its own)."""
    victims = []
    try:
        import psutil  # installed with ipykernel

        victims = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing or the process already gone
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError, OSError):
        proc.kill()
    for v in victims:
        try:
            v.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass


def _run_one(path: Path, timeout: float, cell_timeout: float, executed_dir: Path | None, rel: str) -> dict[str, Any]:
    """Execute one submission in a subprocess; return its status, reason, grade lines and cell errors."""
    work = Path(tempfile.mkdtemp(prefix="lmlab-grade-"))
    try:
        nb_copy = work / "submission.ipynb"
        shutil.copyfile(path, nb_copy)
        grade_file = work / "lmlab_grades.jsonl"
        executed = work / "executed.ipynb"
        env = dict(os.environ)
        env["LMLAB_GRADE_FILE"] = str(grade_file)
        env["LMLAB_PROGRESS"] = "0"
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", "lmlab.course", "_execute", str(nb_copy), "--out", str(executed),
               "--cell-timeout", str(cell_timeout)]
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True, text=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            stdout, stderr = proc.communicate()
            timed_out = True
        summary: dict[str, Any] = {}
        for line in reversed((stdout or "").splitlines()):
            if line.startswith("{"):
                try:
                    summary = json.loads(line)
                    break
                except json.JSONDecodeError:
                    continue
        if timed_out:
            status, reason = "timeout", f"killed after the total time limit of {timeout:g} s"
        elif summary.get("status") == "timeout":
            status, reason = "timeout", summary.get("reason", "a cell timed out")
        elif proc.returncode != 0 or summary.get("status") == "error":
            tail = (stderr or "").strip().splitlines()[-1:] or ["no message"]
            status, reason = "error", summary.get("reason") or f"the executor failed ({tail[0][:200]})"
        elif summary.get("cell_errors"):
            status, reason = "error", ""
        else:
            status, reason = "ok", ""
        lines = []
        if grade_file.is_file():
            for raw in grade_file.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        if executed_dir is not None and executed.is_file():
            target = executed_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(executed, target)
        return {"status": status, "reason": reason, "lines": lines, "cell_errors": summary.get("cell_errors", [])}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def grade(
    submissions_dir: Path,
    out_csv: Path,
    *,
    timeout: float = 120,
    cell_timeout: float | None = None,
    exercise_modules: list[str] | None = None,
    executed_dir: Path | None = None,
    jobs: int = 1,
    partial_credit: bool = False,
) -> GradeReport:
    """Execute every notebook under `submissions_dir` and write one CSV row per submission to `out_csv`.

    `timeout` is the total time limit per notebook in seconds (kernel start included); `cell_timeout`
    (default: `timeout`) the limit per cell. `exercise_modules` (e.g. ``["nb01"]``) fixes the exercise
    columns; by default they are the exercise modules the submissions import. `executed_dir`, if given,
    receives the executed notebooks (with the learners' feedback). `jobs` notebooks run at once.

    CSV columns: file, status (ok / error / timeout / invalid), score, max_score, one column per exercise
    ("nb01.q1": points earned), feedback. Exercises whose check never ran count 0 ("check not run").
    status "error" with the notebook run to the end (some cell raised) keeps the points of the checks that
    passed; a notebook that timed out, crashed its kernel or is invalid scores 0, unless
    `partial_credit=True`, which keeps the checks that passed before it stopped (the feedback lists them).
    """
    from lmlab.exercises import exercise_set

    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise FileNotFoundError(f"submissions folder {submissions_dir} does not exist")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout}")
    paths = sorted(p for p in submissions_dir.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    parsed = {p: _read_submission(p) for p in paths}
    if exercise_modules is None:
        exercise_modules = []
        for nb, _ in parsed.values():
            if nb is not None:
                exercise_modules += [m for m in _exercise_modules(nb) if m not in exercise_modules]
        exercise_modules.sort()
    exercises = [(mod, ex) for mod in exercise_modules for ex in exercise_set(mod)]
    columns = [f"{mod}.{ex.name}" for mod, ex in exercises]
    max_score = sum(ex.points for _, ex in exercises)
    per_cell = float(cell_timeout if cell_timeout is not None else timeout)

    def work(path: Path) -> dict[str, Any]:
        nb, why = parsed[path]
        if nb is None:
            return {"status": "invalid", "reason": why, "lines": [], "cell_errors": []}
        return _run_one(path, timeout, per_cell, executed_dir, str(path.relative_to(submissions_dir)))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(pool.map(work, paths))

    rows: list[SubmissionGrade] = []
    for path, outcome in zip(paths, outcomes):
        last: dict[str, dict[str, Any]] = {}
        for line in outcome["lines"]:
            last[f"{line.get('notebook')}.{line.get('exercise')}"] = line
        points: dict[str, float] = {}
        feedback: list[str] = []
        if outcome["reason"]:
            feedback.append(f"{outcome['status']}: {outcome['reason']}")
        for err in outcome["cell_errors"][:5]:
            feedback.append(f"cell {err['cell']} raised {err['ename']}: {err['evalue'][:200]}")
        for (mod, ex), col in zip(exercises, columns):
            line = last.get(col)
            if line is None:
                points[col] = 0.0
                if outcome["status"] != "invalid":
                    feedback.append(f"{col}: check not run")
                continue
            earned = float(line.get("points", 0.0)) if line.get("passed") else 0.0
            points[col] = min(earned, ex.points)
            if not line.get("passed"):
                feedback.append(f"{col}: {line.get('summary') or _first_reason(line.get('message', ''))}")
        if outcome["status"] in ("timeout", "invalid") or (outcome["status"] == "error" and outcome["reason"]):
            passed_before = [c for c, p in points.items() if p > 0]
            if passed_before and not partial_credit:
                feedback.append("passed before it stopped (not counted): " + ", ".join(passed_before))
            if not partial_credit:
                points = {c: 0.0 for c in points}
        score = sum(points.values())
        rows.append(SubmissionGrade(str(path.relative_to(submissions_dir)), outcome["status"], score,
                                    max_score, points, " | ".join(feedback)))

    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "status", "score", "max_score", *columns, "feedback"])
        for r in rows:
            writer.writerow([r.file, r.status, f"{r.score:g}", f"{r.max_score:g}",
                             *[f"{r.points[c]:g}" for c in columns], r.feedback])
    return GradeReport(out_csv, columns, rows)


def _first_reason(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) >= 2 and lines[0].rstrip().endswith("not yet right."):
        return lines[1][:300]
    return (lines[0] if lines else "failed")[:300]


# ----------------------------------------------------------------------------------------------------
# The executor that runs in its own process: python -m lmlab.course _execute NOTEBOOK --out EXECUTED


def _execute_main(argv: list[str]) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    parser = argparse.ArgumentParser(prog="python -m lmlab.course _execute")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cell-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    nb = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(nb, timeout=args.cell_timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(args.notebook.parent)}})
    status, reason, code = "ok", "", 0
    try:
        client.execute()
    except CellTimeoutError:
        status, reason, code = "timeout", f"a cell ran longer than the cell time limit of {args.cell_timeout:g} s", 0
    except DeadKernelError as exc:
        status, reason, code = "error", f"the kernel died ({exc})", 0
    except Exception as exc:  # noqa: BLE001 - report anything else as an error of this submission
        status, reason, code = "error", f"{type(exc).__name__}: {str(exc)[:200]}", 0
    cell_errors = []
    for index, cell in enumerate(nb.cells, start=1):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                cell_errors.append({"cell": index, "ename": out.get("ename", ""), "evalue": out.get("evalue", "")})
    nbformat.write(nb, args.out)
    print(json.dumps({"status": status, "reason": reason, "cell_errors": cell_errors}))
    return code


# ----------------------------------------------------------------------------------------------------
# Command line: `lmlab course build` and `lmlab course grade`


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``course build`` and ``course grade`` on an argparse subparsers object.

    Each leaf parser sets ``func`` (call ``args.func(args)``; it returns an exit code).
    """
    course = subparsers.add_parser("course", help="build student notebooks and grade submissions",
                                   description="Teaching tools: student notebooks and grading (docs/teachers.md).")
    sub = course.add_subparsers(dest="course_command", required=True)

    b = sub.add_parser("build", help="write student notebooks (and a solutions manual) from solution notebooks")
    b.add_argument("notebooks", nargs="*", type=Path, default=[Path("notebooks")],
                   help="solution notebooks or folders of them (default: notebooks/)")
    b.add_argument("--out", type=Path, required=True, help="output folder: OUT/student/, OUT/teacher/")
    b.add_argument("--solutions-manual", action="store_true",
                   help="also write OUT/teacher/solutions_manual.md")
    b.set_defaults(func=_cli_build)

    g = sub.add_parser("grade", help="execute submitted notebooks and write a grades CSV")
    g.add_argument("submissions", type=Path, help="folder of submitted .ipynb files (searched recursively)")
    g.add_argument("--out", type=Path, required=True, help="CSV file to write")
    g.add_argument("--timeout", type=float, default=120.0, help="total seconds per notebook (default 120)")
    g.add_argument("--cell-timeout", type=float, default=None, help="seconds per cell (default: --timeout)")
    g.add_argument("--exercises", nargs="*", default=None, help="exercise modules for the columns, e.g. nb01")
    g.add_argument("--executed", type=Path, default=None, help="folder to keep the executed notebooks in")
    g.add_argument("--jobs", type=int, default=1, help="notebooks to run at once (default 1)")
    g.add_argument("--partial-credit", action="store_true",
                   help="keep the checks passed before a timeout or crash (default: such notebooks score 0)")
    g.set_defaults(func=_cli_grade)
    return course


def _cli_build(args: argparse.Namespace) -> int:
    try:
        report = build(args.notebooks, args.out, solutions_manual=args.solutions_manual)
    except (ValueError, FileNotFoundError) as exc:
        print(f"lmlab course build: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0


def _cli_grade(args: argparse.Namespace) -> int:
    start = time.monotonic()
    try:
        report = grade(args.submissions, args.out, timeout=args.timeout, cell_timeout=args.cell_timeout,
                       exercise_modules=args.exercises, executed_dir=args.executed, jobs=args.jobs,
                       partial_credit=args.partial_credit)
    except (ValueError, FileNotFoundError) as exc:
        print(f"lmlab course grade: {exc}", file=sys.stderr)
        return 2
    print(report)
    print(f"({time.monotonic() - start:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lmlab.course build|grade ...`` (the same as ``lmlab course ...``)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_execute"]:
        return _execute_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lmlab.course")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_cli(subparsers)
    args = parser.parse_args(["course", *argv])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
