"""Notebook 02's training cell: the bigram logits table trained by AdamW on the first 300,000 characters."""

import torch

from lmlab.data import LMBatches
from lmlab.models import BigramLM
from lmlab.train import TrainConfig, train
from shakespeare import char_splits


def bigram(seed: int):
    tok, train_ids, val_ids = char_splits(300_000)
    torch.manual_seed(seed)
    model = BigramLM(tok.vocab_size)
    history = train(model, LMBatches(train_ids, block_size=32, batch_size=32, seed=seed),
                    LMBatches(val_ids, block_size=32, batch_size=32, random=False),
                    TrainConfig(max_steps=200, lr=0.1, warmup_steps=20, weight_decay=0.0, eval_every=40,
                                eval_batches=5, progress=False, device="cpu", seed=seed))
    return history.val_steps, history.val_losses


BANDS = {"nb02_bigram": bigram}
