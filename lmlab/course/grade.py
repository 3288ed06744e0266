"""Grading a folder of submitted notebooks (`lmlab course grade`): graded mode, nothing trusted from the kernel.

For each submission, the grader:

1. reads every submission into its own memory before anything runs (a submission that changes another
   one on disk changes nothing: the grade is for the copy read first, and the change is reported);
2. runs the notebook top to bottom in a fresh kernel, in a `Sandbox` (empty folder, clean environment,
   session of its own, everything killed at the end), for the teacher's information only: whether it
   runs, which cells raise, the executed notebook (``executed_dir``);
3. takes the submission's import statements and its exercise cells (found by the metadata
   `lmlab course build` wrote, see `lmlab.course.extract`), runs them in a fresh worker process in
   another `Sandbox`, and calls the functions they define on the public cases and on hidden cases made
   from the teacher's `seed`. The checkers, references and hidden cases stay in the grader; the worker
   gets the inputs of each call and sends back plain values (`lmlab.course.remote`);
4. writes the grades CSV, a details CSV and a feedback file per student (`lmlab.course.report`).

Nothing the learner's code writes (files, the old grade file, the kernel's output) is read for a grade.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import stat
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from lmlab.course.extract import extract
from lmlab.course.remote import GRACE, RemoteFunction, WorkerLost, WorkerSession
from lmlab.course.report import ExerciseGrade, GradeReport, SubmissionGrade, student_of, write_reports
from lmlab.course.sandbox import DockerSandbox, Sandbox, Supervision, docker_problem, stage_package
from lmlab.exercises.exercise import CaseResult, Exercise

__all__ = ["grade", "GradeReport", "SubmissionGrade"]

MAX_NOTEBOOK_BYTES = 100 * 2**20  # an executed notebook larger than this is not kept


def grade(submissions_dir: Path, out_csv: Path, *, seed: int | None = None, timeout: float = 120,
          cell_timeout: float | None = None, exercise_modules: list[str] | None = None,
          executed_dir: Path | None = None, feedback_dir: Path | None = None, jobs: int = 1,
          partial_credit: bool = False, run_notebooks: bool = True, sandbox: str = "process",
          docker_image: str = "lmlab-grader", pass_env: tuple[str, ...] = ("LMLAB_DATA_DIR",)) -> GradeReport:
    """Grade every notebook under `submissions_dir`; write `out_csv` (one row per student) and the feedback.

    `seed` makes the hidden cases (keep it to regrade identically; None draws one, see the report).
    `timeout` is the total time to run one notebook, `cell_timeout` (default: `timeout`) the limit per
    cell, also for running an exercise cell on its own. `exercise_modules` fixes the exercise columns:
    ``["nb01"]`` for all of a module's exercises, ``["nb01.q1", "nb01.q3"]`` for some (default: all the
    exercises of the modules the submissions import). An exercise earns its points when
    every case passes, or a share of them per case passed with `partial_credit`. `run_notebooks=False`
    skips running the notebooks (faster; the status column is then "not run"). `sandbox` is "process" or
    "docker" (`docker_image` must hold Python, torch and nbclient); `pass_env` names the only
    environment variables the learners' code sees (besides PATH and the locale).
    """
    from lmlab.exercises.graded import GRADED_ENV

    submissions_dir = Path(submissions_dir)
    if os.environ.get(GRADED_ENV):
        raise ValueError(f"{GRADED_ENV} is set in the grader's own environment; unset it (it is for the processes "
                         f"that run learners' code)")
    if not submissions_dir.is_dir():
        raise FileNotFoundError(f"submissions folder {submissions_dir} does not exist")
    if timeout <= 0 or (cell_timeout is not None and cell_timeout <= 0):
        raise ValueError(f"time limits must be positive seconds, got {timeout} and {cell_timeout}")
    if sandbox not in ("process", "docker"):
        raise ValueError(f"sandbox must be 'process' or 'docker', got {sandbox!r}")
    if sandbox == "docker" and (problem := docker_problem()) is not None:
        raise ValueError(f"--sandbox docker cannot be used: {problem}. Use --sandbox process, or start docker.")
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    paths = sorted(p for p in submissions_dir.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    copies = {p: _read_bytes(p) for p in paths}  # private copies, before anything runs
    parsed = {p: _parse(data) for p, data in copies.items()}
    if exercise_modules is None:
        from lmlab.course.cells import exercise_modules_of

        exercise_modules = sorted({m for nb, _ in parsed.values() if nb is not None for m in exercise_modules_of(nb)})
    exercises = _columns(exercise_modules)
    settings = dict(exercises=exercises, seed=seed, timeout=float(timeout), run_notebooks=run_notebooks,
                    cell_timeout=float(cell_timeout if cell_timeout is not None else timeout),
                    partial_credit=partial_credit, executed_dir=executed_dir)
    with tempfile.TemporaryDirectory(prefix="lmlab-grader-") as private, Supervision() as supervision:
        package = stage_package(Path(private) / "pkg")
        if sandbox == "docker":
            make = partial(DockerSandbox, supervision, package, docker_image, tuple(pass_env))
        else:
            make = partial(Sandbox, supervision, package, tuple(pass_env))
        work = partial(_grade_one, make_sandbox=make, submissions_dir=submissions_dir, **settings)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            rows = list(pool.map(lambda p: work(p, copies[p], *parsed[p]), paths))
    out_csv = Path(out_csv)
    feedback = Path(feedback_dir) if feedback_dir is not None else out_csv.parent / "feedback"
    for path, row in zip(paths, rows):
        if _read_bytes(path) != copies[path]:
            saved = feedback / "graded-copies" / row.file
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_bytes(copies[path])
            row.notes.append(f"the file changed on disk while the grader ran; the grade is for the copy read before "
                             f"any notebook ran, saved as {saved}")
    report = GradeReport(out_csv, out_csv.with_name(out_csv.stem + "_details.csv"), feedback,
                         [key for key, _ in exercises], rows, seed)
    write_reports(report)
    return report


def _columns(items: list[str]) -> list[tuple[str, Exercise]]:
    """The graded exercises: every exercise of a module ("nb01"), or one ("nb01.q3")."""
    from lmlab.exercises import exercise_set

    out = []
    for item in items:
        module, _, name = item.partition(".")
        exercises = exercise_set(module)
        if name and name not in exercises.exercises:
            raise ValueError(f"no exercise {item}; {module} has {', '.join(exercises.exercises)}")
        out += [(f"{module}.{ex.name}", ex) for ex in exercises if not name or ex.name == name]
    return out


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _parse(data: bytes) -> tuple[Any | None, str]:
    import nbformat

    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - invalid JSON, wrong schema, bad encoding: all "invalid"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"not a valid notebook ({type(exc).__name__}: {first[:200]})"
    return nb, ""


def _grade_one(path: Path, data: bytes, nb: Any, why: str, *, make_sandbox: Any, submissions_dir: Path,
               exercises: list[tuple[str, Exercise]], seed: int, timeout: float, cell_timeout: float,
               run_notebooks: bool, partial_credit: bool, executed_dir: Path | None) -> SubmissionGrade:
    rel = path.relative_to(submissions_dir).as_posix()
    sub = SubmissionGrade(rel, student_of(rel), "invalid" if nb is None else "not run", why)
    if nb is None:
        sub.exercises = {key: ExerciseGrade(key, ex.title, 0.0, ex.points, problem="the notebook could not be read")
                         for key, ex in exercises}
        return sub
    if run_notebooks:
        executed = _run_notebook(sub, data, make_sandbox, timeout, cell_timeout)
        if executed is not None and executed_dir is not None:
            target = Path(executed_dir) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(executed)
    sub.exercises = _grade_exercises(nb, exercises, make_sandbox, seed, cell_timeout, partial_credit)
    return sub


# ----------------------------------------------------------------------------------------------------
# Running the notebook (for information)


def _run_notebook(sub: SubmissionGrade, data: bytes, make_sandbox: Any, timeout: float, cell_timeout: float
                  ) -> bytes | None:
    """Run the notebook in a sandbox; set the submission's status, reason and cell errors; the executed bytes."""
    box = make_sandbox()
    try:
        (box.dir / "submission.ipynb").write_bytes(data)
        proc = box.start(["-m", "lmlab.course.execute", "submission.ipynb", "--out", "executed.ipynb",
                          "--cell-timeout", str(cell_timeout)], stdout=subprocess.DEVNULL)
        deadline, code = time.monotonic() + timeout, None
        while code is None and time.monotonic() < deadline:
            try:
                code = proc.wait(min(0.5, max(0.01, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                box.note_descendants()
        box.kill()  # whatever it left running, detached or not
        executed = _read_regular_file(box.dir / "executed.ipynb")
    finally:
        box.close()
    nb, _ = _parse(executed) if executed is not None else (None, "")
    errors = [f"cell {i} raised {o.get('ename', '')}: {str(o.get('evalue', ''))[:200]}"
              for i, cell in enumerate(nb.cells if nb is not None else [], start=1) if cell.cell_type == "code"
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if code is None:
        sub.status, sub.reason = "timeout", f"killed after the total time limit of {timeout:g} s"
    elif code == 3:
        sub.status, sub.reason = "timeout", f"a cell ran longer than the cell time limit of {cell_timeout:g} s"
    elif code != 0 or nb is None:
        sub.status, sub.reason = "error", "the kernel died or the notebook could not be run"
    else:
        sub.status = "error" if errors else "ok"
    sub.cell_errors = errors
    return executed if nb is not None else None


def _read_regular_file(path: Path) -> bytes | None:
    """The bytes of a plain file written by the learner's run: no link, one name, not too large."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > MAX_NOTEBOOK_BYTES:
            return None
        return f.read(MAX_NOTEBOOK_BYTES + 1)


# ----------------------------------------------------------------------------------------------------
# Grading the exercise functions


def _grade_exercises(nb: Any, exercises: list[tuple[str, Exercise]], make_sandbox: Any, seed: int,
                     cell_timeout: float, partial_credit: bool) -> dict[str, ExerciseGrade]:
    extraction = extract(nb, [(key, ex.function_name) for key, ex in exercises])
    session = WorkerSession(make_sandbox)
    try:
        for statement in extraction.imports:  # failures do not matter until a function needs the name
            _try(session, "exec", {"label": "an import", "source": statement, "timeout": cell_timeout}, cell_timeout)
        for cell in sorted((c for c in extraction.cells.values() if not c.problem), key=lambda c: c.index or 0):
            _run_exercise_cell(session, cell, cell_timeout)
        grades = {}
        for key, ex in exercises:
            cell = extraction.cells[key]
            if cell.problem:
                grades[key] = ExerciseGrade(key, ex.title, 0.0, ex.points, problem=cell.problem)
                continue
            results = _run_cases(ex, RemoteFunction(session, key, ex.function_name), seed)
            share = sum(r.passed for r in results) / len(results)
            points = ex.points * share if partial_credit else (ex.points if share == 1 else 0.0)
            grades[key] = ExerciseGrade(key, ex.title, round(points, 4), ex.points, results)
        return grades
    finally:
        session.stop()


def _try(session: WorkerSession, command: str, payload: dict, timeout: float) -> dict:
    try:
        return session.request(command, payload, timeout + GRACE, remember=True)
    except WorkerLost as lost:
        return {"ok": False, "lost": lost.kind, "message": str(lost)}


def _run_exercise_cell(session: WorkerSession, cell: Any, cell_timeout: float) -> None:
    """Run an exercise cell in the worker and take its function; set `cell.problem` if that fails."""
    reply = _try(session, "exec", {"label": f"cell {cell.index}", "source": cell.source, "timeout": cell_timeout},
                 cell_timeout)
    if reply.get("lost"):  # not in the session's log: a restarted worker does not run it again
        cell.problem = f"its cell (cell {cell.index}) did not finish within {cell_timeout:g} s when run on its own"
        return
    bound = _try(session, "bind", {"key": cell.key, "name": cell.function}, cell_timeout)
    if not bound.get("ok"):
        raised = "" if reply.get("ok") else \
            f" (running the cell with the notebook's imports only: {reply.get('message')})"
        cell.problem = str(bound.get("message", "its function could not be found")).rstrip(".") + raised


def _run_cases(ex: Exercise, fn: RemoteFunction, seed: int) -> list[CaseResult]:
    """The public and hidden cases one by one; after a case runs out of time the rest are not run."""
    public, hidden = list(ex.cases), ex.hidden_cases(seed)
    labels = [f"public case {i}" for i in range(1, len(public) + 1)]
    labels += [f"hidden case {i}" for i in range(1, len(hidden) + 1)]
    results: list[CaseResult] = []
    for label, case in zip(labels, public + hidden):
        if results and results[-1].kind in ("TimeLimitExceeded", "skipped"):
            results.append(CaseResult(label, False, "not run: an earlier case ran out of time", kind="skipped"))
            continue
        results += ex.run_cases(fn, [case], labels=[label])
    return results
