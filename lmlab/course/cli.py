"""The command line of the teaching tools: ``lmlab course build`` and ``lmlab course grade``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from lmlab.runconfig import positive_float, positive_int  # numbers checked as they are parsed

__all__ = ["add_cli", "main"]


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
    b.add_argument("--solutions-manual", action="store_true", help="also write OUT/teacher/solutions_manual.md")
    b.set_defaults(func=_cli_build)

    g = sub.add_parser("grade", help="grade submitted notebooks on public and hidden cases; write a grades CSV")
    g.add_argument("submissions", type=Path, help="folder of submitted .ipynb files (searched recursively)")
    g.add_argument("--out", type=Path, required=True, help="CSV to write: one row per student (LMS import)")
    g.add_argument("--seed", type=int, default=None,
                   help="the seed of the hidden cases; keep it secret, and keep it to regrade (default: a new one)")
    g.add_argument("--timeout", type=positive_float, default=120.0, help="seconds to run one notebook (default 120)")
    g.add_argument("--cell-timeout", type=positive_float, default=None, help="seconds per cell (default: --timeout)")
    g.add_argument("--exercises", nargs="*", default=None,
                   help="exercises for the columns: nb01 (all of them) or nb01.q1")
    g.add_argument("--executed", type=Path, default=None, help="folder to keep the executed notebooks in")
    g.add_argument("--feedback", type=Path, default=None,
                   help="folder for the feedback files (default: feedback/ beside OUT)")
    g.add_argument("--jobs", type=positive_int, default=1, help="submissions to grade at once (default 1)")
    g.add_argument("--partial-credit", action="store_true", help="points per case passed, not all or nothing")
    g.add_argument("--no-run", action="store_true", help="grade the exercise functions without running the notebooks")
    g.add_argument("--sandbox", choices=["process", "docker"], default="process",
                   help="process (default): sessions, clean environment, empty folders; docker: containers")
    g.add_argument("--docker-image", default="lmlab-grader", help="image for --sandbox docker (docs/teachers.md)")
    g.add_argument("--pass-env", action="append", default=None, metavar="NAME",
                   help="an environment variable the learners' code may see (default: LMLAB_DATA_DIR)")
    g.set_defaults(func=_cli_grade)
    return course


def _cli_build(args: argparse.Namespace) -> int:
    from lmlab.course.build import build

    try:
        report = build(args.notebooks, args.out, solutions_manual=args.solutions_manual)
    except (ValueError, FileNotFoundError) as exc:
        print(f"lmlab course build: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0


def _cli_grade(args: argparse.Namespace) -> int:
    from lmlab.course.grade import grade

    start = time.monotonic()
    try:
        report = grade(args.submissions, args.out, seed=args.seed, timeout=args.timeout,
                       cell_timeout=args.cell_timeout, exercise_modules=args.exercises, executed_dir=args.executed,
                       feedback_dir=args.feedback, jobs=args.jobs, partial_credit=args.partial_credit,
                       run_notebooks=not args.no_run, sandbox=args.sandbox, docker_image=args.docker_image,
                       pass_env=tuple(args.pass_env if args.pass_env is not None else ["LMLAB_DATA_DIR"]))
    except (ValueError, FileNotFoundError) as exc:
        print(f"lmlab course grade: {exc}", file=sys.stderr)
        return 2
    print(report)
    if args.seed is None:
        print(f"Hidden cases from seed {report.seed}: pass --seed {report.seed} to grade again with the same cases.")
    print(f"({time.monotonic() - start:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lmlab.course build|grade ...`` (the same as ``lmlab course ...``)."""
    parser = argparse.ArgumentParser(prog="python -m lmlab.course")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_cli(subparsers)
    args = parser.parse_args(["course", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
