"""Teaching tools (lmlab.course): student notebooks built from a solution notebook, graded mode in a kernel,
and the notebooks' exercise cells. Grading real submissions is in tests/test_grading.py.

The fixture tests/fixtures/exercise_demo.ipynb (rebuilt by tests/fixtures/make_exercise_demo.py) is a tiny
solution notebook with nb01 exercises q1 and q3, solution markers, a teacher-only cell and real outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lmlab.course import add_cli, build, make_student_notebook
from lmlab.course.build import teaching_cell_problems
from lmlab.course.cells import exercise_modules_of, graded_functions
from lmlab.course.extract import extract, scan

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
    marked = {c.metadata["lmlab"]["exercise"]: c for c in student.cells if "lmlab" in c.metadata}
    assert sorted(marked) == ["nb01.q1", "nb01.q3"]  # the grader finds the exercise cells by this
    assert "def bigram_probs(" in marked["nb01.q1"].source and "def perplexity(" in marked["nb01.q3"].source
    assert any(c.outputs for c in original.cells if c.cell_type == "code" and ".check(" in c.source)

    manual = report.solutions_manual.read_text(encoding="utf-8")
    assert report.solutions_manual == out / "teacher" / "solutions_manual.md"
    assert "return math.exp(ce_nats)" in manual  # from the notebook's solution cells
    for title in ("q1 · bigram_probs", "q2 · interpolated_probs", "q3 · perplexity", "q4 · entropy_rate"):
        assert title in manual
    assert "def entropy_rate(P):" in manual and "**Why.**" in manual

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
# No teaching cell defines a graded function under its graded name


NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb")) + [FIXTURE]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_teaching_cell_defines_a_graded_function(path):
    nb = nbformat.read(path, as_version=4)
    graded = graded_functions(exercise_modules_of(nb))
    problems, notes = teaching_cell_problems(nb, graded, name=path.name)
    assert problems == []
    for note in notes:  # importing lmlab's own implementation under the name is allowed: the checks know it
        assert "allowed" in note
    if graded:
        student, _ = make_student_notebook(nb, name=path.name)
        marked = [c.metadata["lmlab"]["exercise"] for c in student.cells if "lmlab" in c.metadata]
        assert marked and len(marked) == len(set(marked))


def _exercise_nb(teaching: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from lmlab.exercises import nb03 as ex"),
                nbformat.v4.new_code_cell(teaching),
                nbformat.v4.new_code_cell("def merge(ids, pair, new_id):\n    # BEGIN SOLUTION q1\n    return ids\n"
                                          "    # END SOLUTION", metadata={"tags": ["solution"]}),
                nbformat.v4.new_code_cell("ex.q1.check(merge)")]
    return nb


def test_build_refuses_a_teaching_cell_that_defines_a_graded_function(tmp_path):
    for teaching in ("def merge(ids, pair, new_id):\n    return ids",
                     "merge = lambda ids, pair, new_id: ids",
                     "from lmlab.tokenizers import get_stats as merge"):
        path = tmp_path / "demo.ipynb"
        nbformat.write(_exercise_nb(teaching), path)
        with pytest.raises(ValueError, match=r"demo.ipynb, cell 2 .*`merge`, the function exercise nb03.q1 grades"):
            build([path], tmp_path / "out")
        assert not (tmp_path / "out" / "student").exists()  # nothing written
    nbformat.write(_exercise_nb("from lmlab.tokenizers import merge\nprint(merge([1, 2], (1, 2), 3))"), path)
    report = build([path], tmp_path / "out")
    assert "demo.ipynb, cell 2 imports lmlab.tokenizers.merge as `merge`" in str(report)


# ---------------------------------------------------------------------------------------------------
# What the grader takes from a submission


def _student(tmp_path) -> nbformat.NotebookNode:
    build([FIXTURE], tmp_path / "handout", solutions_manual=False)
    return nbformat.read(tmp_path / "handout" / "student" / "exercise_demo.ipynb", as_version=4)


EXPECTED = [("nb01.q1", "bigram_probs"), ("nb01.q3", "perplexity")]


def test_extract_finds_the_exercise_cells_and_the_imports(tmp_path):
    found = extract(_student(tmp_path), EXPECTED)
    assert found.imports == ["import math", "import torch", "from lmlab.exercises import nb01 as ex"]
    assert [(c.index, c.problem) for c in found.cells.values()] == [(4, ""), (7, "")]
    assert "def perplexity(ce_nats):" in found.cells["nb01.q3"].source


def test_a_deleted_copied_or_moved_exercise_cell_scores_zero_with_the_reason(tmp_path):
    nb = _student(tmp_path)
    deleted = nbformat.from_dict(nb)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("lmlab", {}).get("exercise") != "nb01.q1"]
    assert "no cell is marked as the exercise cell of nb01.q1" in extract(deleted, EXPECTED).cells["nb01.q1"].problem

    copied = nbformat.from_dict(nb)
    copied.cells.insert(5, nbformat.from_dict(nb.cells[3]))
    assert "cells 4, 6 are all marked as the exercise cell of nb01.q1" in extract(copied, EXPECTED).cells["nb01.q1"].problem

    below = nbformat.from_dict(nb)
    below.cells[3], below.cells[4] = below.cells[4], below.cells[3]  # the exercise cell after its check
    assert "moved below the cell that checks it" in extract(below, EXPECTED).cells["nb01.q1"].problem

    swapped = nbformat.from_dict(nb)
    q1, q3 = swapped.cells[3], swapped.cells[6]
    swapped.cells[3], swapped.cells[6] = q3, q1
    swapped.cells[4].source, swapped.cells[7].source = swapped.cells[7].source, swapped.cells[4].source
    assert "moved out of their order" in extract(swapped, EXPECTED).cells["nb01.q1"].problem


@pytest.mark.parametrize("code, found", [
    ("def f(x):\n    return x + 1", []),
    ("def f(x):\n    exec(ex.q1.solution_code)\n    return x", ["exec"]),
    ("import sys\ndef f(x):\n    sys.setprofile(None)\n    return x", ["sys"]),
    ("def f(x):\n    return (lambda: 0).__code__", ["__code__"]),
    ("from importlib import import_module\ndef f(x):\n    return x", ["importlib"]),
])
def test_scan_finds_what_graded_mode_does_not_allow_in_an_exercise_cell(code, found):
    assert scan(code) == found


def test_graded_mode_in_a_kernel_has_no_checkers_references_or_solutions(tmp_path, monkeypatch):
    student = _student(tmp_path)
    student.cells.append(nbformat.v4.new_code_cell(
        "ex.q1.solution()\n"
        "try:\n    ex.ref_bigram_probs\nexcept AttributeError as e:\n    print('AttributeError:', e)\n"
        "from lmlab.exercises import exercise_set\n"
        "try:\n    exercise_set('nb01')\nexcept ValueError as e:\n    print('ValueError:', e)"))
    monkeypatch.setenv("LMLAB_GRADED", "1")  # the kernel started below inherits it
    NotebookClient(student, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in student.cells if c.cell_type == "code" for o in c.outputs)
    assert "nb01.q1: graded mode. The grader checks this exercise on hidden cases" in text
    assert "worked solutions are not available in graded mode" in text
    assert "AttributeError: lmlab.exercises.nb01.ref_bigram_probs is not available in graded mode" in text
    assert "ValueError: lmlab.exercises.nb01 has no EXERCISES registry" in text
    assert "def bigram_probs" not in text and "index_put_" not in text
