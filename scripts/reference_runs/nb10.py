"""Notebook 10's pretraining cell: a small GPT on unlabelled topic documents (word tokens), 1600 steps."""

import torch

from lmlab.data import LMBatches, TopicSource, train_val_split
from lmlab.models import GPT, GPTConfig
from lmlab.train import TrainConfig, train


def pretrain(seed: int):
    source = TopicSource(n_sentences=3, p_topic=0.5, p_stray=0.1)
    vocab = ["<doc>"] + source.vocab
    stoi = {w: i for i, w in enumerate(vocab)}
    ids = torch.tensor([i for d in source.sample(8000, seed=0) for i in [0] + [stoi[w] for w in d.text.split()]])
    lm_train, lm_val = train_val_split(ids, 0.1)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=32, n_layer=2, n_head=4, n_embd=64))
    history = train(model, LMBatches(lm_train, block_size=32, batch_size=32, seed=seed),
                    LMBatches(lm_val, block_size=32, batch_size=32, random=False),
                    TrainConfig(max_steps=1600, lr=3e-3, warmup_steps=20, eval_every=200, eval_batches=10,
                                seed=seed, progress=False, device="cpu"))
    return history.val_steps, history.val_losses


BANDS = {"nb10_pretrain": pretrain}
