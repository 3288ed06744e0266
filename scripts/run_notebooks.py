"""Execute every notebook on this machine's device, in parallel, and write a summary table.

    python dev.py run-notebooks                        every notebook, on the best device found
    python dev.py run-notebooks --device cpu --jobs 2  on the CPU, two notebooks at a time
    python dev.py run-notebooks 06 07 --device cuda    the notebooks whose names start with these

Unlike `execute-notebooks`, the notebooks are not changed: each runs top to bottom in a fresh kernel (its
GPU branch on when the device is a GPU) and the run is summarised per notebook: passed or the error of the
failing cell, seconds, and its headline numbers (the printed lines about losses, accuracies and reference
bands). The summary is written to notebooks/summaries/<device>.json and .md (<device> is cpu, cuda or mps)
with the date, the device, the machine and the versions, to be committed: it is the record that the course
runs to the end on that kind of device.

The device reaches the notebooks through LMLAB_DEVICE, which `lmlab.repro.setup` reads. On a machine where
dev.py cannot install (a GPU machine without network), run it from the project root with what is there:
`PYTHONPATH=$PWD python scripts/run_notebooks.py --device cuda` (needs nbclient and ipykernel).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
RUNS = NOTEBOOKS / "summaries"
# Printed lines worth a glance in the table: losses, accuracies, reference-band verdicts, device checks (lines
# with a number; not exercise feedback).
HEADLINE = re.compile(r"loss|accuracy|reference band|matches|agrees|loops", re.I)


def pick_device(asked: str) -> str:
    import torch

    if asked == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if asked == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine (use --device cpu or auto)")
    if asked == "mps" and not torch.backends.mps.is_available():
        raise SystemExit("--device mps: MPS is not available on this machine (use --device cpu or auto)")
    return asked


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    if device == "mps":
        return "mps: Apple silicon"
    model = platform.processor() or platform.machine()
    try:  # Linux names the processor here; platform.processor() is often empty there
        model = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                     if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu: {model}, {os.cpu_count()} cores"


def headline(nb) -> list[str]:
    lines = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                lines += [l.strip() for l in out["text"].splitlines()
                          if HEADLINE.search(l) and re.search(r"\d|True", l) and not l.lstrip().startswith(("✓", "✗"))]
    return [l[:160] for l in lines[:6]]


def run_one(path: str, timeout: int) -> dict:
    """Execute one notebook in a fresh kernel (the file is not written); returns its summary row."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    row = {"notebook": Path(path).name, "ok": False}
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
        row["ok"] = True
    except CellExecutionError as e:
        row["error"] = str(e).strip().splitlines()[-1][:300]
        failing = [c for c in nb.cells if c.cell_type == "code" and any(o.get("output_type") == "error"
                                                                         for o in c.get("outputs", []))]
        if failing:
            row["failing_cell"] = failing[0].source[:400]
    except Exception as e:  # a kernel that died, a timeout
        row["error"] = f"{type(e).__name__}: {e}"[:300]
    row["seconds"] = round(time.perf_counter() - t0, 1)
    row["headline"] = headline(nb)
    return row


def markdown(summary: dict) -> str:
    lines = [f"# Notebooks run on {summary['device']}", "",
             f"Run {summary['date']} with `python dev.py run-notebooks --device {summary['device_kind']}` "
             f"({summary['jobs']} at a time, {summary['wall_seconds']:.0f} s wall).", ""]
    if summary.get("note"):
        lines += [summary["note"], ""]
    lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()) + ".", "",
              f"{summary['passed']} of {len(summary['notebooks'])} notebooks ran to the end.", "",
              "| notebook | result | seconds | headline numbers |", "|---|---|---:|---|"]
    for r in summary["notebooks"]:
        result = "passed" if r["ok"] else f"**failed**: {r.get('error', '')}".replace("|", "\\|")
        head = "<br>".join(h.replace("|", "\\|") for h in r["headline"])
        lines.append(f"| `{r['notebook']}` | {result} | {r['seconds']:.0f} | {head} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="name prefixes, e.g. 06 07 (default: all)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    parser.add_argument("--jobs", type=int, default=None,
                        help="notebooks at a time (default: all of them on a GPU, half the CPU cores on a CPU)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    parser.add_argument("--out", type=Path, default=RUNS,
                        help="folder of the summary (default notebooks/summaries)")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if any(p.name.startswith(a) for a in args.notebooks)]
    if not paths:
        parser.error(f"no notebooks match {args.notebooks}")
    device = pick_device(args.device)
    jobs = args.jobs or (len(paths) if device == "cuda" else max(1, (os.cpu_count() or 2) // 2))
    from lmlab.data import offline_env

    offline_env(ROOT.parent / "shared" / "data")
    os.environ.update(LMLAB_DEVICE=device, LMLAB_PROGRESS="0", MPLBACKEND="Agg")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

    print(f"running {len(paths)} notebooks on {device_name(device)}, {jobs} at a time", flush=True)
    rows, t0 = [], time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_one, str(p), args.timeout): p for p in paths}
        for future in as_completed(futures):
            row = future.result()
            rows.append(row)
            print(f"{row['notebook']:<40} {'passed' if row['ok'] else 'FAILED':<7} {row['seconds']:7.1f} s  "
                  f"{row.get('error', '')}", flush=True)
    from lmlab.envreport import installed_versions

    summary = {
        "date": dt.date.today().isoformat(),
        "device_kind": device,
        "device": device_name(device),
        "note": "" if device != "cpu" else (
            "No GPU was available for this run: every notebook ran its CPU branch. Run "
            "`python dev.py run-notebooks --device cuda` on a GPU machine to check the GPU branches."),
        "platform": platform.platform(),
        "jobs": jobs,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "versions": installed_versions(),
        "passed": sum(r["ok"] for r in rows),
        "notebooks": sorted(rows, key=lambda r: r["notebook"]),
    }
    if args.notebooks:
        summary["note"] = (summary["note"] + " Only these notebooks were run.").strip()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{device}.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / f"{device}.md").write_text(markdown(summary))
    print(f"\n{summary['passed']} of {len(rows)} passed; summary in {args.out / (device + '.md')}")
    return 0 if summary["passed"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
