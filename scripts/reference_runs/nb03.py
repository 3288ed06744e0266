"""Notebook 03's training cell: a bigram model factored through a 16-dimensional embedding, 300 steps."""

import torch.nn as nn
import torch.nn.functional as F

from shakespeare import char_run


class EmbeddingBigram(nn.Module):
    """As in the notebook: logits = lm_head(wte(idx)), a (V, V) table of rank at most n_embd (plus a bias)."""

    def __init__(self, vocab_size, n_embd):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)  # (V, d)
        self.lm_head = nn.Linear(n_embd, vocab_size)  # (d,) -> (V,)

    def forward(self, idx, targets=None):
        logits = self.lm_head(self.wte(idx))  # (B, T) -> (B, T, d) -> (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def embed(seed: int):
    return char_run(seed, lambda vocab_size: EmbeddingBigram(vocab_size, n_embd=16), block_size=32, batch_size=64,
                    val_batch_size=32, threads=1, max_steps=300, lr=3e-2, warmup_steps=30, eval_every=50,
                    eval_batches=10)


BANDS = {"nb03_embed": embed}
