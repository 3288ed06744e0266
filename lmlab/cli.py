"""The `lmlab` command.

    lmlab env [--check-device]                 what is installed, the device, the data cache, version drift
    lmlab data download --all --to DIR         fetch every corpus once (for offline classrooms)
    lmlab data verify [DIR]                    check a data folder against the known SHA-256 hashes
    lmlab train --corpus tinyshakespeare --model gpt [--preset cpu|gpu] [--resume | --overwrite]
    lmlab sample --checkpoint RUN_DIR --prompt "ROMEO:" [--temperature 0.8 --top-k 40]
    lmlab course build NOTEBOOKS... --out DIR  student versions and a solutions manual
    lmlab course grade SUBMISSIONS --out grades.csv

Every error is one line on stderr and a non-zero exit code: 2 for a command line that cannot be used (a value
out of range, a run folder that holds another run, a setting --resume cannot change), 1 for an error while
running (a damaged checkpoint, a diverged run...). ``LMLAB_DEBUG=1`` shows the traceback instead.

A run folder (``--out``) holds one run: ``lmlab train`` refuses to start a new run where another one is
(``--overwrite`` replaces it), and its lock file stops a second ``lmlab train`` in the same folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from lmlab.course import add_cli
from lmlab.files import atomic_write_json
from lmlab.runconfig import (
    DEFAULTS,
    OPTIONS,
    PRESETS,
    RESUME_OPTIONS,
    RunConfig,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    seed_value,
)


def _cmd_env(args) -> int:
    from lmlab.device import pick_device
    from lmlab.envreport import check_device, report

    if args.check_device and args.device is not None:
        pick_device(args.device)  # a ValueError that says so when the device is not there
    print(report())
    if args.check_device:
        result = check_device(args.device)
        print(f"device check on {result['device']}: {result['message']} "
              f"(max logit diff {result['max_logit_diff']:.2e}, max grad diff {result['max_grad_diff']:.2e})")
        return 0 if result["ok"] else 1
    return 0


def _cmd_data(args) -> int:
    from lmlab.data import CORPORA, data_dir, download_all, verify

    if args.action == "download":
        if not args.all and not args.name:
            return _refuse("data download", f"name a corpus ({', '.join(CORPORA)}) or pass --all")
        folder = Path(args.to) if args.to else data_dir()
        if args.all:
            paths = download_all(folder)
        else:
            from lmlab.data import fetch

            paths = [fetch(name, data_dir=folder) for name in args.name]
        for p in paths:
            print(f"ok  {p}")
        print(f"copy {folder} to offline machines and set LMLAB_DATA_DIR={folder} there")
        return 0
    folder = Path(args.dir) if args.dir else data_dir()
    results = verify(folder)
    for r in results:
        print(f"{'ok ' if r.ok else 'BAD'} {r.name:<16} {r.path}  {'' if r.ok else r.reason}")
    return 0 if all(r.ok for r in results) else 1


def _refuse(who: str, message: str) -> int:
    """Say on one line why the command line cannot be used; the exit code 2."""
    print(f"lmlab {who}: error: {message}", file=sys.stderr)
    return 2


RUN_FILES = ("run.json", "tokenizer.json", "history.json")  # what `lmlab train` writes beside checkpoints/


def _run_files(out: Path) -> list[str]:
    """What of a run the folder ``out`` holds, e.g. ["run.json", "tokenizer.json", "checkpoints"]."""
    from lmlab.checkpoint import holds_run

    found = [name for name in RUN_FILES if (out / name).exists()]
    return found + (["checkpoints"] if holds_run(out / "checkpoints") is not None else [])


def _new_run(out: Path, args) -> RunConfig | None:
    """The preset (gpu if CUDA, else cpu) changed by the options given; None after saying on stderr that
    ``out`` already holds a run (and ``--overwrite`` was not given)."""
    import torch

    found = _run_files(out)
    if found and not args.overwrite:
        _refuse("train", f"{out} already holds a run ({', '.join(found)}): pass --resume to continue it or --overwrite "
                f"to replace it, or --out to start a new run elsewhere (nothing was changed)")
        return None
    preset = args.preset or ("gpu" if torch.cuda.is_available() else "cpu")
    run = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in DEFAULTS.items()}
    return RunConfig.new(run.pop("model"), preset, {name: getattr(args, name) for name in OPTIONS},
                         threads=args.threads, **run)


def _resumed_run(out: Path, args) -> RunConfig | None:
    """The run recorded in ``out/run.json`` with the options --resume may change applied, or None after saying on
    stderr what is wrong: a damaged record, one this version cannot rebuild, or options that would change it."""
    import lmlab
    from lmlab.repro import RunRecord

    try:
        record = RunRecord.load(out / "run.json")
    except ValueError as e:
        _refuse("train", f"cannot resume: {e}")
        return None
    try:
        run = RunConfig.from_dict(record.config, model=args.model or DEFAULTS["model"])
    except ValueError as e:
        _refuse("train", f"cannot resume {out}: its run.json (written by lmlab {record.lmlab_version or '?'}; this is "
                f"lmlab {lmlab.__version__}) {e}. Resume it with the lmlab version that started it, or start a new "
                "run with --out")
        return None
    given = {name: getattr(args, name) for name in [*OPTIONS, *DEFAULTS, "threads", "preset"]}
    run, conflicts = run.resumed_with(given)
    if conflicts:
        _refuse("train", f"cannot resume {out} with other settings than it was started with: {', '.join(conflicts)}. "
                f"--resume may change only {', '.join('--' + k.replace('_', '-') for k in RESUME_OPTIONS)} (and "
                "--checkpoint-every, --device, --compile, --no-progress); to change the others, start a new run "
                "with --out or --overwrite")
        return None
    return run


def _cmd_train(args) -> int:
    from lmlab.checkpoint import RunLock

    out = Path(args.out)
    if args.resume and args.overwrite:
        return _refuse("train", "--overwrite starts a new run; it cannot be combined with --resume")
    if args.resume and not (out / "run.json").is_file():
        return _refuse("train", f"nothing to resume in {out}: no run.json there. Start a run without --resume first.")
    with RunLock(out):  # one `lmlab train` per run folder
        run = _resumed_run(out, args) if args.resume else _new_run(out, args)
        if run is None:
            return 2
        return _train_run(out, run, args)


def _run_tokenizer(path: Path, text: str, run: RunConfig, reuse: bool):
    """The run's tokenizer: the one saved in the run folder when ``reuse`` (a resumed run), else a new one."""
    from lmlab.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

    if reuse and path.is_file():
        return load_tokenizer(path)
    if run.tokenizer == "char":
        return CharTokenizer.from_text(text)
    return BPETokenizer().train(text, run.vocab_size)


