"""How quickly the attention explorer answers a control change, for 128 and 512 tokens.

Builds a GPT of the course notebook's size (4 layers x 4 heads, n_embd 128, random weights), opens an
``AttentionExplorer`` on a text of T tokens and changes its controls the way a learner does (head,
query token, layer; the lines view's query). Each change is timed from the control's new value to the new PNG bytes in the
image widget (``explorer.last_update_seconds``); the table shows the median and the slowest of
``--repeats`` changes per view, and the time to load a new text (forward pass + first image).

    python benchmarks/explorer.py [--repeats 9] [--threads 1]

Goal: a control change well under 0.2 s at 512 tokens on a 2-core CPU, so sliding through heads feels
immediate.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="control changes timed per view and length")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import torch

    from lmlab.models import GPT, GPTConfig
    from lmlab.tokenizers import CharTokenizer
    from lmlab.viz import AttentionExplorer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = "The quick brown fox jumps over the lazy dog, and the dog does not mind at all. "
    text = (base * 10)[:600]
    tok = CharTokenizer.from_text(text)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=512, n_layer=4, n_head=4, n_embd=128)).eval()

    AttentionExplorer(model, tok, text[:8])  # first use imports matplotlib and ipywidgets: not timed
    rows = []
    for T in (128, 512):
        start = time.perf_counter()
        explorer = AttentionExplorer(model, tok, text[:T], max_tokens=512)
        load = time.perf_counter() - start
        plans = {
            "head": [("head", (i % 3) + 1 if i % 2 == 0 else 0) for i in range(args.repeats)],
            "query": [("query", (7 * i + 3) % T) for i in range(args.repeats)],
            "rollout": [("layer" if i % 2 else "query", (i % 4) if i % 2 else (5 * i + 1) % T)
                        for i in range(args.repeats)],
            "lines": [("query", (11 * i + 2) % T) for i in range(args.repeats)],
        }
        for view, changes in plans.items():
            explorer.view = view
            times = []
            for control, value in changes:
                widget = getattr(explorer, control)
                if widget.value == value:  # no change, no redraw: pick another value
                    value = (value + 1) % len(widget.options)
                widget.value = value
                times.append(explorer.last_update_seconds)
            rows.append((T, view, statistics.median(times), max(times), load))

    print(f"AttentionExplorer update time (GPT 4 layers x 4 heads, n_embd 128; torch threads {args.threads}; "
          f"median and max of {args.repeats} control changes)\n")
    print("| tokens | view | median update (ms) | max update (ms) | new text: forward + first image (ms) |")
    print("|---:|---|---:|---:|---:|")
    for T, view, med, worst, load in rows:
        print(f"| {T} | {view} | {1000 * med:.0f} | {1000 * worst:.0f} | {1000 * load:.0f} |")


if __name__ == "__main__":
    main()
