"""Training-step and generation throughput: lmlab.GPT against transformers' GPT2LMHeadModel, same weights.

Prints a markdown table: tokens/s for forward + backward + AdamW step (median of repetitions), the ratio
lmlab / transformers, and the model FLOPs utilization against this machine's matmul peak measured in the
same run; then greedy generation throughput (new tokens/s) with the KV cache, batch 1 and 8: the default
(growing) cache, the static cache (``static_cache=True``) and its compiled step (``compile=True``, compiled in a
warm-up call before the timing), against transformers' ``generate``; the ratio is the default path's.

    python benchmarks/train_throughput.py [--sizes notebook,gpt2-small] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lmlab.generate import generate
from lmlab.interop import to_hf
from lmlab.models import GPT, GPTConfig

SIZES = {
    "notebook": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, batch=32),
    "gpt2-small": dict(vocab_size=50257, block_size=256, n_layer=12, n_head=12, n_embd=768, batch=4),
}


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times)


def step_time(model, x, y, reps: int, hf: bool) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss if hf else model(x, y)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import transformers

    transformers.logging.set_verbosity_error()  # keep its notes about the converted config out of the table
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="notebook,gpt2-small")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    peak = matmul_peak()
    print(f"threads {torch.get_num_threads()}, measured fp32 matmul peak {peak / 1e9:.1f} GFLOP/s\n")
    print("| size | lmlab tok/s | transformers tok/s | ratio | lmlab MFU |")
    print("|---|---:|---:|---:|---:|")
    for name in args.sizes.split(","):
        s = dict(SIZES[name])
        B = s.pop("batch")
        torch.manual_seed(0)
        ours = GPT(GPTConfig(**s, dropout=0.0))
        theirs = to_hf(ours)
        theirs.train()
        x = torch.randint(0, s["vocab_size"], (B, s["block_size"]))
        y = torch.roll(x, -1, 1)
        t_ours = step_time(ours, x, y, args.reps, hf=False)
        t_hf = step_time(theirs, x, y, args.reps, hf=True)
        tokens = B * s["block_size"]
        n_params = ours.num_params(non_embedding=False)
        flops = 6 * n_params * tokens + 12 * s["n_layer"] * s["n_embd"] * s["block_size"] * tokens
        print(f"| {name} | {tokens / t_ours:,.0f} | {tokens / t_hf:,.0f} | {t_hf / t_ours:.2f} | "
              f"{flops / t_ours / peak:.1%} |")

    print("\n| generation (notebook size, greedy, 100 new tokens) | lmlab tok/s | static cache | compile=True "
          "| transformers tok/s | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    s = dict(SIZES["notebook"], block_size=256)
    s.pop("batch")
    torch.manual_seed(0)
    ours = GPT(GPTConfig(**s)).eval()
    theirs = to_hf(ours, eos_id=0).eval()
    for B in (1, 8):
        idx = torch.randint(0, s["vocab_size"], (B, 16))
        res = {}
        for label, fn in [("lmlab", lambda: generate(ours, idx, 100, do_sample=False)),
                          ("static", lambda: generate(ours, idx, 100, do_sample=False, static_cache=True)),
                          ("compile", lambda: generate(ours, idx, 100, do_sample=False, compile=True)),
                          ("hf", lambda: theirs.generate(idx, max_new_tokens=100, min_new_tokens=100,
                                                         do_sample=False, attention_mask=torch.ones_like(idx)))]:
            fn()
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            res[label] = B * 100 / statistics.median(times)
        print(f"| batch {B} | {res['lmlab']:,.0f} | {res['static']:,.0f} | {res['compile']:,.0f} | {res['hf']:,.0f} "
              f"| {res['lmlab'] / res['hf']:.2f} |")


if __name__ == "__main__":
    main()