def _train_run(out: Path, run: RunConfig, args) -> int:
    """Build everything the run needs (nothing in ``out`` changes if one fails), record it, train, save the history."""
    import torch

    from lmlab.data import LMBatches, load_text, train_val_split
    from lmlab.device import pick_device
    from lmlab.repro import RunRecord, seed_everything
    from lmlab.train import train

    seed_everything(run.seed, threads=run.threads)
    text = load_text(run.corpus)
    tok = _run_tokenizer(out / "tokenizer.json", text, run, reuse=args.resume)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids, 0.1)
    T, B = run.settings.block_size, run.settings.batch_size
    train_batches = LMBatches(train_ids, T, B, seed=run.seed)
    val_batches = LMBatches(val_ids, T, B, seed=run.seed + 1)
    model = run.settings.build_model(tok.vocab_size)
    config = run.train_config(checkpoint_dir=str(out / "checkpoints"), device=args.device, compile=args.compile,
                              checkpoint_every=args.checkpoint_every or run.settings.eval_every,
                              progress=None if args.progress else False)
    record = RunRecord.start(config=run.to_dict(), seed=run.seed, data=text)
    if args.overwrite:
        (out / "history.json").unlink(missing_ok=True)  # the old run's (its checkpoints go when training starts)
    record.save(out / "run.json")  # first: a folder with a run.json holds a run (a kill after it: --resume)
    tok.save(out / "tokenizer.json")
    print(f"training {run.model} ({model.num_params():,} parameters) on {run.corpus} "
          f"({len(train_ids):,} train / {len(val_ids):,} val tokens) on {pick_device(args.device)}; run folder {out}",
          flush=True)
    t0 = time.perf_counter()
    history = train(model, train_batches, val_batches, config, resume=bool(args.resume), overwrite=args.overwrite,
                    tokenizer=tok)
    minutes = (time.perf_counter() - t0) / 60
    record.finish({"best_val_loss": history.best_val_loss, "final_train_loss": history.final_train_loss,
                   "steps": history.steps[-1] if history.steps else 0, "minutes": round(minutes, 3)})
    record.save(out / "run.json")
    atomic_write_json(out / "history.json", history.to_dict())  # a kill leaves the old file or the new one
    best = f"{history.best_val_loss:.4f}" if history.best_val_loss is not None else "none yet"
    print(f"done in {minutes:.1f} min: best validation loss {best}; sample with: lmlab sample --checkpoint {out}")
    return 0


