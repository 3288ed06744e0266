"""Notebook 06's training cell: a 2-layer character GPT (width 64, 4 heads) on Tiny Shakespeare, 600 steps."""

from lmlab.models import GPT, GPTConfig
from shakespeare import char_run


def gpt(seed: int):
    def model(vocab_size):
        return GPT(GPTConfig(vocab_size=vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64))

    return char_run(seed, model, block_size=64, batch_size=32, threads=1, max_steps=600, lr=1e-2, warmup_steps=20,
                    eval_every=50, eval_batches=10, precision="fp32", compile=False)


BANDS = {"nb06_gpt": gpt}
