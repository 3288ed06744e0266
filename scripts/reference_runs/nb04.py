"""Notebook 04's training cell: LSTMLM on Tiny Shakespeare, 300 steps."""

from lmlab.models import LSTMLM, LSTMConfig
from shakespeare import char_run


def lstm(seed: int):
    def model(vocab_size):
        return LSTMLM(LSTMConfig(vocab_size=vocab_size, n_embd=32, n_hidden=128))

    return char_run(seed, model, block_size=64, batch_size=32,
                    max_steps=300, lr=1e-2, warmup_steps=20, eval_every=50, eval_batches=10)


BANDS = {"nb04_lstm": lstm}
