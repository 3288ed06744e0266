"""The character-level Tiny Shakespeare runs most notebooks train: the split, made once per process, and one
recipe helper that trains a model on it as the notebooks do.

As in the notebooks: CharTokenizer over the whole text, the last 10% held out for validation; random
training windows seeded by the run's seed, fixed validation windows.
"""

from functools import lru_cache
from typing import Callable

import torch

from lmlab.data import LMBatches, load_text, train_val_split
from lmlab.tokenizers import CharTokenizer
from lmlab.train import TrainConfig, train


@lru_cache(maxsize=None)
def char_splits(n_chars: int | None = None) -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """(tokenizer, train ids, validation ids) of the first ``n_chars`` characters (None: the whole text)."""
    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)  # the vocabulary of the whole text, even for a prefix
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(text[:n_chars])), val_fraction=0.1)
    return tok, train_ids, val_ids


def char_run(seed: int, make_model: Callable[[int], torch.nn.Module], *, block_size: int, batch_size: int,
             val_batch_size: int | None = None, n_chars: int | None = None, threads: int | None = None,
             **settings) -> tuple[list[int], list[float]]:
    """Train ``make_model(vocab_size)`` on the character split; return the validation curve (steps, losses).

    ``threads``: the notebook's ``torch.set_num_threads`` when it pins one; ``settings``: the ``TrainConfig``
    of the notebook's cell (the seed, a quiet bar and the CPU are added here).
    """
    tok, train_ids, val_ids = char_splits(n_chars)
    if threads is not None:
        torch.set_num_threads(threads)  # as in the notebook
    torch.manual_seed(seed)
    model = make_model(tok.vocab_size)
    history = train(model, LMBatches(train_ids, block_size=block_size, batch_size=batch_size, seed=seed),
                    LMBatches(val_ids, block_size=block_size, batch_size=val_batch_size or batch_size, random=False),
                    TrainConfig(seed=seed, progress=False, device="cpu", **settings))
    return history.val_steps, history.val_losses
