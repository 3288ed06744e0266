"""Notebook 03's training cell: a one-layer character GPT with 32-dimensional embeddings, 300 steps."""

from lmlab.models import GPT, GPTConfig
from shakespeare import char_run


def embed(seed: int):
    def model(vocab_size):
        return GPT(GPTConfig(vocab_size=vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32))

    return char_run(seed, model, block_size=32, batch_size=64, val_batch_size=32, threads=1,
                    max_steps=300, lr=3e-3, warmup_steps=30, eval_every=50, eval_batches=10)


BANDS = {"nb03_embed": embed}
