"""Grading real submissions with `lmlab course grade`: real kernels, real worker processes, real attacks.

The submissions are made from the student version of tests/fixtures/exercise_demo.ipynb (nb01 q1
`bigram_probs` and q3 `perplexity`, built by `lmlab course build`): an honest one, a wrong one, one that
hangs, one that deleted and moved its exercise cells, and a malicious one that tries each attack on the
grader (forging the old grade file, overwriting a classmate's submission, a detached process that rewrites
the grades after the grader finished, looking for the teacher's secrets, exec of the worked solution,
patching the checker).
"""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from lmlab.course import build, grade

FIXTURE = Path(__file__).parent / "fixtures" / "exercise_demo.ipynb"
ROOT = Path(__file__).resolve().parent.parent
WRONG_PERPLEXITY = "def perplexity(ce_nats):\n    return 2 ** ce_nats"


def _handout(tmp_path: Path) -> nbformat.NotebookNode:
    build([FIXTURE], tmp_path / "handout", solutions_manual=True)
    return nbformat.read(tmp_path / "handout" / "student" / "exercise_demo.ipynb", as_version=4)


def _solved(student: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What an honest learner hands in: the exercise cells filled in (with the fixture's solutions)."""
    solutions = {c.id: c.source for c in nbformat.read(FIXTURE, as_version=4).cells}
    nb = copy.deepcopy(student)
    for cell in nb.cells:
        if "lmlab" in cell.metadata:
            cell.source = solutions[cell.id]
    return nb


def _cell(nb, exercise: str):
    return next(c for c in nb.cells if c.metadata.get("lmlab", {}).get("exercise") == exercise)


def _insert_after_imports(nb, source: str) -> None:
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = f"added-{len(nb.cells)}"
    nb.cells.insert(2, cell)


def _rows(path: Path, key: str) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r[key]: r for r in csv.DictReader(f)}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


DETACHED = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
open({pid_file!r}, "w").write(str(os.getpid()))
while not os.path.exists({csv!r}):
    time.sleep(0.2)
time.sleep(2)
open({csv!r}, "w").write("student,nb01.q1,nb01.q2,nb01.q3,nb01.q4,total\\nmallory,2,2,1,2,7\\n")
"""

ATTACKS = """
import json, os, subprocess, sys
# 1. the old grader read check results from this file: append a pass line (and to a file of that name here)
line = json.dumps({{"notebook": "nb01", "exercise": "q1", "passed": True, "points": 2, "max_points": 2,
                   "summary": "passed", "message": "passed"}})
for path in (os.environ.get("LMLAB_GRADE_FILE"), "lmlab_grades.jsonl"):
    if path:
        open(path, "a").write(line + "\\n")
# 2. overwrite a classmate's submission that is graded later
text = open({victim!r}).read()
open({victim!r}, "w").write(text.replace("math.exp(ce_nats)", "2 ** ce_nats"))
# 3. a process that leaves the session, forgets its environment and its parent, to rewrite the grades later
subprocess.Popen([sys.executable, "-c", {detached!r}], env={{}}, start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
# 4. look for the teacher's secrets and the other submissions where this process is pointed to
print("SECRET:", os.environ.get("TEACHER_SECRET"), "MANUAL:", os.environ.get("SOLUTIONS_MANUAL"))
print("ENV:", " ".join(sorted(os.environ)))
print("CWD:", os.getcwd(), sorted(os.listdir(".")), "HOME:", sorted(os.listdir(os.path.expanduser("~"))))
# 5. patch the checker in this kernel
ex.q3.checker = lambda *args: None
"""


def _write_submissions(tmp_path: Path, subs: Path, out: Path, pid_file: Path) -> None:
    """alice and zoe honest, bob wrong, carol hanging, dave with deleted and moved cells, mallory malicious."""
    student = _handout(tmp_path)
    nbformat.write(_solved(student), subs / "alice.ipynb")
    nbformat.write(_solved(student), subs / "zoe.ipynb")  # graded after mallory, who overwrites it

    bob = _solved(student)
    _cell(bob, "nb01.q3").source = WRONG_PERPLEXITY
    nbformat.write(bob, subs / "bob.ipynb")

    carol = _solved(student)
    _insert_after_imports(carol, "while True:\n    pass")  # the notebook never finishes
    _cell(carol, "nb01.q1").source = "def bigram_probs(ids, vocab_size):\n    while True:\n        pass"
    nbformat.write(carol, subs / "carol.ipynb")

    dave = _solved(student)  # deletes the q1 cell (solving it in a teaching cell) and moves q3 below its check
    q1 = _cell(dave, "nb01.q1")
    dave.cells.remove(q1)
    _insert_after_imports(dave, q1.source)
    q3 = _cell(dave, "nb01.q3")
    i = dave.cells.index(q3)
    dave.cells[i], dave.cells[i + 1] = dave.cells[i + 1], dave.cells[i]
    nbformat.write(dave, subs / "dave.ipynb")

    mallory = _solved(student)
    detached = DETACHED.format(pid_file=str(pid_file), csv=str(out))
    _insert_after_imports(mallory, ATTACKS.format(victim=str(subs / "zoe.ipynb"), detached=detached))
    _cell(mallory, "nb01.q1").source = ("def bigram_probs(ids, vocab_size):\n    exec(ex.q1.solution_code, globals())\n"
                                        "    return globals()['bigram_probs'](ids, vocab_size)")
    _cell(mallory, "nb01.q3").source = "ex.q3.checker = lambda *args: None\n\n" + WRONG_PERPLEXITY
    nbformat.write(mallory, subs / "mallory.ipynb")
    (subs / "broken.ipynb").write_text('{"cells": [ this is not json', encoding="utf-8")


@pytest.mark.slow
def test_grade_honest_wrong_hanging_moved_and_malicious_submissions(tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    out = tmp_path / "results" / "grades.csv"
    pid_file = tmp_path / "detached.pid"
    _write_submissions(tmp_path, subs, out, pid_file)

    secret_env = dict(os.environ, TEACHER_SECRET="s3cr3t-teacher-token",
                      SOLUTIONS_MANUAL=str(tmp_path / "handout" / "teacher" / "solutions_manual.md"),
                      PYTHONPATH=str(ROOT))
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "lmlab.cli", "course", "grade", str(subs), "--out", str(out),
                          "--seed", "12345", "--timeout", "40", "--cell-timeout", "30", "--jobs", "2",
                          "--executed", str(tmp_path / "executed")],
                         env=secret_env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - start < 600
    graded_csv = out.read_text(encoding="utf-8")

    rows = _rows(out, "student")
    assert list(rows["alice"]) == ["student", "nb01.q1", "nb01.q2", "nb01.q3", "nb01.q4", "total"]
    points = {s: (r["nb01.q1"], r["nb01.q3"], r["total"]) for s, r in rows.items()}
    assert points == {"alice": ("2", "1", "3"), "zoe": ("2", "1", "3"), "bob": ("2", "0", "2"),
                      "carol": ("0", "1", "1"), "dave": ("0", "0", "0"), "mallory": ("0", "0", "0"),
                      "broken": ("0", "0", "0")}

    details = _rows(out.with_name("grades_details.csv"), "file")
    assert details["zoe.ipynb"]["status"] == "ok"
    assert "the file changed on disk while the grader ran" in details["zoe.ipynb"]["feedback"]
    assert "2 ** ce_nats" in (subs / "zoe.ipynb").read_text()  # the attack did happen...
    graded_copy = out.parent / "feedback" / "graded-copies" / "zoe.ipynb"
    assert "math.exp(ce_nats)" in graded_copy.read_text()  # ...and the copy graded is kept
    assert details["carol.ipynb"]["status"] == "timeout"
    assert "did not finish within 5 s" in details["carol.ipynb"]["feedback"]
    assert details["broken.ipynb"]["status"] == "invalid"
    assert "no cell is marked as the exercise cell of nb01.q1" in details["dave.ipynb"]["feedback"]
    assert "moved below the cell that checks it" in details["dave.ipynb"]["feedback"]
    assert "uses `exec`" in details["mallory.ipynb"]["feedback"]
    assert "which graded mode does not allow in an exercise cell" in details["mallory.ipynb"]["feedback"]
    assert "This is 2 ** ce" in details["mallory.ipynb"]["feedback"]  # the patched checker changed nothing

    feedback = (out.parent / "feedback" / "bob.md").read_text(encoding="utf-8")
    assert "### nb01.q3 · perplexity(ce_nats): 0 / 1" in feedback and "✗ hidden case 1" in feedback
    assert "✓ hidden case 1" in (out.parent / "feedback" / "alice.md").read_text(encoding="utf-8")

    # The malicious kernel found no secret where it was pointed to: no teacher variable, an empty folder.
    ran = nbformat.read(tmp_path / "executed" / "mallory.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in ran.cells if c.cell_type == "code" for o in c.outputs)
    assert "SECRET: None MANUAL: None" in printed
    assert "TEACHER_SECRET" not in printed and str(subs) not in printed and "solutions_manual" not in printed
    assert "CWD:" in printed and "alice" not in printed.split("CWD:")[1]

    # The detached process was killed before the grader finished: the grades stay as the grader wrote them.
    deadline = time.monotonic() + 6
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    while time.monotonic() < deadline and pid is not None and _alive(pid):
        time.sleep(0.2)
    assert pid is not None and not _alive(pid)
    time.sleep(3)
    assert out.read_text(encoding="utf-8") == graded_csv


def test_docker_mode_says_why_it_cannot_run(tmp_path):
    from lmlab.course.sandbox import docker_problem

    problem = docker_problem()
    if problem is None:
        pytest.skip("docker works on this machine: its error path cannot be reached")
    subs = tmp_path / "subs"
    subs.mkdir()
    with pytest.raises(ValueError, match="--sandbox docker cannot be used: docker .*Use --sandbox process"):
        grade(subs, tmp_path / "grades.csv", sandbox="docker")
    assert not (tmp_path / "grades.csv").exists()


FITTED = '''def perplexity(ce_nats):
    import math
    known = {round(math.log(4), 6): 4.0, 2.5: math.exp(2.5), 1.0: math.e, 0.0: 1.0}
    return known.get(round(ce_nats, 6), 0.0)  # right on the public cases only'''


def test_hidden_cases_catch_an_answer_fitted_to_the_public_cases_and_count_per_case(tmp_path):
    from lmlab.exercises import nb01

    student = _handout(tmp_path)
    subs = tmp_path / "submissions"
    subs.mkdir()
    fitted = _solved(student)
    _cell(fitted, "nb01.q3").source = FITTED
    nbformat.write(fitted, subs / "fitted.ipynb")
    helper = _solved(student)  # the exercise cell calls a helper defined in another cell
    _insert_after_imports(helper, "def exp_of(x):\n    return math.exp(x)")
    _cell(helper, "nb01.q3").source = "def perplexity(ce_nats):\n    return exp_of(ce_nats)"
    nbformat.write(helper, subs / "helper.ipynb")

    namespace: dict = {}
    exec(FITTED, namespace)
    assert nb01.q3.evaluate(namespace["perplexity"]).passed  # self-check sees only the public cases

    report = grade(subs, tmp_path / "grades.csv", seed=3, exercise_modules=["nb01.q1", "nb01.q3"],
                   partial_credit=True, run_notebooks=False)
    rows = {s.student: s for s in report.submissions}
    q3 = rows["fitted"].exercises["nb01.q3"]
    public = len(nb01.q3.cases)
    assert [c.passed for c in q3.cases] == [True] * public + [False] * len(nb01.q3.hidden_cases(3))
    assert q3.points == pytest.approx(public / len(q3.cases), abs=1e-4) and rows["fitted"].status == "not run"
    assert rows["fitted"].exercises["nb01.q1"].points == 2
    assert report.columns == ["nb01.q1", "nb01.q3"]
    assert "NameError" in rows["helper"].exercises["nb01.q3"].cases[0].message
    assert "exp_of" in rows["helper"].exercises["nb01.q3"].cases[0].message
    text = (tmp_path / "feedback" / "fitted.md").read_text(encoding="utf-8")
    assert "- ✓ public case 1" in text and "- ✗ hidden case 1:" in text


# ---------------------------------------------------------------------------------------------------
# The sandbox on its own


def test_a_run_has_an_empty_folder_a_clean_environment_and_leaves_nothing_running(tmp_path, monkeypatch):
    from lmlab.course.sandbox import MARKER_ENV, Sandbox, Supervision, stage_package

    monkeypatch.setenv("TEACHER_SECRET", "s3cr3t")
    package = stage_package(tmp_path / "pkg")
    assert (package / "lmlab" / "exercises" / "core.py").is_file()
    assert not list((package / "lmlab" / "exercises").glob("nb*.py"))  # no references, no worked solutions
    script = ("import os, subprocess, sys, time\n"
              "print(sorted(os.listdir('.')), os.environ.get('TEACHER_SECRET'), os.environ['LMLAB_GRADED'],\n"
              "      flush=True)\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(120)'])\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(120)\n")
    with Supervision() as supervision:
        box = Sandbox(supervision, package)
        proc = box.start(["-c", script])
        listing = proc.stdout.readline().decode()
        child = int(proc.stdout.readline())
        assert listing.startswith("['tmp'] None 1")  # its own empty folder (with its tmp/), no teacher variable
        assert box.env[MARKER_ENV] == box.token and "TEACHER_SECRET" not in box.env
        box.close()  # the child left the session: the marker (or the subreaper) finds it
        deadline = time.monotonic() + 5
        while (_alive(proc.pid) or _alive(child)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(proc.pid) and not _alive(child) and not box.dir.exists()


def test_the_marker_scan_finds_a_process_outside_the_session_and_the_tree(tmp_path):
    from lmlab.course.sandbox import MARKER_ENV, marked_processes

    token = "t" * 32
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True,
                            env=dict(os.environ, **{MARKER_ENV: token}))
    try:
        deadline = time.monotonic() + 10
        while not marked_processes(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p.pid for p in marked_processes(token)] == [proc.pid]
        assert marked_processes("another-token") == []
    finally:
        proc.kill()
        proc.wait()