def _run_folder_of(path: Path) -> Path:
    """The run folder of a checkpoint path. Example: RUN, RUN/checkpoints, RUN/checkpoints/step-000100 -> RUN"""
    from lmlab.checkpoint.layout import step_of

    if step_of(path) is not None:
        path = path.parent
    return path.parent if path.name == "checkpoints" and not (path / "checkpoints").is_dir() else path


def _tokenizer_problem(tok, tok_path: Path, ckpt) -> str | None:
    """Why ``tok`` is not the tokenizer of the checkpoint's model, or None: another vocabulary size, or (when
    the checkpoint recorded it) another tokenizer fingerprint."""
    from lmlab.tokenizers import tokenizer_fingerprint

    vocab = getattr(getattr(ckpt.model, "config", None), "vocab_size", None)
    if vocab is not None and tok.vocab_size != vocab:
        return (f"{tok_path} has {tok.vocab_size} tokens but the model has a vocabulary of {vocab}: it is not the "
                "tokenizer this model was trained with")
    saved = ckpt.state.get("fingerprints")
    saved = saved.get("tokenizer") if isinstance(saved, dict) else None
    if isinstance(saved, dict) and saved.get("sha256") != tokenizer_fingerprint(tok)["sha256"]:
        return (f"{tok_path} is not the tokenizer this model was trained with (its fingerprint differs from the one "
                f"recorded in {ckpt.path / 'state.json'})")
    return None


