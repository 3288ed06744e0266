"""Notebook 10's pretraining cell: a small GPT on unlabelled grammar sentences (word tokens), 200 steps."""

import torch

from lmlab.data import GrammarSource, LMBatches, train_val_split
from lmlab.models import GPT, GPTConfig
from lmlab.train import TrainConfig, train


def pretrain(seed: int):
    grammar = GrammarSource(seed=0)
    vocab = sorted(grammar.category) + ["."]
    stoi = {w: i for i, w in enumerate(vocab)}
    sentences = [s.text for s in grammar.sample(6000, seed=0)]
    ids = torch.tensor([stoi[w] for s in sentences for w in s.replace(".", " .").split()])
    lm_train, lm_val = train_val_split(ids, 0.1)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=16, n_layer=2, n_head=4, n_embd=64))
    history = train(model, LMBatches(lm_train, block_size=16, batch_size=64, seed=seed),
                    LMBatches(lm_val, block_size=16, batch_size=64, random=False),
                    TrainConfig(max_steps=200, lr=3e-3, warmup_steps=20, eval_every=50, eval_batches=10,
                                seed=seed, progress=False, device="cpu"))
    return history.val_steps, history.val_losses


BANDS = {"nb10_pretrain": pretrain}
