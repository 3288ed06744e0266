"""Notebook 06's training cell: a 2-layer character GPT (width 64, 4 heads) on Tiny Shakespeare, 600 steps."""

import torch

from lmlab.data import LMBatches
from lmlab.models import GPT, GPTConfig
from lmlab.train import TrainConfig, train
from shakespeare import char_splits


def gpt(seed: int):
    tok, train_ids, val_ids = char_splits()
    torch.set_num_threads(1)  # as in the notebook
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64))
    history = train(model, LMBatches(train_ids, block_size=64, batch_size=32, seed=seed),
                    LMBatches(val_ids, block_size=64, batch_size=32, random=False),
                    TrainConfig(max_steps=600, lr=1e-2, warmup_steps=20, eval_every=50, eval_batches=10,
                                seed=seed, progress=False, device="cpu", precision="fp32", compile=False))
    return history.val_steps, history.val_losses


BANDS = {"nb06_gpt": gpt}
