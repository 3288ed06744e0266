"""Notebook 02's training cell: the bigram logits table trained by AdamW on the first 300,000 characters."""

from lmlab.models import BigramLM
from shakespeare import char_run


def bigram(seed: int):
    return char_run(seed, BigramLM, block_size=32, batch_size=32, n_chars=300_000,
                    max_steps=200, lr=0.1, warmup_steps=20, weight_decay=0.0, eval_every=40, eval_batches=5)


BANDS = {"nb02_bigram": bigram}
