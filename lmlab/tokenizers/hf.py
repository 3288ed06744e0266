"""Export to Hugging Face: the same ids from a ``transformers.PreTrainedTokenizerFast``, built with the Rust
``tokenizers`` library. ``CharTokenizer.to_hf`` and ``BPETokenizer.to_hf`` call the two functions here.

- characters: a WordLevel model over single characters; a Split pre-tokenizer cuts the text into code
  points and a Fuse decoder joins tokens without spaces;
- byte-level BPE: tokens are written in GPT-2's byte-to-character alphabet (``bytes_to_unicode``), which
  is what the ``tokenizers`` ByteLevel pre-tokenizer produces.

``transformers`` and ``tokenizers`` are imported only when a function here is called.
"""

from __future__ import annotations

from typing import Any

from lmlab.tokenizers.pretokenize import GPT2_PATTERN

__all__ = ["bytes_to_unicode", "char_to_hf", "bpe_to_hf"]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 bytes to printable characters (the alphabet of HF's ByteLevel).

    Printable Latin-1 bytes map to themselves; the others to chr(256), chr(257), ... in order.
    Example: 65 -> "A", 32 (space) -> "Ġ", 10 (newline) -> "Ċ"
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def char_to_hf(vocab: dict[str, int], unk_token: str | None) -> Any:
    """A fast tokenizer mapping each character of ``vocab`` to its id (and ``unk_token``, when given, to
    every other character)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk_token))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one piece per code point
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=unk_token, clean_up_tokenization_spaces=False)


def bpe_to_hf(vocab: dict[int, bytes], merges: list[tuple[tuple[int, int], int]], special_tokens: dict[str, int],
              pattern: str | None) -> Any:
    """A fast byte-level BPE tokenizer with the same ids as ``BPETokenizer.encode(..., "all")``.

    GPT-2's ``pattern`` is what the ByteLevel pre-tokenizer applies itself (use_regex=True); another becomes a Split pre-tokenizer (behavior="isolated") followed by
    ByteLevel(use_regex=False); ``pattern=None`` is ByteLevel alone.

    Raises ValueError if two merges produce the same bytes (possible in byte-level BPE, rare):
    Hugging Face's vocabulary maps each string to one id, so the ids could not match.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    b2u = bytes_to_unicode()

    def as_str(i: int) -> str:
        return "".join(b2u[b] for b in vocab[i])

    hf_vocab = {as_str(i): i for i in range(256 + len(merges))}
    if len(hf_vocab) != 256 + len(merges):
        seen: dict[bytes, int] = {}
        dup = next((i, seen[b]) for i, b in vocab.items() if seen.setdefault(b, i) != i)
        raise ValueError(
            f"ids {dup[1]} and {dup[0]} both stand for {vocab[dup[0]]!r}; a Hugging Face vocabulary cannot "
            "hold the same token twice, so this tokenizer cannot be exported with identical ids"
        )
    hf_merges = [(as_str(a), as_str(b)) for (a, b), _ in merges]
    tok = Tokenizer(models.BPE(vocab=hf_vocab, merges=hf_merges, fuse_unk=False, byte_fallback=False))
    if pattern == GPT2_PATTERN:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif pattern is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tok.decoder = decoders.ByteLevel()
    for s, i in sorted(special_tokens.items(), key=lambda kv: kv[1]):
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False)])
        assert tok.token_to_id(s) == i, "special tokens must take the ids right after the merges"
    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False)
