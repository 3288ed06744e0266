"""A tiny language model and data for the training tests, and the worker script of tests/test_ddp.py.

As a script (started by ``python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py OUT``)
it trains ``TinyLM`` on ``make_batches`` with ``train`` (which joins the process group torchrun set up);
rank 0 writes the final parameters and the history to ``OUT`` (a safetensors file + JSON), every rank
writes how many training rows it saw to ``OUT.rank{r}.json``. An optional second argument is a
checkpoint folder (checkpoints every 10 steps).
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlab.data.batching import LMBatches

VOCAB = 11


class TinyLM(nn.Module):
    """Embedding -> dropout -> LayerNorm -> Linear: a bigram-like LM following ``(logits, loss)``."""

    def __init__(self, vocab_size: int = VOCAB, n_embd: int = 16, dropout: float = 0.0):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.ln = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.head(self.ln(self.drop(self.emb(idx))))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def make_ids(n: int = 2000, seed: int = 0) -> torch.Tensor:
    """Tokens that mostly follow next = (3 * prev + 1) mod 11, with 20% random tokens: learnable, not trivial."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.empty(n, dtype=torch.long)
    ids[0] = 0
    noise = torch.randint(VOCAB, (n,), generator=g)
    use_noise = torch.rand(n, generator=g) < 0.2
    for i in range(1, n):
        ids[i] = noise[i] if use_noise[i] else (3 * ids[i - 1] + 1) % VOCAB
    return ids


def make_batches(batch_size: int = 8, block_size: int = 8, seed: int = 0) -> tuple[LMBatches, LMBatches]:
    """(train, validation) batch sources over ``make_ids``."""
    ids = make_ids()
    return (
        LMBatches(ids[:1600], block_size, batch_size, seed=seed),
        LMBatches(ids[1600:], block_size, batch_size, seed=seed, random=False),
    )


def main(out: str, checkpoint_dir: str | None = None) -> None:
    from safetensors.torch import save_file

    from lmlab.train import TrainConfig, train

    torch.set_num_threads(1)
    torch.manual_seed(0)  # same initial weights in every process (DDP also broadcasts rank 0's)
    model = TinyLM()
    rows_seen = [0]  # training rows this process's forward saw

    def count_rows(module, args):
        if module.training:
            rows_seen[0] += args[0].shape[0]

    model.register_forward_pre_hook(count_rows)
    train_b, val_b = make_batches(batch_size=8)
    config = TrainConfig(max_steps=20, lr=1e-2, warmup_steps=2, log_every=5, eval_every=10, eval_batches=2,
                         grad_clip=1.0, progress=False, device="cpu", checkpoint_dir=checkpoint_dir,
                         checkpoint_every=10 if checkpoint_dir else None)
    history = train(model, train_b, val_b, config)
    rank = int(os.environ.get("RANK", "0"))
    with open(f"{out}.rank{rank}.json", "w") as f:
        json.dump({"rows_seen": rows_seen[0]}, f)
    if rank == 0:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out + ".safetensors")
        with open(out + ".json", "w") as f:
            json.dump({"history": history.to_dict(), "world_size": int(os.environ.get("WORLD_SIZE", "1"))}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
