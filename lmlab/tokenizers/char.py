"""Character tokenizer: one id per character (Unicode code point) of a fixed alphabet.

Example:
    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.encode("hell"), tok.decode([3, 1])
    ([1, 0, 2, 2], 'oh')
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

from lmlab.checks import as_token_id, token_id_list
from lmlab.tokenizers.fileformat import read_tokenizer_json, write_tokenizer_json
from lmlab.tokenizers.hf import char_to_hf

__all__ = ["UNK", "CharTokenizer"]

UNK = "<unk>"


class CharTokenizer:
    """One id per character of a fixed alphabet, in the order given (``from_text`` sorts them).

    With ``unk=True`` an extra last id, ``<unk>``, stands for every character outside the alphabet
    (and decodes to the string ``"<unk>"``); without it such characters raise ``ValueError``.

    Example:
        >>> tok = CharTokenizer.from_text("hello")
        >>> tok.chars, tok.encode("hell"), tok.decode([3, 1])
        (['e', 'h', 'l', 'o'], [1, 0, 2, 2], 'oh')
    """

    def __init__(self, chars: Iterable[str], unk: bool = False):
        chars = list(chars)
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"each vocabulary entry must be a single character, got {ch!r}")
        dupes = sorted(c for c, n in Counter(chars).items() if n > 1)  # one pass: fine for 100,000s of characters
        if dupes:
            raise ValueError(f"characters appear twice in the vocabulary: {dupes[:10]}; list each once")
        self.chars: list[str] = chars
        self.unk = bool(unk)
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}
        self.unk_id: int | None = len(chars) if unk else None

    @classmethod
    def from_text(cls, text: str, unk: bool = False) -> CharTokenizer:
        """The tokenizer whose alphabet is the sorted set of characters in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return cls(sorted(set(text)), unk=unk)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + (1 if self.unk else 0)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``. Example: "hell" -> [1, 0, 2, 2] (alphabet "ehlo")."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            if self.unk:
                return [stoi.get(c, self.unk_id) for c in text]
            missing = sorted({c for c in text if c not in stoi})
            raise ValueError(
                f"{len(missing)} character(s) are not in the vocabulary, e.g. {missing[:5]}; build the tokenizer "
                "from a text that contains them (CharTokenizer.from_text) or pass unk=True to map them to <unk>"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``. Example: [3, 1] -> "oh" (alphabet "ehlo")."""
        out = []
        n = len(self.chars)
        for i in token_id_list(ids):
            i = as_token_id(i)
            if 0 <= i < n:
                out.append(self.chars[i])
            elif i == self.unk_id:
                out.append(UNK)
            else:
                raise ValueError(
                    f"token id {i} is out of range: this tokenizer has ids 0..{self.vocab_size - 1}; decode ids made "
                    "by this tokenizer (a model with a larger vocab_size can sample ids the tokenizer lacks)"
                )
        return "".join(out)

    def to_dict(self) -> dict:
        """What ``save`` writes: ``{"format": "lmlab.CharTokenizer", ..., "chars": [...]}``."""
        return {"format": "lmlab.CharTokenizer", "type": "char", "version": 1, "unk": self.unk, "chars": self.chars}

    def save(self, path: str | os.PathLike) -> None:
        """Write the alphabet as readable JSON (``to_dict()``)."""
        write_tokenizer_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        data = read_tokenizer_json(path, "lmlab.CharTokenizer", 1)
        if not isinstance(data.get("chars"), list) or not isinstance(data.get("unk"), bool):
            raise ValueError(f"{os.fspath(path)!r} needs a list 'chars' and a boolean 'unk'; the file is damaged")
        return cls(data["chars"], unk=data["unk"])

    def to_hf(self):
        """A ``transformers.PreTrainedTokenizerFast`` that gives the same ids (and decodes the same).

        Built from a ``tokenizers`` WordLevel model over single characters: a Split pre-tokenizer cuts the
        text into code points and a Fuse decoder joins tokens without spaces.
        """
        vocab = dict(self.stoi)
        if self.unk:
            vocab[UNK] = self.unk_id
        return char_to_hf(vocab, UNK if self.unk else None)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, unk={self.unk})"
