"""The `lmlab` command.

    lmlab env [--check-device]                 what is installed, the device, the data cache, version drift
    lmlab data download --all --to DIR         fetch every corpus once (for offline classrooms)
    lmlab data verify [DIR]                    check a data folder against the known SHA-256 hashes
    lmlab train --corpus tinyshakespeare --model gpt [--preset cpu|gpu] [--resume]
    lmlab sample --checkpoint RUN_DIR --prompt "ROMEO:" [--temperature 0.8 --top-k 40]
    lmlab course build NOTEBOOKS... --out DIR  student versions and a solutions manual
    lmlab course grade SUBMISSIONS --out grades.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lmlab.course import add_cli
from lmlab.files import atomic_write_json
from lmlab.runconfig import OPTIONS, PRESETS, RunConfig


def _cmd_env(args) -> int:
    from lmlab.envreport import check_device, report

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
            print(f"name a corpus ({', '.join(CORPORA)}) or pass --all", file=sys.stderr)
            return 2
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


def _run_tokenizer(path: Path, text: str, run: RunConfig):
    """The run's tokenizer: the one saved in the run folder, else a new one (saved there)."""
    from lmlab.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

    if path.is_file():
        return load_tokenizer(path)
    if run.tokenizer == "char":
        tok = CharTokenizer.from_text(text)
    else:
        tok = BPETokenizer()
        tok.train(text, run.vocab_size)
    tok.save(path)
    return tok


def _new_run(out: Path, args) -> RunConfig | None:
    """The preset (gpu if CUDA, else cpu) changed by the options given; None after saying on stderr that
    ``out`` already holds a run."""
    import torch

    if (out / "checkpoints").exists() and any((out / "checkpoints").iterdir()):
        print(f"{out} already holds a run: pass --resume to continue it or --out to start a new one "
              "(nothing was overwritten)", file=sys.stderr)
        return None
    preset = args.preset or ("gpu" if torch.cuda.is_available() else "cpu")
    return RunConfig.new(args.model, preset, {name: getattr(args, name) for name in OPTIONS}, corpus=args.corpus,
                         tokenizer=args.tokenizer, vocab_size=args.vocab_size, seed=args.seed, threads=args.threads)


def _resumed_run(out: Path, model: str) -> RunConfig | None:
    """The run recorded in ``out/run.json``, or None after saying on stderr what is wrong: no record, a
    damaged one, or one from another lmlab version whose settings this version cannot rebuild."""
    import lmlab
    from lmlab.repro import RunRecord

    path = out / "run.json"
    if not path.is_file():
        print(f"nothing to resume in {out}: no run.json there. Start a run without --resume first.", file=sys.stderr)
        return None
    try:
        record = RunRecord.load(path)
    except ValueError as e:
        print(f"cannot resume: {e}", file=sys.stderr)
        return None
    try:
        return RunConfig.from_dict(record.config, model=model)
    except ValueError as e:
        print(f"cannot resume {out}: its run.json (written by lmlab {record.lmlab_version or '?'}; this is "
              f"lmlab {lmlab.__version__}) {e}. Resume it with the lmlab version that started it, or start a new "
              "run with --out", file=sys.stderr)
        return None


def _cmd_train(args) -> int:
    import torch

    from lmlab.data import LMBatches, load_text, train_val_split
    from lmlab.device import pick_device
    from lmlab.repro import RunRecord, seed_everything
    from lmlab.train import train

    out = Path(args.out)
    run = _resumed_run(out, args.model) if args.resume else _new_run(out, args)
    if run is None:
        return 2
    seed_everything(run.seed, threads=run.threads)
    text = load_text(run.corpus)
    out.mkdir(parents=True, exist_ok=True)
    tok = _run_tokenizer(out / "tokenizer.json", text, run)
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
    record.save(out / "run.json")
    print(f"training {run.model} ({model.num_params():,} parameters) on {run.corpus} "
          f"({len(train_ids):,} train / {len(val_ids):,} val tokens) on {pick_device(args.device)}; run folder {out}",
          flush=True)
    t0 = time.perf_counter()
    history = train(model, train_batches, val_batches, config, resume=bool(args.resume))
    minutes = (time.perf_counter() - t0) / 60
    record.finish({"best_val_loss": history.best_val_loss, "final_train_loss": history.final_train_loss,
                   "steps": history.steps[-1] if history.steps else 0, "minutes": round(minutes, 3)})
    record.save(out / "run.json")
    atomic_write_json(out / "history.json", history.to_dict())  # a kill leaves the old file or the new one
    print(f"done in {minutes:.1f} min: best validation loss {history.best_val_loss:.4f}; "
          f"sample with: lmlab sample --checkpoint {out}")
    return 0


def _cmd_sample(args) -> int:
    import torch

    from lmlab.checkpoint import load_checkpoint
    from lmlab.generate import generate
    from lmlab.tokenizers import load_tokenizer

    run_dir = Path(args.checkpoint)
    ckpt_path = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    tok_path = next((p / "tokenizer.json" for p in (run_dir, run_dir.parent, run_dir.parent.parent)
                     if (p / "tokenizer.json").is_file()), None)
    if tok_path is None:
        print(f"no tokenizer.json found in {run_dir} or its parents: pass the run folder written by `lmlab train`",
              file=sys.stderr)
        return 2
    tok = load_tokenizer(tok_path)
    ckpt = load_checkpoint(ckpt_path)
    model = ckpt.model
    ids = tok.encode(args.prompt)
    if not ids:
        print("the prompt is empty: give at least one character, e.g. --prompt $'\\n'", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.tensor([ids], dtype=torch.long)
    for _ in range(args.num_samples):
        out = generate(model, idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                       top_p=args.top_p, do_sample=not args.greedy, generator=gen)
        print(tok.decode(out[0].tolist()))
        print("-" * 40)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmlab", description="lmlab: a hands-on course on how language models work")
    sub = p.add_subparsers(dest="command", required=True)

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
    t.add_argument("--corpus", default="tinyshakespeare")
    t.add_argument("--model", choices=sorted(PRESETS), default="gpt")
    t.add_argument("--preset", choices=["cpu", "gpu"], default=None, help="sizes (default: gpu if CUDA, else cpu)")
    t.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    t.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size")
    t.add_argument("--out", default="runs/shakespeare", help="run folder: checkpoints, tokenizer, run record")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    for name, typ in [*OPTIONS.items(), ("checkpoint_every", int), ("threads", int)]:
        t.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None)
    t.add_argument("--seed", type=int, default=1337)
    t.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    t.add_argument("--compile", action="store_true", help="torch.compile the training step, once (about a minute "
                   "at the start): pays on a GPU for runs of a few thousand steps or more, rarely on a CPU")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--checkpoint", required=True, help="run folder written by `lmlab train` (or its checkpoints/)")
    s.add_argument("--prompt", default="\n")
    s.add_argument("--max-new-tokens", type=int, default=300)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--top-k", type=int, default=None)
    s.add_argument("--top-p", type=float, default=None)
    s.add_argument("--greedy", action="store_true", help="always take the most likely token")
    s.add_argument("--num-samples", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_sample)

    add_cli(sub)  # lmlab course build / grade
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as err:
        # clear errors raised by lmlab (CheckpointError, CheckpointWriteError, DownloadError...) without a traceback
        print(f"lmlab {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the latest checkpoint on disk is intact (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
