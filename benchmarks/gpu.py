"""lmlab on a GPU against nanoGPT (and transformers), side by side in one run.

Rows (``--rows``, all by default):
- ``step``: one training step (forward, backward, clip, fused AdamW; bf16 autocast) of a GPT-2-small-sized model,
  B=16, T=1024, eager and ``torch.compile``d, with the model FLOPs utilization against a bf16 matmul peak
  measured in the same run; the compiled step also with the vocabulary padded to 50304 (lmlab
  ``pad_vocab_multiple=64``, nanoGPT's own default). The three models get the same weights and their losses
  are compared.
- ``loop``: the whole command on Tiny Shakespeare, characters, nanoGPT's config (6 x 384, T=256, B=64),
  2000 steps: `lmlab train --preset gpu` and nanoGPT's `train.py config/train_shakespeare_char.py`, ms per step
  in the loop (between logged steps, evaluations left out), wall time, final validation loss and the time
  from the command's start to validation loss 1.47 (``--target``).
- ``generate``: greedy generation with a 124M GPT (random weights, bf16), batch 1 and 8, new tokens/s:
  lmlab (growing KV cache), lmlab ``compile=True`` (static cache, CUDA graphs), transformers ``generate``.

nanoGPT (MIT licence) is not part of this repository: ``--nanogpt PATH`` names a checkout of it (git-ignored,
e.g. ``.peers/nanoGPT``); its ``model.py`` is imported from there and its ``train.py`` run there on data this
script writes into a temporary folder. Without it, its column stays empty.

    python benchmarks/gpu.py --nanogpt .peers/nanoGPT [--save]     on a CUDA machine; --save writes README.md
    python benchmarks/gpu.py --smoke [--nanogpt PATH]               tiny sizes on the CPU: checks that it runs
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lmlab.data import load_text, offline_env
from lmlab.generate import generate
from lmlab.models import GPT, GPTConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GPT2 = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
SMOKE = dict(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=32)


class Setting:
    """Sizes and repetitions of one run: the real ones on a GPU, tiny ones with ``--smoke``."""

    def __init__(self, smoke: bool, device: torch.device):
        self.smoke, self.device = smoke, device
        self.model = SMOKE if smoke else GPT2
        self.batch = 2 if smoke else 16
        self.reps = 2 if smoke else 10
        self.dtype = torch.bfloat16 if device.type == "cuda" else None  # autocast dtype of the training steps
        self.steps = 40 if smoke else 2000  # the loop row
        self.new_tokens = 8 if smoke else 200


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device) -> float:
    """FLOP/s of a large matrix product in bf16 (fp32 on the CPU), best of 5."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(6):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def load_nanogpt(path: Path):
    """nanoGPT's model.py, imported from its folder."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", path / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_models(s: Setting, nanogpt: Path | None, pad: bool, hf: bool) -> dict[str, torch.nn.Module]:
    """lmlab's GPT, nanoGPT's and (``hf``) transformers' GPT2LMHeadModel, all with the same weights."""
    from lmlab.interop import to_hf

    torch.manual_seed(0)
    ours = GPT(GPTConfig(**s.model, dropout=0.0, pad_vocab_multiple=64 if pad else 1)).to(s.device)
    ours.check_ids = False  # as in lmlab's loop after its first step
    models = {"lmlab": ours}
    if nanogpt is not None:
        nano = load_nanogpt(nanogpt)
        V = ours.config.padded_vocab_size
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
            theirs = nano.GPT(nano.GPTConfig(**{**s.model, "vocab_size": V}, dropout=0.0, bias=True))
        missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)  # the same names
        assert not unexpected and all(k.endswith(".attn.bias") for k in missing), (missing, unexpected)  # its masks
        models["nanoGPT"] = theirs.to(s.device)
    if hf:
        models["transformers"] = to_hf(ours).to(s.device).train()
    return models


