"""The grades: per-case results, a CSV a learning-management system imports, details, and feedback files.

- ``grades.csv`` (the path given to ``--out``): one row per student, one column per exercise, the total.
  Columns: ``student``, ``nb01.q1``, ..., ``total``. A student is the first folder of the submission's
  path inside the submissions folder, or the file name without ``.ipynb`` when it lies at the top.
- ``grades_details.csv`` beside it: one row per submission with its status and a one-line feedback.
- ``feedback/<student>.md``: per exercise the points, each case passed or not and why.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from lmlab.exercises.exercise import CaseResult

__all__ = ["ExerciseGrade", "SubmissionGrade", "GradeReport", "student_of", "write_reports"]


@dataclass
class ExerciseGrade:
    """One exercise of one submission."""

    key: str  # "nb01.q1"
    title: str  # "bigram_probs(ids, vocab_size)"
    points: float
    max_points: float
    cases: list[CaseResult] = field(default_factory=list)
    problem: str = ""  # why it scored zero without running its cases

    def one_line(self) -> str:
        if self.problem:
            return f"{self.key}: {self.problem}"
        failed = [c for c in self.cases if not c.passed]
        if not failed:
            return ""
        return f"{self.key}: {len(failed)} of {len(self.cases)} cases failed ({failed[0].label}: {failed[0].summary})"


@dataclass
class SubmissionGrade:
    """One graded submission."""

    file: str  # path relative to the submissions folder
    student: str
    status: str  # ok | error | timeout | invalid (the notebook run; it does not change the points)
    reason: str = ""
    cell_errors: list[str] = field(default_factory=list)
    exercises: dict[str, ExerciseGrade] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> dict[str, float]:
        return {k: e.points for k, e in self.exercises.items()}

    @property
    def score(self) -> float:
        return sum(self.points.values())

    @property
    def max_score(self) -> float:
        return sum(e.max_points for e in self.exercises.values())

    @property
    def feedback(self) -> str:
        parts = [f"{self.status}: {self.reason}"] if self.reason else []
        parts += self.notes + self.cell_errors[:5]
        parts += [line for e in self.exercises.values() if (line := e.one_line())]
        return " | ".join(parts)


@dataclass
class GradeReport:
    """What `grade` wrote."""

    csv_path: Path
    details_path: Path
    feedback_dir: Path
    columns: list[str]
    submissions: list[SubmissionGrade]
    seed: int

    def __str__(self) -> str:
        lines = [f"Graded {len(self.submissions)} submission(s) -> {self.csv_path}"]
        for s in self.submissions:
            lines.append(f"  {s.file}: {s.score:g}/{s.max_score:g} (notebook run: {s.status})")
        lines.append(f"Details: {self.details_path}; feedback for each student: {self.feedback_dir}/")
        return "\n".join(lines)


def student_of(rel: str) -> str:
    """``alice/nb01.ipynb`` -> ``alice``; ``bob.ipynb`` -> ``bob``."""
    parts = Path(rel).parts
    return parts[0] if len(parts) > 1 else Path(rel).stem


def write_reports(report: GradeReport) -> None:
    """Write the LMS CSV, the details CSV and the feedback files of `report`."""
    cols = report.columns
    by_student: dict[str, list[SubmissionGrade]] = {}
    for s in report.submissions:
        by_student.setdefault(s.student, []).append(s)
    report.csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(report.csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *cols, "total"])
        for student, subs in sorted(by_student.items()):
            best = {c: max(s.points.get(c, 0.0) for s in subs) for c in cols}  # several notebooks: the best
            writer.writerow([student, *[f"{best[c]:g}" for c in cols], f"{sum(best.values()):g}"])
    with open(report.details_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "student", "status", "score", "max_score", *cols, "feedback"])
        for s in report.submissions:
            writer.writerow([s.file, s.student, s.status, f"{s.score:g}", f"{s.max_score:g}",
                             *[f"{s.points.get(c, 0.0):g}" for c in cols], s.feedback])
    report.feedback_dir.mkdir(parents=True, exist_ok=True)
    for student, subs in sorted(by_student.items()):
        name = re.sub(r"[^\w.-]", "_", student) or "student"
        (report.feedback_dir / f"{name}.md").write_text(_feedback_markdown(student, subs), encoding="utf-8")


def _feedback_markdown(student: str, subs: list[SubmissionGrade]) -> str:
    out = [f"# Feedback for {student}", ""]
    for s in subs:
        out += [f"## {s.file}: {s.score:g} / {s.max_score:g} points", "",
                f"Running the notebook: {s.status}{' (' + s.reason + ')' if s.reason else ''}.", ""]
        out += [f"- {line}" for line in s.notes + s.cell_errors] + ([""] if s.notes or s.cell_errors else [])
        for e in s.exercises.values():
            out += [f"### {e.key} · {e.title}: {e.points:g} / {e.max_points:g}", ""]
            if e.problem:
                out += [f"Not graded: {e.problem}.", ""]
                continue
            for c in e.cases:
                out.append(f"- {'✓' if c.passed else '✗'} {c.label}" + ("" if c.passed else f": {c.summary}"))
                if not c.passed and c.message:
                    out += ["", "  ```", *[f"  {line}" for line in c.message.splitlines()], "  ```", ""]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
