"""Notebook 04's training cell: LSTMLM on Tiny Shakespeare, 300 steps."""

import torch

from lmlab.data import LMBatches
from lmlab.models import LSTMLM, LSTMConfig
from lmlab.train import TrainConfig, train
from shakespeare import char_splits


def lstm(seed: int):
    tok, train_ids, val_ids = char_splits()
    torch.manual_seed(seed)
    model = LSTMLM(LSTMConfig(vocab_size=tok.vocab_size, n_embd=32, n_hidden=128))
    history = train(model, LMBatches(train_ids, block_size=64, batch_size=32, seed=seed),
                    LMBatches(val_ids, block_size=64, batch_size=32, random=False),
                    TrainConfig(max_steps=300, lr=1e-2, warmup_steps=20, eval_every=50, eval_batches=10,
                                seed=seed, progress=False, device="cpu"))
    return history.val_steps, history.val_losses


BANDS = {"nb04_lstm": lstm}
