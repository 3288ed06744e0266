"""How quickly the widgets of notebooks 01-03 answer a control change, at the notebooks' sizes.

Builds each widget on the data its notebook uses (the order-2 Markov source of notebook 01, the bigram counts of
300,000 characters of Tiny Shakespeare for notebook 02, the first 5,000 characters for notebook 03's BPE stepper)
and moves its controls as a learner does. Each change is timed from the control's new value to the new picture
or text (``last_update_seconds``); the table shows the median and the slowest of ``--repeats`` changes.

    python benchmarks/widgets_00_03.py [--repeats 9] [--threads 2]

Goal: every update under 0.1 s on a laptop CPU, so that a slider feels immediate. The widgets run their updates
on one thread (lmlab/widgets/one_thread.py): with two, on a machine whose cores were busy, the optimizer
explorer took 0.7 s (median) instead of 0.05 s.
"""

from __future__ import annotations

import argparse
import statistics


def _time(widget, control, values) -> list[float]:
    times = []
    for value in values:
        control.value = value
        times.append(widget.last_update_seconds)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="control changes timed per control")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()

    import torch

    from lmlab.data import MarkovSource, load_text, train_val_split
    from lmlab.tokenizers import CharTokenizer
    from lmlab.widgets.bpe_stepper import BPEStepper
    from lmlab.widgets.optimizers import OptimizerExplorer
    from lmlab.widgets.smoothing import SmoothingExplorer

    torch.set_num_threads(args.threads)
    n = args.repeats
    rows = []

    src = MarkovSource("abcdefgh", order=2, seed=0)
    smoothing = SmoothingExplorer(src.sample_ids(64_000, seed=0), src.sample_ids(20_000, seed=100), 8, n=3,
                                  sizes=[250, 2000, 16_000, 64_000], n_train=2000, alphabet="abcdefgh")
    rows.append(("01 smoothing: k slider", _time(smoothing, smoothing.k_slider, [10 ** (-3 + 5 * i / n) for i in range(n)])))
    rows.append(("01 smoothing: training size", _time(smoothing, smoothing.size_slider,
                                                      [smoothing.sizes[i % 4] for i in range(n)])))

    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    V = tok.vocab_size
    ids, _ = train_val_split(torch.tensor(tok.encode(text[:300_000])), val_fraction=0.1)
    C = torch.bincount(ids[:-1] * V + ids[1:], minlength=V * V).reshape(V, V).float()
    optimizer = OptimizerExplorer(C, "SGD", lr=100.0, steps=100)
    rows.append(("02 optimizer: lr slider, 100 steps", _time(optimizer, optimizer.lr_slider,
                                                             [10 ** (-2 + 5 * i / n) for i in range(n)])))
    rows.append(("02 optimizer: buttons, 100 steps", _time(optimizer, optimizer.optimizer_buttons,
                                                           [("SGD", "momentum", "Adam")[i % 3] for i in range(n)])))

    stepper = BPEStepper(text[:5000], n_merges=40)
    rows.append(("03 BPE stepper: merges slider", _time(stepper, stepper.slider, [(7 * i) % 41 for i in range(n)])))

    print(f"threads {args.threads}, {n} changes per control\n")
    print("| widget and control | median ms | slowest ms |")
    print("|---|---:|---:|")
    for name, times in rows:
        print(f"| {name} | {1000 * statistics.median(times):.1f} | {1000 * max(times):.1f} |")


if __name__ == "__main__":
    main()