def step_ms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, s: Setting, hf: bool) -> tuple[float, float]:
    """Median ms of a training step (forward, backward, clip, fused AdamW) and the last loss."""
    fused = {"fused": True} if s.device.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, **fused)
    times = []
    for i in range(s.reps + 3):  # 3 warm-up steps (the compiled ones compile there)
        sync(s.device)
        t0 = time.perf_counter()
        with torch.autocast(s.device.type, dtype=s.dtype, enabled=s.dtype is not None):
            loss = model(input_ids=x, labels=x).loss if hf else model(x, y)[1]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(s.device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, loss.detach().item()


def step_rows(s: Setting, nanogpt: Path | None, compile_too: bool) -> tuple[list[list[str]], list[str]]:
    """Table rows of the training step (eager, compiled, compiled with the padded vocabulary) and notes."""
    peak = matmul_peak(s.device)
    B, T = s.batch, s.model["block_size"]
    x = torch.randint(0, s.model["vocab_size"], (B, T), device=s.device)
    y = torch.roll(x, -1, 1)
    n_params = GPT(GPTConfig(**s.model)).num_params()  # as nanoGPT's estimate_mfu: without the position table
    flops = 6 * n_params * B * T + 12 * s.model["n_layer"] * s.model["n_embd"] * T * B * T  # per step
    size = f"{s.model['n_layer']} x {s.model['n_embd']}, V={s.model['vocab_size']}, B={B}, T={T}"
    rows, notes = [], [f"matmul peak measured here: {peak / 1e12:.1f} TFLOP/s "
                       f"({'bf16' if s.device.type == 'cuda' else 'fp32'})"]
    variants = [("eager", False, False)]
    if compile_too:
        variants += [("torch.compile", True, False),
                     ("torch.compile, vocabulary padded to a multiple of 64", True, True)]
    for label, compiled, pad in variants:
        torch._dynamo.reset()
        models = build_models(s, nanogpt, pad, hf=not compiled)
        cells, losses = {}, {}
        for name, model in models.items():
            run = torch.compile(model) if compiled else model
            ms, losses[name] = step_ms(run, x, y, s, hf=name == "transformers")
            cells[name] = f"{ms:.1f} ({flops / (ms / 1e3) / peak:.1%})" if compiled else f"{ms:.1f}"
        del models
        if s.device.type == "cuda":
            torch.cuda.empty_cache()
        rows.append([f"step ({size}), {label}, ms" + (" (MFU)" if compiled else ""),
                     cells.get("lmlab", ""), cells.get("nanoGPT", ""), cells.get("transformers", "")])
        notes.append(f"{label}: losses after the timed steps " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    return rows, notes


def run_command(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """Run ``cmd``; its wall seconds and its output lines, each with the seconds from the start to when it came."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(time.perf_counter() - t0, line.rstrip("\n")) for line in proc.stdout]
    if proc.wait() != 0:
        tail = "\n".join(line for _, line in lines[-20:])
        raise SystemExit(f"{' '.join(cmd[:4])}... failed (exit code {proc.returncode}):\n{tail}")
    return time.perf_counter() - t0, lines


def per_step_ms(logged: list[tuple[int, float]], evals: set[int]) -> float:
    """Median ms per step between consecutive logged steps (step, seconds), leaving out the intervals where
    an evaluation ran: nanoGPT evaluates before step s (s in evals), lmlab after it (``evals_after``)."""
    rates = [(t2 - t1) / (s2 - s1) for (s1, t1), (s2, t2) in zip(logged, logged[1:])
             if s2 > s1 and not any(s1 < e <= s2 for e in evals)]
    return statistics.median(rates) * 1e3 if rates else float("nan")


def lmlab_run(s: Setting, compiled: bool, work: Path, env: dict[str, str], target: float) -> dict[str, float]:
    """`lmlab train --preset gpu` for ``s.steps`` steps: ms per step, wall seconds, final val, seconds to target."""
    out = work / f"lmlab-{'compiled' if compiled else 'eager'}"
    cmd = [sys.executable, "-u", "-m", "lmlab.cli", "train", "--corpus", "tinyshakespeare", "--preset", "gpu",
           "--max-steps", str(s.steps), "--out", str(out), "--no-progress", "--device", str(s.device)]
    if s.smoke:
        cmd += ["--block-size", "32", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--batch-size", "4",
                "--eval-every", "20"]
    else:
        cmd += ["--eval-every", "250"]  # evaluate where nanoGPT does (its config's eval_interval)
    wall, lines = run_command(cmd + (["--compile"] if compiled else []), ROOT, env)
    t_train = next(t for t, line in lines if line.startswith("training "))  # printed just before train()
    h = json.loads((out / "history.json").read_text())
    at = dict(zip(h["steps"], h["times"]))
    logged = list(zip(h["steps"], h["times"]))
    hit = next((s_ for s_, v in zip(h["val_steps"], h["val_losses"]) if v <= target and s_ in at), None)
    return {"ms": per_step_ms(logged, {v + 1 for v in h["val_steps"]}), "wall": wall, "val": h["val_losses"][-1],
            "to_target": t_train + at[hit] if hit is not None else float("nan")}


def nanogpt_data(work: Path, env: dict[str, str]) -> None:
    """Tiny Shakespeare as nanoGPT's data/shakespeare_char/prepare.py writes it (characters, 90% / 10%)."""
    text = load_text("tinyshakespeare", data_dir=env.get("LMLAB_DATA_DIR"))
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    folder = work / "data" / "shakespeare_char"
    folder.mkdir(parents=True)
    n = int(len(text) * 0.9)
    import numpy as np

    for name, part in (("train", text[:n]), ("val", text[n:])):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(folder / f"{name}.bin")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)


def nanogpt_run(s: Setting, compiled: bool, nanogpt: Path, work: Path, target: float) -> dict[str, float]:
    """nanoGPT's train.py with config/train_shakespeare_char.py for ``s.steps`` steps, measured as lmlab's run."""
    for name in ("train.py", "configurator.py", "config"):  # it reads them from the folder it runs in
        if not (work / name).exists():
            (work / name).symlink_to(nanogpt / name)
    args = [f"--max_iters={s.steps}", f"--lr_decay_iters={s.steps}", f"--compile={compiled}",
            f"--device={s.device.type}", f"--out_dir={work / ('out-compiled' if compiled else 'out-eager')}"]
    if s.smoke:
        args += ["--dtype=float32", "--eval_interval=20", "--eval_iters=2", "--log_interval=10", "--block_size=32",
                 "--n_layer=1", "--n_head=2", "--n_embd=32", "--batch_size=4"]
    wall, lines = run_command([sys.executable, "-u", "train.py", "config/train_shakespeare_char.py", *args], work,
                              dict(os.environ))
    iters = [(int(m[1]), t) for t, line in lines if (m := re.match(r"iter (\d+): loss", line))]
    evals = [(int(m[1]), float(m[2]), t) for t, line in lines
             if (m := re.match(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", line))]
    hit = next((t for _, v, t in evals if v <= target), float("nan"))
    return {"ms": per_step_ms(iters, {e for e, _, _ in evals}), "wall": wall, "val": evals[-1][1],
            "to_target": hit}


def loop_rows(s: Setting, nanogpt: Path | None, target: float, compile_too: bool) -> list[list[str]]:
    """The whole training commands, compile on and off: ms per step, wall time, time to ``target``."""
    env = offline_env(ROOT.parent / "shared" / "data", dict(os.environ))
    modes = (True, False) if compile_too else (False,)
    results: dict[tuple[str, bool], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for compiled in modes:
            results["lmlab", compiled] = lmlab_run(s, compiled, work, env, target)
        if nanogpt is not None:
            nanogpt_data(work, env)
            for compiled in modes:
                results["nanoGPT", compiled] = nanogpt_run(s, compiled, nanogpt, work, target)
    rows = []
    size = "6 x 384, T=256, B=64" if not s.smoke else "1 x 32, T=32, B=4"
    for compiled in modes:
        what = f"Shakespeare-char ({size}), {s.steps} steps, compile {'on' if compiled else 'off'}"
        r = {name: results.get((name, compiled)) for name in ("lmlab", "nanoGPT")}
        rows.append([f"{what}: ms per step in the loop"] + [f"{x['ms']:.1f}" if x else "" for x in r.values()] + [""])
        rows.append([f"{what}: whole command, s (final val loss)"]
                    + [f"{x['wall']:.1f} ({x['val']:.3f})" if x else "" for x in r.values()] + [""])
        rows.append([f"{what}: s from the start to val loss {target}"]
                    + [_seconds(x["to_target"]) if x else "" for x in r.values()] + [""])
    return rows


def _agree(a: torch.Tensor, b: torch.Tensor) -> str:
    """How many generated tokens are equal (in bf16, near-tied logits of random weights can tip a choice)."""
    if a.shape != b.shape:
        return f"no (shapes {tuple(a.shape)} and {tuple(b.shape)})"
    return "all" if torch.equal(a, b) else f"{(a == b).float().mean().item():.1%} of the tokens"


def _seconds(t: float) -> str:
    return "not reached" if t != t else f"{t:.1f}"  # NaN: never reached


def tokens_per_s(fn, n_new: int, s: Setting) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up (compiles)
    times = []
    for _ in range(max(3, s.reps // 3)):
        sync(s.device)
        t0 = time.perf_counter()
        out = fn()
        sync(s.device)
        times.append(time.perf_counter() - t0)
    return out.size(0) * n_new / statistics.median(times), out


def generate_rows(s: Setting, compile_too: bool) -> tuple[list[list[str]], list[str]]:
    """Greedy generation, new tokens/s at batch 1 and 8: lmlab, lmlab compile=True, transformers."""
    from lmlab.interop import to_hf

    torch.manual_seed(0)
    dtype = torch.bfloat16 if s.device.type == "cuda" else torch.float32
    ours = GPT(GPTConfig(**s.model)).to(s.device, dtype).eval()
    hf = to_hf(ours, eos_id=0).to(s.device, dtype).eval()
    n = s.new_tokens
    cells: dict[str, list[str]] = {"lmlab": [], "lmlab compile=True": [], "transformers": []}
    same = []
    for B in (1, 8):
        idx = torch.randint(0, s.model["vocab_size"], (B, 16), device=s.device)
        rate, plain = tokens_per_s(lambda: generate(ours, idx, n, do_sample=False), n, s)
        cells["lmlab"].append(f"{rate:,.0f}")
        if compile_too:
            rate, fast = tokens_per_s(lambda: generate(ours, idx, n, do_sample=False, compile=True), n, s)
            cells["lmlab compile=True"].append(f"{rate:,.0f}")
            same.append(f"batch {B}: compile=True gives the same tokens as without: {_agree(fast, plain)}")
        rate, theirs = tokens_per_s(lambda: hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=n,
                                                       min_new_tokens=n, do_sample=False), n, s)
        cells["transformers"].append(f"{rate:,.0f}")
        same.append(f"batch {B}: transformers gives the same tokens as lmlab: {_agree(theirs, plain)}")
    size = f"{s.model['n_layer']} x {s.model['n_embd']}, {dtype}".replace("torch.", "")
    rows = [[f"greedy generation ({size}), batch 1 / 8, new tokens/s", " / ".join(cells["lmlab"]), "",
             " / ".join(cells["transformers"])]]
    if compile_too:
        rows.append(["same, lmlab `generate(compile=True)` (static cache, CUDA graphs)",
                     " / ".join(cells["lmlab compile=True"]), "", ""])
    return rows, same


def versions(nanogpt: Path | None) -> str:
    cuda = torch.version.cuda or "none"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    commit = "not given"
    if nanogpt is not None:
        commit = "unknown commit"
        if (nanogpt / ".git").exists():
            git = subprocess.run(["git", "-C", str(nanogpt), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True)
            commit = "commit " + git.stdout.strip()
    return f"GPU: {gpu}, CUDA {cuda}, torch {torch.__version__}; nanoGPT: {commit}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nanogpt", type=Path, default=None, help="folder of a nanoGPT checkout (model.py, train.py)")
    p.add_argument("--rows", default="step,loop,generate", help="which rows: step, loop, generate")
    p.add_argument("--target", type=float, default=1.47, help="validation loss of the loop row's time to target")
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, to check the script runs")
    p.add_argument("--save", action="store_true", help="write the table into benchmarks/README.md (or --readme)")
    p.add_argument("--readme", type=Path, default=HERE / "README.md")
    args = p.parse_args(argv)
    if args.nanogpt is not None and not (args.nanogpt / "model.py").is_file():
        p.error(f"--nanogpt {args.nanogpt}: no model.py there; name the folder of a nanoGPT checkout")
    nanogpt = args.nanogpt.resolve() if args.nanogpt else None
    if not torch.cuda.is_available() and not args.smoke:
        print("no CUDA GPU here: run this on a GPU machine, or with --smoke to check that it runs (tiny sizes, CPU)")
        return 0
    s = Setting(args.smoke, torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    compile_too = not args.smoke  # compiling on the CPU takes minutes: tests/test_train.py covers it there
    rows, notes = [], [versions(nanogpt)]
    wanted = args.rows.split(",")
    if "step" in wanted:
        r, n = step_rows(s, nanogpt, compile_too)
        rows, notes = rows + r, notes + n
    if "loop" in wanted:
        rows += loop_rows(s, nanogpt, args.target, compile_too)
    if "generate" in wanted:
        r, n = generate_rows(s, compile_too)
        rows, notes = rows + r, notes + n
    table = "| what | lmlab | nanoGPT | transformers |\n|---|---:|---:|---:|\n"
    table += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    text = table + "\n" + "".join(f"- {n}\n" for n in notes)
    print(text)
    if args.save:
        sys.path.insert(0, str(HERE))
        from run_all import machine, write_readme

        write_readme(machine(), {"gpu": f"## gpu\n\n{text}"}, path=args.readme)
        print(f"wrote {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
