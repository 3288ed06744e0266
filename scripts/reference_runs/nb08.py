"""Notebook 08's training cell: a 2-layer GPT on the copying task (a random 16-token segment written twice)."""

import torch

from lmlab.models import GPT, GPTConfig
from lmlab.train import TrainConfig, train

SEG, V_COPY = 16, 20
MARGIN = 0.04
WHAT = "validation loss, copying task"


class CopyBatches:
    """As in the notebook: random segments written twice; batch `step` depends only on (seed, step)."""

    def __init__(self, batch_size, seed=0):
        self.batch_size, self.seed = batch_size, seed

    def sequences(self, step):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        seg = torch.randint(0, V_COPY, (self.batch_size, SEG), generator=g)
        return torch.cat([seg, seg], dim=1)

    def get(self, step):
        seq = self.sequences(step)
        return seq[:, :-1], seq[:, 1:]


def copy_task(seed: int):
    torch.set_num_threads(1)  # as in the notebook
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=V_COPY, block_size=2 * SEG, n_layer=2, n_head=4, n_embd=64))
    history = train(model, CopyBatches(32, seed=seed), CopyBatches(256, seed=1),
                    TrainConfig(max_steps=300, lr=3e-3, warmup_steps=20, eval_every=25, eval_batches=1,
                                seed=seed, progress=False, device="cpu"))
    return history.val_steps, history.val_losses


BANDS = {"nb08_copy": copy_task}
