"""Teaching tools (lmlab.course): student notebooks built from a solution notebook, and grading real
submissions executed by real kernels in separate processes.

The fixture tests/fixtures/exercise_demo.ipynb (rebuilt by tests/fixtures/make_exercise_demo.py) is a tiny
solution notebook with nb01 exercises q1 and q3, solution markers, a teacher-only cell and real outputs.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lmlab.course import add_cli, build, grade, make_student_notebook

FIXTURE = Path(__file__).parent / "fixtures" / "exercise_demo.ipynb"
SOLUTION_LINES = [
    "counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), accumulate=True)",
    "torch.where(totals > 0",
    "return math.exp(ce_nats)",
    "math.log(4)",
]


def _source(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


def test_build_student_notebook_and_manual(tmp_path):
    out = tmp_path / "handout"
    report = build([FIXTURE], out, solutions_manual=True)
    student_path = out / "student" / "exercise_demo.ipynb"
    assert report.student_notebooks == [student_path]
    assert report.solution_blocks == {"exercise_demo.ipynb": 3}
    assert report.exercise_modules == {"exercise_demo.ipynb": ["nb01"]}

    original = nbformat.read(FIXTURE, as_version=4)
    assert all(line in _source(original) for line in SOLUTION_LINES)  # the fixture really has them
    student = nbformat.read(student_path, as_version=4)
    nbformat.validate(student)
    text = _source(student)
    for line in SOLUTION_LINES:
        assert line not in text
    assert "SOLUTION" not in text
    assert "Teacher note" not in text  # teacher-only cell removed
    assert len(student.cells) == len(original.cells) - 1
    assert '    raise NotImplementedError("Exercise q1: write your solution here")' in text
    assert "def bigram_probs(ids, vocab_size):" in text  # the signature stays
    assert "ce_uniform = ...  # Exercise: your answer here" in text
    for cell in student.cells:
        if cell.cell_type == "code" and (".check(" in cell.source or ".progress(" in cell.source or "def " in cell.source):
            assert cell.outputs == [] and cell.execution_count is None
    assert any(c.outputs for c in original.cells if c.cell_type == "code" and ".check(" in c.source)

    manual = report.solutions_manual.read_text(encoding="utf-8")
    assert report.solutions_manual == out / "teacher" / "solutions_manual.md"
    assert "return math.exp(ce_nats)" in manual  # from the notebook's solution cells
    for title in ("q1 · bigram_probs", "q2 · cross_entropy", "q3 · perplexity", "q4 · add_k_probs"):
        assert title in manual
    assert "def add_k_probs(ids, vocab_size, k):" in manual and "**Why.**" in manual

    # Idempotent: rebuilding (here through the CLI wiring) gives identical bytes.
    before = {p: p.read_bytes() for p in (student_path, report.solutions_manual)}
    parser = argparse.ArgumentParser(prog="lmlab")
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["course", "build", str(FIXTURE), "--out", str(out), "--solutions-manual"])
    assert args.func(args) == 0
    assert {p: p.read_bytes() for p in before} == before

    # Executed by a real kernel, the student version says "not yet solved", without tracebacks.
    NotebookClient(student, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {c.source: c.outputs for c in student.cells if c.cell_type == "code"}
    for check in ("ex.q1.check(bigram_probs)", "ex.q3.check(perplexity)"):
        (out_,) = outputs[check]
        assert out_.output_type == "stream"
        assert "Not yet solved: replace the `raise NotImplementedError(...)`" in out_.text
    assert "0 of 4 exercises passed" in outputs["ex.progress()"][0].text
    assert not [o for outs in outputs.values() for o in outs if o.output_type == "error"]


def _nb(*sources, tags=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s, metadata={"tags": tags or []}) for s in sources]
    return nb


def test_marker_mistakes_are_reported_with_the_cell():
    with pytest.raises(ValueError, match="demo, cell 2: '# BEGIN SOLUTION' on line 2 has no '# END SOLUTION'"):
        make_student_notebook(_nb("x = 1", "def f():\n    # BEGIN SOLUTION\n    return 1"), name="demo")
    with pytest.raises(ValueError, match="without a '# BEGIN SOLUTION'"):
        make_student_notebook(_nb("y = 2\n# END SOLUTION"), name="demo")
    with pytest.raises(ValueError, match="cell 1 is tagged 'solution' but has no"):
        make_student_notebook(_nb("answer = 42", tags=["solution"]), name="demo")
    student, blocks = make_student_notebook(_nb("# BEGIN SOLUTION q9\nprint('hi')\n# END SOLUTION"))
    assert blocks == 1 and student.cells[0].source == "# Exercise q9: write your solution here"


# ---------------------------------------------------------------------------------------------------
# Grading


def _variant(path: Path, edit) -> None:
    nb = copy.deepcopy(nbformat.read(FIXTURE, as_version=4))
    edit(nb)
    nbformat.write(nb, path)


def _insert(nb, after_source_start: str, source: str) -> None:
    index = next(i for i, c in enumerate(nb.cells) if c.source.startswith(after_source_start))
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = f"inserted-{index}"
    nb.cells.insert(index + 1, cell)


def _replace(nb, old: str, new: str) -> None:
    for c in nb.cells:
        c.source = c.source.replace(old, new)


def test_grade_a_folder_of_submissions(tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    pid_file = tmp_path / "kernel.pid"
    cwd_file = tmp_path / "cwd.txt"
    _variant(  # a submission also writes into its working folder, which must be its own
        subs / "correct.ipynb",
        lambda nb: _insert(nb, "import math", f"import os\nopen({str(cwd_file)!r}, 'w').write(os.getcwd())\n"
                                              "open('written_by_the_submission.txt', 'w').write('x')"),
    )
    def wrong(nb):
        _replace(nb, "return math.exp(ce_nats)", "return 2 ** ce_nats")
        _insert(nb, "ex.q1.check", "def endless(ids, vocab_size):\n    while True:\n        pass\n\nex.q1.check(endless, timeout=1)")
        _insert(nb, "def endless", "ex.q1.check(bigram_probs)")  # the last check of q1 counts

    _variant(subs / "wrong.ipynb", wrong)
    _variant(subs / "raises.ipynb", lambda nb: _insert(nb, "import math", "1 / 0"))
    _variant(
        subs / "hangs.ipynb",
        lambda nb: _insert(nb, "ex.q1.check", f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    pass"),
    )
    (subs / "broken.ipynb").write_text('{"cells": [ this is not json', encoding="utf-8")

    start = time.monotonic()
    executed = tmp_path / "executed"
    report = grade(subs, tmp_path / "grades.csv", timeout=40, jobs=3, executed_dir=executed)
    elapsed = time.monotonic() - start
    assert elapsed < 90

    with open(tmp_path / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values())).keys()) == [
        "file", "status", "score", "max_score", "nb01.q1", "nb01.q2", "nb01.q3", "nb01.q4", "feedback"
    ]
    assert report.columns == ["nb01.q1", "nb01.q2", "nb01.q3", "nb01.q4"]

    def row(name):
        r = rows[name]
        return r["status"], r["score"], r["max_score"], [r[c] for c in report.columns]

    assert row("correct.ipynb") == ("ok", "3", "7", ["2", "0", "1", "0"])
    assert "nb01.q2: check not run" in rows["correct.ipynb"]["feedback"]
    assert row("wrong.ipynb") == ("ok", "2", "7", ["2", "0", "0", "0"])
    assert "nb01.q3: This is 2 ** ce" in rows["wrong.ipynb"]["feedback"]
    assert row("raises.ipynb") == ("error", "3", "7", ["2", "0", "1", "0"])
    assert "raised ZeroDivisionError: division by zero" in rows["raises.ipynb"]["feedback"]
    assert row("broken.ipynb") == ("invalid", "0", "7", ["0", "0", "0", "0"])
    assert "not a valid notebook" in rows["broken.ipynb"]["feedback"]
    assert row("hangs.ipynb") == ("timeout", "0", "7", ["0", "0", "0", "0"])
    feedback = rows["hangs.ipynb"]["feedback"]
    assert "killed after the total time limit of 40 s" in feedback
    assert "passed before it stopped (not counted): nb01.q1" in feedback

    # Each submission ran in a working folder of its own, removed afterwards: not the submissions folder,
    # not the teacher's current folder.
    work = Path(cwd_file.read_text())
    assert work not in (subs, Path.cwd()) and not work.is_relative_to(subs) and not work.exists()
    assert not list(subs.rglob("written_by_the_submission.txt"))
    assert not list(Path.cwd().glob("written_by_the_submission.txt"))

    # In the kernel, a learner's endless loop is interrupted by the check's time limit.
    ran = nbformat.read(executed / "wrong.ipynb", as_version=4)
    (endless_out,) = next(c for c in ran.cells if "check(endless" in c.source).outputs
    assert "`endless` did not finish within 1 s." in endless_out.text
    assert "keeps running" not in endless_out.text

    # The hanging kernel (in a session of its own) was killed with the executor, not left spinning.
    kernel_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(kernel_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
