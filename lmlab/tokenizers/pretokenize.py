"""Pre-tokenization: cutting text into chunks with a regex before BPE, so that merges never cross a chunk
boundary (GPT-2 keeps words, numbers, punctuation and spaces apart: " dog" and " dog." share the token " dog").

``GPT2_PATTERN`` is GPT-2's regex, ``GPT4_PATTERN`` GPT-4's ("cl100k": case-insensitive contractions, numbers
of at most 3 digits, newlines kept apart); ``PATTERNS`` names them "gpt2" and "gpt4".
"""

from __future__ import annotations

import regex

__all__ = ["GPT2_PATTERN", "GPT4_PATTERN", "PATTERNS", "split_chunks"]

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}


def split_chunks(text: str, pattern: str | None) -> list[str]:
    """Cut ``text`` into chunks with a regex; text the regex skips becomes chunks too (nothing is lost).

    ``pattern=None`` gives the whole text as one chunk. This is Hugging Face's ``Split(...,
    behavior="isolated")``. Example with GPT-2's pattern: "Hello world!!" -> ["Hello", " world", "!!"]
    """
    if not text:
        return []
    if pattern is None:
        return [text]
    out, pos = [], 0
    for m in regex.finditer(pattern, text):
        if m.start() > pos:
            out.append(text[pos : m.start()])
        if m.end() > m.start():
            out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out
