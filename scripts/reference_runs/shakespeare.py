"""The character-level Tiny Shakespeare split most notebooks train on, made once per process.

As in the notebooks: CharTokenizer over the whole text, the last 10% held out for validation.
"""

from functools import lru_cache

import torch

from lmlab.data import load_text, train_val_split
from lmlab.tokenizers import CharTokenizer


@lru_cache(maxsize=None)
def char_splits(n_chars: int | None = None) -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """(tokenizer, train ids, validation ids) of the first ``n_chars`` characters (None: the whole text)."""
    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)  # the vocabulary of the whole text, even for a prefix
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(text[:n_chars])), val_fraction=0.1)
    return tok, train_ids, val_ids
