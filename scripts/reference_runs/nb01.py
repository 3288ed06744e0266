"""Notebook 01's data-size curve: trigram count models on an order-2 Markov source (sample seed = run seed)."""

import torch

from lmlab.data import MarkovSource
from lmlab.models import NGramLM

WHAT = "validation loss vs training tokens"
SIZES = [250, 500, 1000, 2000, 4000, 8000, 16_000, 32_000, 64_000]


def markov(seed: int, k: float = 0.1):
    src = MarkovSource("abcdefgh", order=2, seed=0)
    val = torch.tensor(src.sample_ids(20_000, seed=100))
    sample = src.sample_ids(SIZES[-1], seed=seed)
    losses = []
    for n in SIZES:
        _, loss = NGramLM(src.vocab_size, n=3, k=k).fit(sample[:n])(val[None, :-1], val[None, 1:])
        losses.append(loss.item())
    return SIZES, losses


BANDS = {"nb01_markov": markov}
