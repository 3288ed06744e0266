"""Notebook 02's training cell: the bigram logits table trained by AdamW on the first 300,000 characters."""

import torch

from lmlab.data import LMBatches, load_text, train_val_split
from lmlab.models import BigramLM
from lmlab.tokenizers import CharTokenizer
from lmlab.train import TrainConfig, train


def bigram(seed: int):
    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(text[:300_000])), val_fraction=0.1)
    torch.manual_seed(seed)
    model = BigramLM(tok.vocab_size)
    history = train(model, LMBatches(train_ids, block_size=32, batch_size=32, seed=seed),
                    LMBatches(val_ids, block_size=32, batch_size=32, random=False),
                    TrainConfig(max_steps=200, lr=0.1, warmup_steps=20, weight_decay=0.0, eval_every=40,
                                eval_batches=5, progress=False, device="cpu", seed=seed))
    return history.val_steps, history.val_losses


BANDS = {"nb02_bigram": bigram}
