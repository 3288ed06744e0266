"""Notebook 07's training cell: a 2-layer character-level GPT on Tiny Shakespeare, 400 steps."""

import torch

from lmlab.data import LMBatches
from lmlab.models import GPT, GPTConfig
from lmlab.train import TrainConfig, train
from shakespeare import char_splits


def gpt(seed: int):
    tok, train_ids, val_ids = char_splits()
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64))
    history = train(model, LMBatches(train_ids, block_size=64, batch_size=32, seed=seed),
                    LMBatches(val_ids, block_size=64, batch_size=32, random=False),
                    TrainConfig(max_steps=400, lr=1e-2, warmup_steps=20, eval_every=100, eval_batches=10,
                                seed=seed, progress=False, device="cpu"))
    return history.val_steps, history.val_losses


BANDS = {"nb07_gpt": gpt}
