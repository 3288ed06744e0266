"""Benchmark: byte-level BPE training and encoding on Tiny Shakespeare, one thread.

Compares
  (a) lmlab.tokenizers.BPETokenizer.train (incremental pair counts over distinct chunks),
  (b) the textbook trainer written below (recount every pair after every merge), on a slice of the text
      because it is slow, with lmlab timed on the same slice for a fair ratio; their merges must be equal,
  (c) Hugging Face `tokenizers` BpeTrainer with the ByteLevel pre-tokenizer (Rust),
and encoding throughput of lmlab against its export to a Hugging Face fast tokenizer.

Usage:  python benchmarks/bpe.py [--vocab-size 1000] [--textbook-chars 200000] [--data-dir DIR]
Prints a markdown table. Needs tinyshakespeare/input.txt in LMLAB_DATA_DIR (or --data-dir).
"""

from __future__ import annotations

import argparse
import os

# one thread everywhere, before the Rust/torch libraries start their pools
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from lmlab.data import load_text  # noqa: E402
from lmlab.tokenizers import PATTERNS, BPETokenizer, textbook_merges  # noqa: E402




def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab-size", type=int, default=1000)
    ap.add_argument("--textbook-chars", type=int, default=200_000, help="slice for the slow textbook trainer (0: skip)")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    text = load_text("tinyshakespeare", data_dir=args.data_dir)
    mb = len(text.encode("utf-8")) / 1e6
    V = args.vocab_size
    rows = []

    tok, t_full = timed(lambda: BPETokenizer().train(text, V))
    rows.append((f"lmlab train, full text ({mb:.2f} MB), vocab {V}", f"{t_full:.2f} s", f"{len(tok.merges)} merges"))

    if args.textbook_chars:
        part = text[: args.textbook_chars]
        fast_part, t_fast = timed(lambda: BPETokenizer().train(part, V))
        slow, t_slow = timed(lambda: textbook_merges(part, V, PATTERNS["gpt2"]))
        same = "merges identical" if slow == fast_part.merges else "MERGES DIFFER"
        rows.append((f"lmlab train, first {len(part):,} chars", f"{t_fast:.2f} s", ""))
        rows.append((f"textbook train, first {len(part):,} chars", f"{t_slow:.2f} s", f"{t_slow / t_fast:.0f}x slower; {same}"))

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def hf_train():
        hf = Tokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=V, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False, special_tokens=[]
        )
        hf.train_from_iterator([text], trainer=trainer)
        return hf

    hf_trained, t_hf = timed(hf_train)
    rows.append(("HF tokenizers BpeTrainer (Rust), full text", f"{t_hf:.2f} s", f"vocab {hf_trained.get_vocab_size()}"))

    # encoding throughput (fresh tokenizer objects, so lmlab's chunk cache starts empty)
    with tempfile.TemporaryDirectory() as d:
        tok.save(Path(d) / "bpe.json")
        cold = BPETokenizer.load(Path(d) / "bpe.json")
    ids, t_enc = timed(lambda: cold.encode(text))
    _, t_enc_warm = timed(lambda: cold.encode(text))
    fast = tok.to_hf().backend_tokenizer
    hf_ids, t_hf_enc = timed(lambda: fast.encode(text, add_special_tokens=False).ids)
    lines = text.splitlines(keepends=True)
    batch_ids, t_hf_batch = timed(lambda: [i for e in fast.encode_batch(lines, add_special_tokens=False) for i in e.ids])
    rows.append(("lmlab encode, full text (cold cache)", f"{mb / t_enc:.1f} MB/s", f"{len(ids):,} tokens, {mb * 1e6 / len(ids):.2f} bytes/token"))
    rows.append(("lmlab encode, full text (warm cache)", f"{mb / t_enc_warm:.1f} MB/s", ""))
    rows.append(("HF fast tokenizer (export), one string", f"{mb / t_hf_enc:.1f} MB/s", "ids equal lmlab" if hf_ids == ids else "IDS DIFFER"))
    rows.append(("HF fast tokenizer (export), encode_batch of lines", f"{mb / t_hf_batch:.1f} MB/s", "ids equal lmlab" if batch_ids == ids else "ids differ"))

    print("| what | time / speed | notes |")
    print("|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
