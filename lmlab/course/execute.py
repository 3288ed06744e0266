"""Run a submitted notebook top to bottom in a fresh kernel (``python -m lmlab.course.execute NB --out EXECUTED``).

The grader starts this inside a `Sandbox`, for the teacher's information only: whether the notebook runs,
which cells raise, and (``--executed``) the executed notebook. Grades never come from here. One failing
cell does not stop the rest (``allow_errors``). Exit status: 0 ran to the end, 3 a cell ran past the cell
time limit, 4 the kernel died, 5 anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    parser = argparse.ArgumentParser(prog="python -m lmlab.course.execute")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cell-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    nb = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(nb, timeout=args.cell_timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(args.notebook.parent)}})
    code = 0
    try:
        client.execute()
    except CellTimeoutError:
        code = 3
    except DeadKernelError:
        code = 4
    except Exception:  # noqa: BLE001 - any other failure of the run
        code = 5
    nbformat.write(nb, args.out)
    return code


if __name__ == "__main__":
    sys.exit(main())
