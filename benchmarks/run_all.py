"""Run every benchmark script in this folder and print their tables.

    python dev.py bench                    (or: python benchmarks/run_all.py)
    python dev.py bench --save             also write the tables to benchmarks/README.md
    python dev.py bench bpe explorer       only these scripts

Benchmarks are not tests: they print figures (medians of repeated runs, ratios against real peers measured
in the same run) and never fail on a slow machine. benchmarks/README.md keeps the latest tables, with the
machine, the date and the versions they were measured with.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

from lmlab.data import offline_env

HERE = Path(__file__).resolve().parent
ON_REQUEST = {"gpu"}  # run only when named: it needs a GPU and a nanoGPT checkout (python benchmarks/gpu.py --help)

INTRO = """# Benchmarks

Scripts that print tables: lmlab against real implementations of the same work, measured in the same run.
They are not tests and never fail on a slow machine. Run them all with `python dev.py bench` (add `--save` to
rewrite this file), or one with `python benchmarks/NAME.py`.

| script | what it measures | goal |
|---|---|---|
| `train_throughput.py` | training step tokens/s of `lmlab.GPT` against `transformers.GPT2LMHeadModel` with the same weights, at the notebook size and a GPT-2-small-like size, with model FLOPs utilization against a matmul peak measured in the same run; greedy generation tokens/s with the KV cache against `generate` | ratio >= 1.0 |
| `bpe.py` | BPE training time against a textbook trainer and Hugging Face `tokenizers`, same merges; encoding MB/s | >= 10x the textbook trainer; the ratio to `tokenizers` reported as it is |
| `time_to_loss.py` | minutes for `lmlab train`'s CPU default to reach validation loss 1.88 on Tiny Shakespeare, its curve and peak memory | faster than nanoGPT's reported 3 minutes on a laptop CPU |
| `notebooks.py` | every notebook under nbval as CI runs it: wall time and peak memory | the suite in about 10 minutes on 2 cores |
| `explorer.py` | the attention explorer: time from a control change to the new figure, 128 and 512 tokens | well under 0.2 s |
| `loop_syncs.py` | the training loop's own work: host reads of device values per step (host-device syncs on a GPU) and ms per step against a bare step | 0 reads between log steps |
| `gpu.py` (on request: `python dev.py bench gpu`, or `python benchmarks/gpu.py --nanogpt PATH --save`) | on a GPU, beside nanoGPT (a checkout outside the repository) and transformers: a GPT-2-small step eager and compiled with MFU, the whole Shakespeare-char run, generation tokens/s with CUDA graphs | the loop within 5% of nanoGPT's ms per step, MFU >= 55%, generation >= 1,000 tokens/s at batch 1 and >= 4x transformers |

The `gpu` section appears below once a GPU run has been saved; the other tables are from a CPU-only machine.
"""


def machine() -> str:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import tokenizers

        tok_version = tokenizers.__version__
    except ImportError:
        tok_version = "not installed"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"- date: {datetime.date.today().isoformat()}\n"
            f"- machine: {cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
            f"GPU: {gpu}\n"
            f"- versions: Python {platform.python_version()}, torch {torch.__version__}, "
            f"transformers {transformers.__version__}, tokenizers {tok_version}\n")


def write_readme(header: str, sections: dict[str, str], path: Path = HERE / "README.md") -> None:
    """Rewrite README.md with these sections; sections of scripts not run this time keep their old text
    (under the header of the run that made them)."""
    runs = []  # (header, {script: section}) of earlier runs still shown
    if path.is_file() and "\n## Latest results\n" in path.read_text():
        for block in path.read_text().split("\n## Latest results\n")[1].split("\n### Measured\n")[1:]:
            old_header, _, body = block.partition("\n\n")
            kept = {}
            for part in ("\n" + body).split("\n## ")[1:]:
                name = part.split("\n", 1)[0].strip()
                if name not in sections:
                    kept[name] = "## " + part.strip() + "\n"
            if kept:
                runs.append((old_header.strip() + "\n", kept))
    text = INTRO + "\n## Latest results\n"
    for run_header, run_sections in [(header, sections), *runs]:
        text += "\n### Measured\n" + run_header + "\n" + "\n".join(run_sections.values())
    path.write_text(text)


def main(argv: list[str]) -> int:
    save = "--save" in argv
    names = [a for a in argv if a != "--save"]
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py")
    if names:
        scripts = [p for p in scripts if p.stem in names]
    else:
        scripts = [p for p in scripts if p.stem not in ON_REQUEST]
    offline_env(HERE.parent.parent / "shared" / "data")
    header = machine()
    print(header)
    sections, failed = [], []
    for script in scripts:
        print(f"\n## {script.stem}\n", flush=True)
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
        print(proc.stdout, flush=True)
        if proc.returncode != 0:
            failed.append(script.name)
        sections.append((script.stem, f"## {script.stem}\n\n{proc.stdout.strip()}\n"))
    if failed:
        print(f"\nthese benchmarks did not finish: {', '.join(failed)}")
    if save:
        write_readme(header, dict(sections))
        print(f"\nwrote {HERE / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