def _cmd_sample(args) -> int:
    import torch

    from lmlab.checkpoint import load_checkpoint
    from lmlab.generate import generate
    from lmlab.tokenizers import load_tokenizer

    run_dir = Path(args.checkpoint)
    ckpt_path = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    tok_path = Path(args.tokenizer) if args.tokenizer else _run_folder_of(run_dir) / "tokenizer.json"
    if not tok_path.is_file():
        return _refuse("sample", f"no tokenizer.json beside the checkpoints in {_run_folder_of(run_dir)}: pass the run "
                       "folder written by `lmlab train`, or --tokenizer FILE")
    ckpt = load_checkpoint(ckpt_path)
    tok = load_tokenizer(tok_path)
    problem = _tokenizer_problem(tok, tok_path, ckpt)
    if problem:
        return _refuse("sample", problem)
    ids = tok.encode(args.prompt)
    if not ids:
        return _refuse("sample", "the prompt is empty: give at least one character, e.g. --prompt $'\\n'")
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.tensor([ids], dtype=torch.long)
    for _ in range(args.num_samples):
        out = generate(ckpt.model, idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                       top_p=args.top_p, do_sample=not args.greedy, generator=gen)
        print(tok.decode(out[0].tolist()))
        print("-" * 40)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line: ``lmlab train: error: argument --lr: must be ... (see --help)``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lmlab", description="lmlab: a hands-on course on how language models work")
    sub = p.add_subparsers(dest="command", required=True)  # (subcommands are _Parser too)

    e = sub.add_parser("env", help="report versions, device, threads, data cache and version drift")
    e.add_argument("--check-device", action="store_true", help="compare a small GPT on the accelerator and the CPU")
    e.add_argument("--device", default=None, help="device to check (default: the one training would pick)")
    e.set_defaults(func=_cmd_env)

    d = sub.add_parser("data", help="download or verify the corpora")
    dsub = d.add_subparsers(dest="action", required=True)
    dl = dsub.add_parser("download", help="fetch corpora into a folder")
    dl.add_argument("name", nargs="*", help="corpus names (or --all)")
    dl.add_argument("--all", action="store_true", help="every corpus")
    dl.add_argument("--to", default=None, help="target folder (default: the data cache)")
    dv = dsub.add_parser("verify", help="check a folder against the known hashes")
    dv.add_argument("dir", nargs="?", default=None, help="folder (default: the data cache)")
    d.set_defaults(func=_cmd_data)

    t = sub.add_parser("train", help="train a language model on a corpus")
    t.add_argument("--corpus", default=None, help=f"corpus name (default: {DEFAULTS['corpus']})")
    t.add_argument("--model", choices=sorted(PRESETS), default=None, help=f"default: {DEFAULTS['model']}")
    t.add_argument("--preset", choices=["cpu", "gpu"], default=None, help="sizes (default: gpu if CUDA, else cpu)")
    t.add_argument("--tokenizer", choices=["char", "bpe"], default=None, help=f"default: {DEFAULTS['tokenizer']}")
    t.add_argument("--vocab-size", type=positive_int, default=None,
                   help=f"BPE vocabulary size (default: {DEFAULTS['vocab_size']})")
    t.add_argument("--out", default="runs/shakespeare", help="run folder: checkpoints, tokenizer, run record")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint (--max-steps and --eval-every may change)")
    t.add_argument("--overwrite", action="store_true", help="replace the run in --out (its files are deleted)")
    for name, check in [*OPTIONS.items(), ("checkpoint_every", positive_int), ("threads", positive_int)]:
        t.add_argument(f"--{name.replace('_', '-')}", type=check, default=None)
    t.add_argument("--seed", type=seed_value, default=None, help=f"default: {DEFAULTS['seed']}")
    t.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--checkpoint", required=True, help="run folder written by `lmlab train` (or its checkpoints/)")
    s.add_argument("--tokenizer", default=None, help="tokenizer file (default: tokenizer.json of the run folder)")
    s.add_argument("--prompt", default="\n")
    s.add_argument("--max-new-tokens", type=non_negative_int, default=300)
    s.add_argument("--temperature", type=positive_float, default=0.8)
    s.add_argument("--top-k", type=positive_int, default=None)
    s.add_argument("--top-p", type=probability, default=None)
    s.add_argument("--greedy", action="store_true", help="always take the most likely token")
    s.add_argument("--num-samples", type=positive_int, default=1)
    s.add_argument("--seed", type=seed_value, default=0)
    s.set_defaults(func=_cmd_sample)

    add_cli(sub)  # lmlab course build / grade
    return p


def _one_line(text: object) -> str:
    """A message on one line. Example: "no match:\\n  a: 1\\n  b: 2" -> "no match: a: 1; b: 2" """
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines[:1] + ["; ".join(lines[1:])]).strip()


def _error_line(err: BaseException) -> str:
    """lmlab's own errors (ValueError, OSError, RuntimeError...: they say what to do) as their message; anything
    else with its type, as it is likely a bug."""
    if isinstance(err, (ValueError, TypeError, OSError, RuntimeError, ArithmeticError)) and str(err):
        return _one_line(err)
    return f"{type(err).__name__}: {_one_line(err)} (set LMLAB_DEBUG=1 to see where)"


def main(argv: list[str] | None = None) -> int:
    """Run the command; every error is one line on stderr: exit code 2 for a command line that cannot be used,
    1 for an error while running, 130 for Ctrl-C. ``LMLAB_DEBUG=1`` shows tracebacks instead."""
    args = build_parser().parse_args(argv)
    who = f"lmlab {args.command}"
    format_warning = warnings.formatwarning
    warnings.formatwarning = lambda message, *rest, **kw: f"{who}: warning: {_one_line(message)}\n"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; the latest checkpoint on disk is intact (resume with --resume)", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that turns every error into one line
        if os.environ.get("LMLAB_DEBUG"):
            raise
        print(f"{who}: error: {_error_line(err)}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = format_warning


if __name__ == "__main__":
    sys.exit(main())
