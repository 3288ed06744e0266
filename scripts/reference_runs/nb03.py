"""Notebook 03's training cell: a one-layer character GPT with 32-dimensional embeddings, 300 steps."""

import torch

from lmlab.data import LMBatches
from lmlab.models import GPT, GPTConfig
from lmlab.train import TrainConfig, train
from shakespeare import char_splits


def embed(seed: int):
    chars, train_ids, val_ids = char_splits()
    torch.set_num_threads(1)  # as in the notebook
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=chars.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32))
    history = train(model, LMBatches(train_ids, 32, 64, seed=seed), LMBatches(val_ids, 32, 32, random=False),
                    TrainConfig(max_steps=300, lr=3e-3, warmup_steps=30, eval_every=50, eval_batches=10,
                                device="cpu", seed=seed, progress=False))
    return history.val_steps, history.val_losses


BANDS = {"nb03_embed": embed}
