"""Teaching tools: student notebooks built from the solution notebooks, and grading (docs/teachers.md).

- `build` (`lmlab.course.build`): student notebooks without solutions, and the solutions manual.
- `grade` (`lmlab.course.grade`): grades a folder of submissions in graded mode: each submission's
  exercise functions run in a sandboxed worker process and are checked by the grader on public and
  hidden cases (`remote`, `worker`, `sandbox`, `extract`); the notebook itself runs in another sandbox
  for information (`execute`); the results go to a CSV and feedback files (`report`).
- `add_cli` and `main` (`lmlab.course.cli`): ``lmlab course build|grade``.
"""

from lmlab.course.build import BuildReport, build, make_student_notebook
from lmlab.course.cli import add_cli, main
from lmlab.course.grade import grade
from lmlab.course.report import GradeReport, SubmissionGrade

__all__ = ["build", "grade", "add_cli", "main", "BuildReport", "GradeReport", "SubmissionGrade",
           "make_student_notebook"]
