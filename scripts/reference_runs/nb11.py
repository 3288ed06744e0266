"""Notebook 11's training cell: a small GPT pretrained on Markov corpus A, 150 steps."""

import torch

from lmlab.data import LMBatches, MarkovSource, train_val_split
from lmlab.models import GPT, GPTConfig
from lmlab.train import TrainConfig, train


def pretrain_A(seed: int):
    source_A = MarkovSource(alphabet="abcdefgh", order=1, seed=0)
    train_A, val_A = train_val_split(torch.tensor(source_A.sample_ids(50_000, seed=1)), 0.1)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=8, block_size=32, n_layer=2, n_head=2, n_embd=32))
    history = train(model, LMBatches(train_A, block_size=32, batch_size=16, seed=seed),
                    LMBatches(val_A, block_size=32, batch_size=16, random=False),
                    TrainConfig(max_steps=150, lr=1e-2, warmup_steps=10, eval_every=25, eval_batches=8, seed=seed,
                                progress=False, device="cpu"))
    return history.val_steps, history.val_losses


BANDS = {"nb11_pretrain_A": pretrain_A}
