"""Tokenizers: characters, and byte-level BPE (byte-pair encoding), with export to Hugging Face.

``CharTokenizer`` maps each character (Unicode code point) of a fixed alphabet to an id.

``BPETokenizer`` is byte-level BPE in the style of minbpe and GPT-2: the text is cut into chunks with a
regex (GPT-2's by default), each chunk becomes its UTF-8 bytes (ids 0..255), and training repeatedly
replaces the most frequent adjacent pair of ids by a new id. Encoding replays the merges in the order
they were learned; decoding concatenates the bytes of the ids.

Where to read:

- ``char``: ``CharTokenizer``;
- ``pretokenize``: the GPT-2 and GPT-4 regexes and ``split_chunks``;
- ``bpe``: ``get_stats`` and ``merge``, the textbook trainer (the reference), the fast incremental trainer
  (the same merges), and ``BPETokenizer``;
- ``fileformat``: the JSON files ``save`` writes and ``load`` reads; ``load_tokenizer`` (below) reads either,
  and ``tokenizer_fingerprint`` identifies one;
- ``hf``: export to a ``transformers`` fast tokenizer with the same ids (``to_hf``).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from lmlab.tokenizers.bpe import BPETokenizer, get_stats, incremental_merges, merge, textbook_merges
from lmlab.tokenizers.char import UNK, CharTokenizer
from lmlab.tokenizers.fileformat import parse_json_file
from lmlab.tokenizers.hf import bytes_to_unicode
from lmlab.tokenizers.pretokenize import GPT2_PATTERN, GPT4_PATTERN, PATTERNS, split_chunks

__all__ = [
    "CharTokenizer",
    "BPETokenizer",
    "load_tokenizer",
    "tokenizer_fingerprint",
    "get_stats",
    "merge",
    "split_chunks",
    "textbook_merges",
    "incremental_merges",
    "bytes_to_unicode",
    "GPT2_PATTERN",
    "GPT4_PATTERN",
    "PATTERNS",
    "UNK",
]


def load_tokenizer(path: str | os.PathLike) -> CharTokenizer | BPETokenizer:
    """Load a file written by ``CharTokenizer.save`` or ``BPETokenizer.save``, whichever it is.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not UTF-8 JSON, not a tokenizer file, of another version, or damaged
            (the message says which and what to do).
    """
    data = parse_json_file(path)  # FileNotFoundError / ValueError saying what is wrong
    fmt = data.get("format") if isinstance(data, dict) else None
    return BPETokenizer.load(path) if fmt == "lmlab.BPETokenizer" else CharTokenizer.load(path)


def tokenizer_fingerprint(tok: CharTokenizer | BPETokenizer) -> dict[str, Any]:
    """What identifies a tokenizer, for checkpoints (``lmlab.train(..., tokenizer=tok)``) and ``lmlab sample``:
    its kind, its vocabulary size and the SHA-256 of what its file holds (``to_dict()``).

    Example: tokenizer_fingerprint(CharTokenizer.from_text("ab")) -> {"kind": "char", "vocab_size": 2, "sha256": "..."}
    """
    if not callable(getattr(tok, "to_dict", None)):
        raise TypeError(f"tokenizer must be an lmlab CharTokenizer or BPETokenizer, got {type(tok).__name__}")
    data = tok.to_dict()
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return {"kind": data["type"], "vocab_size": tok.vocab_size, "sha256": hashlib.sha256(text.encode()).hexdigest()}
