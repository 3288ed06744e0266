"""Byte-level BPE (byte-pair encoding) in the style of minbpe and GPT-2.

The text is cut into chunks with a regex (GPT-2's by default, ``lmlab.tokenizers.pretokenize``), each chunk becomes its UTF-8 bytes (ids
0..255), and training repeatedly replaces the most frequent adjacent pair of ids by a new id. Encoding
replays the merges in the order they were learned; decoding concatenates the bytes of the ids.

Two trainers learn exactly the same merges (tests/test_tokenizers.py and benchmarks/bpe.py check it):

1. ``textbook_merges``, the reference: recount every pair of the whole text after each merge, as minbpe.
2. ``incremental_merges``, the fast one ``BPETokenizer.train`` uses: the text is first reduced to its
   distinct chunks ("words") with their counts, pair counts are kept up to date, and an index pair ->
   words lets each merge touch only the words that contain the pair. The best pair is taken from a heap
   with lazy deletion.

Ties between pairs with equal counts go to the smallest pair, compared as tuples of ids (so (32, 116) wins
over (101, 32)); any implementation using the same rule learns exactly the same merges.

References: Sennrich et al. 2016 (BPE for NMT); Radford et al. 2019 (GPT-2, byte-level BPE and its regex);
Karpathy's minbpe. Left out: byte fallback, dropout, normalisation, the GPT-4 "cl100k" merges themselves.
"""

from __future__ import annotations

import heapq
import os
from collections import Counter
from collections.abc import Iterable, Sequence

import regex

from lmlab.checks import as_token_id, token_id_list
from lmlab.tokenizers.fileformat import read_tokenizer_json, write_tokenizer_json
from lmlab.tokenizers.hf import bpe_to_hf
from lmlab.tokenizers.pretokenize import PATTERNS, split_chunks

__all__ = ["get_stats", "merge", "textbook_merges", "incremental_merges", "BPETokenizer"]

# ---------------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------------


def get_stats(ids: Sequence[int], counts: dict[tuple[int, int], int] | None = None) -> dict[tuple[int, int], int]:
    """Count adjacent pairs (overlapping pairs count: [1, 1, 1] has (1, 1) twice).

    Example: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: tuple[int, int], idx: int) -> list[int]:
    """Replace every occurrence of ``pair`` by ``idx``, scanning left to right without overlaps.

    Example: merge([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4];  merge([5, 5, 5], (5, 5), 6) -> [6, 5]
    """
    out = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ---------------------------------------------------------------------------------------------------
# The two trainers: the textbook one first (the reference), then the fast one
# ---------------------------------------------------------------------------------------------------


def textbook_merges(text: str, vocab_size: int, pattern: str | None) -> list[tuple[tuple[int, int], int]]:
    """The slow, obvious BPE trainer (as minbpe): recount every pair of every chunk after each merge.

    The reference that ``BPETokenizer.train`` (which updates pair counts incrementally) must equal, merge for
    merge; the tests and benchmarks/bpe.py compare the two. Ties go to the smallest pair, as in ``train``.
    Example: textbook_merges("aaabdaaabac", 259, None) -> [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    """
    chunks = [list(c.encode("utf-8")) for c in split_chunks(text, pattern)]
    merges = []
    for idx in range(256, vocab_size):
        stats: dict[tuple[int, int], int] = {}
        for ids in chunks:
            get_stats(ids, stats)
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))  # most frequent; ties: smallest pair
        chunks = [merge(ids, pair, idx) for ids in chunks]
        merges.append((pair, idx))
    return merges



def incremental_merges(text: str, vocab_size: int, pattern: str | None, *,
                       verbose: bool = False) -> list[tuple[tuple[int, int], int]]:
    """The fast BPE trainer: the same merges as ``textbook_merges``, updating pair counts incrementally.

    1. the text becomes its distinct chunks ("words") with their counts, each a list of byte ids;
    2. pair counts (weighted by word frequency) and an index pair -> words that contain it;
    3. the best pair comes from a heap of (-count, pair), popping entries whose count is stale;
    4. a merge rewrites only the words that contain the pair, and updates the counts of their pairs.

    Example: incremental_merges("aaabdaaabac", 259, None) -> [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    """
    chunk_counts = Counter(split_chunks(text, pattern))
    words = [list(w.encode("utf-8")) for w in chunk_counts]
    freqs = list(chunk_counts.values())
    counts, where = _pair_index(words, freqs)
    heap = [(-c, pair) for pair, c in counts.items()]  # max count first, then smallest pair
    heapq.heapify(heap)
    merges: list[tuple[tuple[int, int], int]] = []
    vocab = {i: bytes([i]) for i in range(256)}
    n_merges = vocab_size - 256
    while len(merges) < n_merges:
        best = _pop_best(heap, counts)
        if best is None:
            break  # no pairs left: every chunk is a single token
        pair, count = best
        idx = 256 + len(merges)
        merges.append((pair, idx))
        vocab[idx] = vocab[pair[0]] + vocab[pair[1]]
        if verbose:
            print(f"merge {len(merges)}/{n_merges}: {pair} -> {idx} {vocab[idx]!r} ({count} occurrences)")
        for p in _merge_in_words(pair, idx, words, freqs, counts, where):
            c = counts[p]
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                del counts[p]
    return merges


def _pair_index(words: list[list[int]], freqs: list[int]) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], set[int]]]:
    """Pair counts weighted by word frequency, and for each pair the indices of the words that contain it.

    Example: words [[1, 2, 3], [1, 2]] with freqs [1, 5] -> counts {(1, 2): 6, (2, 3): 1}, where {(1, 2): {0, 1}, (2, 3): {0}}
    """
    counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for wi, (w, f) in enumerate(zip(words, freqs)):
        for pair in zip(w, w[1:]):
            counts[pair] = counts.get(pair, 0) + f
            where.setdefault(pair, set()).add(wi)
    return counts, where


def _pop_best(heap: list[tuple[int, tuple[int, int]]], counts: dict[tuple[int, int], int]) -> tuple[tuple[int, int], int] | None:
    """The most frequent pair and its count: pop until an entry matches the current count (older entries are
    stale). None when no pair is left."""
    while heap:
        negc, pair = heapq.heappop(heap)
        if counts.get(pair, 0) == -negc and negc < 0:
            return pair, -negc
    return None


def _merge_in_words(pair: tuple[int, int], idx: int, words: list[list[int]], freqs: list[int],
                    counts: dict[tuple[int, int], int], where: dict[tuple[int, int], set[int]]) -> set[tuple[int, int]]:
    """Replace ``pair`` by ``idx`` in the words that contain it, updating ``counts`` and ``where``; returns
    the pairs whose counts changed."""
    changed = set()
    for wi in where.pop(pair):
        w, f = words[wi], freqs[wi]
        new = merge(w, pair, idx)
        old_pairs = Counter(zip(w, w[1:]))
        new_pairs = Counter(zip(new, new[1:]))
        for p, k in old_pairs.items():
            counts[p] -= k * f
            changed.add(p)
            if p not in new_pairs and p != pair:
                where[p].discard(wi)
        for p, k in new_pairs.items():
            counts[p] = counts.get(p, 0) + k * f
            changed.add(p)
            if p not in old_pairs:
                where.setdefault(p, set()).add(wi)
        words[wi] = new
    return changed


# ---------------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------------



MAX_VOCAB_BYTES = 2**24  # 16 MiB: far above any real vocabulary (GPT-4's 100k tokens take under 1 MiB)


def _read_merges(rows: list, where: str) -> list[tuple[tuple[int, int], int]]:
    """The merges of a tokenizer file, checked: ``[a, b, 256 + i]`` with ``a, b < 256 + i``, and the bytes of
    the vocabulary they build bounded (each merge can double a token: 40 merges of a 1 KB file would ask
    for 2 ** 40 bytes). Lengths are added up as ints before any token is built."""
    merges, lengths, total = [], [1] * 256, 256
    for i, m in enumerate(rows):
        ok = isinstance(m, list) and len(m) == 3 and all(type(x) is int for x in m)
        if not ok or m[2] != 256 + i or not (0 <= m[0] < m[2] and 0 <= m[1] < m[2]):
            raise ValueError(f"{where!r}: merge number {i} is {m!r}; expected [a, b, {256 + i}] with a, b < {256 + i}")
        lengths.append(lengths[m[0]] + lengths[m[1]])
        total += lengths[-1]
        if total > MAX_VOCAB_BYTES:
            raise ValueError(
                f"{where!r}: merge number {i} makes a token of {lengths[-1]:,} bytes (the vocabulary would take "
                f"{total:,} bytes), more than the {MAX_VOCAB_BYTES:,} bytes a BPE vocabulary may take; the file is "
                "damaged or was not written by BPETokenizer.save"
            )
        merges.append(((m[0], m[1]), m[2]))
    return merges


class BPETokenizer:
    """Byte-level BPE: ids 0..255 are bytes, then one id per learned merge, then special tokens.

    Attributes:
        merges: ordered list of ``((a, b), new_id)``; ``new_id`` is 256 + its position.
        vocab: id -> bytes, for bytes and merges (special tokens are in ``special_tokens``).
        special_tokens: str -> id, e.g. ``{"<|endoftext|>": 1000}``; never produced by merges.
        pattern: the pre-split regex (``None``: the whole text is one chunk).

    Decoding uses ``errors="replace"``: ids whose bytes are not valid UTF-8 on their own (half an emoji)
    decode to U+FFFD, so decode(encode(s)) == s always, but decode of a slice of ids may show U+FFFD.

    Example:
        >>> tok = BPETokenizer().train("aaabdaaabac", vocab_size=259, pattern=None)
        >>> tok.merges
        [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
        >>> tok.encode("aaabdaaabac"), tok.decode([258, 100])
        ([258, 100, 258, 97, 99], 'aaabd')
    """

    def __init__(self, pattern: str | None = "gpt2"):
        self._set_pattern(pattern)
        self.merges: list[tuple[tuple[int, int], int]] = []
        self.special_tokens: dict[str, int] = {}
        self._rebuild()

    def _set_pattern(self, pattern: str | None) -> None:
        if pattern is not None and not isinstance(pattern, str):
            raise TypeError(f"pattern must be 'gpt2', 'gpt4', a regex string or None, got {type(pattern).__name__}")
        self.pattern: str | None = PATTERNS.get(pattern, pattern) if pattern is not None else None
        if self.pattern is not None:
            try:
                regex.compile(self.pattern)
            except regex.error as e:
                raise ValueError(f"pattern {pattern!r} is not a valid regex ({e}); use 'gpt2', 'gpt4', None or a regex") from None

    def _rebuild(self) -> None:
        """Recompute the vocabulary, merge ranks and caches from ``merges``."""
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for (a, b), idx in self.merges:
            self.vocab[idx] = self.vocab[a] + self.vocab[b]
        self._ranks = {pair: idx for pair, idx in self.merges}  # new ids grow with rank
        self._inverse_special = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

    # -- training ------------------------------------------------------------------------------------

    def train(
        self,
        text: str,
        vocab_size: int,
        *,
        pattern: str | None = "gpt2",
        special_tokens: Sequence[str] | None = None,
        verbose: bool = False,
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``; returns self.

        Args:
            text: training text.
            vocab_size: total ids: 256 bytes + merges + special tokens.
            pattern: "gpt2", "gpt4", a regex, or None (no pre-split: merges may cross spaces).
            special_tokens: strings that get the last ids and are never split (e.g. "<|endoftext|>").
            verbose: print each merge.

        Training replaces any earlier training, pattern included. It stops early (fewer merges) only
        when no adjacent pair is left, i.e. every chunk has become one token. Ties between equally
        frequent pairs go to the smallest pair (see the module docstring).

        Example: train("aaabdaaabac", 259, pattern=None).merges -> [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
        ((256, 97) and (97, 98) both occur twice after the first merge; the smaller pair wins.)
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int (256 bytes + merges + special tokens), got {vocab_size!r}")
        specials = list(special_tokens or [])
        if len(set(specials)) != len(specials) or any(not isinstance(s, str) or not s for s in specials):
            raise ValueError(f"special_tokens must be distinct non-empty strings, got {specials!r}")
        n_merges = vocab_size - 256 - len(specials)
        if n_merges < 0:
            raise ValueError(
                f"vocab_size={vocab_size} is too small: it must hold 256 bytes and {len(specials)} special tokens"
            )
        self._set_pattern(pattern)
        self.merges = incremental_merges(text, 256 + n_merges, self.pattern, verbose=verbose)
        self.special_tokens = {s: 256 + len(self.merges) + i for i, s in enumerate(specials)}
        self._rebuild()
        return self

    # -- encoding / decoding -------------------------------------------------------------------------

    def _encode_chunk(self, chunk: str) -> list[int]:
        """Apply merges to one chunk, always the lowest-ranked (earliest learned) pair first."""
        ids = list(chunk.encode("utf-8"))
        ranks = self._ranks
        while len(ids) >= 2:
            best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
            if best not in ranks:
                break
            ids = merge(ids, best, ranks[best])
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        out: list[int] = []
        cache = self._cache
        for chunk in split_chunks(text, self.pattern):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if len(cache) < 200_000:
                    cache[chunk] = ids
            out.extend(ids)
        return out

    def encode(self, text: str, allowed_special: str | set[str] = "none_raise") -> list[int]:
        """Token ids of ``text``. Example (GPT-2 split, no merges): "hi!" -> [104, 105, 33]; "" -> [].

        ``allowed_special``: "all" (special-token strings in the text become their ids), "none" (they
        are encoded as ordinary text), "none_raise" (the default: a ``ValueError`` if one occurs),
        or a set of the special tokens to allow.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif allowed_special in ("none", "none_raise"):
            allowed = set()
            if allowed_special == "none_raise":
                found = [s for s in self.special_tokens if s in text]
                if found:
                    raise ValueError(
                        f"the text contains special token(s) {found}; pass allowed_special='all' to encode them "
                        "as special ids or allowed_special='none' to encode them as ordinary text"
                    )
        elif isinstance(allowed_special, (set, frozenset)):
            unknown = set(allowed_special) - set(self.special_tokens)
            if unknown:
                raise ValueError(f"{sorted(unknown)} are not special tokens of this tokenizer: {list(self.special_tokens)}")
            allowed = set(allowed_special)
        else:
            raise ValueError(f"allowed_special must be 'all', 'none', 'none_raise' or a set, got {allowed_special!r}")
        if not allowed:
            return self._encode_ordinary(text)
        out: list[int] = []
        pattern = "(" + "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
        for part in regex.split(pattern, text):
            if part in allowed:
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self._encode_ordinary(part))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (UTF-8 with errors="replace"). Example: [104, 105, 33] -> "hi!"."""
        parts = []
        for i in token_id_list(ids):
            i = as_token_id(i)
            b = self.vocab.get(i)
            if b is None:
                b = self._inverse_special.get(i)
                if b is None:
                    raise ValueError(
                        f"token id {i} is out of range: this tokenizer has ids 0..{self.vocab_size - 1}; decode ids "
                        "made by this tokenizer (a model with a larger vocab_size can sample ids the tokenizer lacks)"
                    )
            parts.append(b)
        return b"".join(parts).decode("utf-8", errors="replace")

    # -- files ---------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` as readable JSON."""
        write_tokenizer_json(path, self.to_dict())

    def to_dict(self) -> dict:
        """What ``save`` writes: the pattern, merges ``[a, b, new_id]`` in order, special tokens, and
        (for reading only, ignored by ``load``) each merged token's text."""
        readable = {idx: self.vocab[idx].decode("utf-8", errors="replace") for _, idx in self.merges}
        return {
            "format": "lmlab.BPETokenizer",
            "type": "bpe",  # what `lmlab` commands look at to pick the class
            "version": 1,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "merges": [[a, b, idx] for (a, b), idx in self.merges],
            "tokens_readable": {str(k): v for k, v in readable.items()},
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a file written by ``save``; a damaged file raises ``ValueError`` saying what is wrong."""
        data = read_tokenizer_json(path, "lmlab.BPETokenizer", 1)
        where = os.fspath(path)
        for key in ("pattern", "special_tokens", "merges"):
            if key not in data:
                raise ValueError(f"{where!r} has no {key!r} field; the file is damaged")
        try:
            tok = cls(pattern=data["pattern"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where!r}: its 'pattern' is unusable ({e}); the file is damaged") from None
        if not isinstance(data["merges"], list):
            raise ValueError(f"{where!r}: 'merges' must be a list of [a, b, new_id], got {type(data['merges']).__name__}")
        merges = _read_merges(data["merges"], where)
        specials = data["special_tokens"]
        n = 256 + len(merges)
        if (
            not isinstance(specials, dict)
            or any(type(v) is not int or not k for k, v in specials.items())
            or sorted(specials.values()) != list(range(n, n + len(specials)))
        ):
            raise ValueError(f"{where!r}: special_tokens must map strings to the ids {n}, {n + 1}, ...; got {specials!r}")
        tok.merges, tok.special_tokens = merges, dict(specials)
        tok._rebuild()
        return tok

    # -- Hugging Face --------------------------------------------------------------------------------

    def to_hf(self):
        """A ``transformers.PreTrainedTokenizerFast`` with the same ids as ``encode(..., "all")``
        (``lmlab.tokenizers.hf.bpe_to_hf``).

        Raises ValueError if two merges produce the same bytes (possible in byte-level BPE, rare):
        Hugging Face's vocabulary maps each string to one id, so the ids could not match.
        """
        return bpe_to_hf(self.vocab, self.merges, self.special_tokens, self.pattern)

    def __repr__(self) -> str:
        pat = next((k for k, v in PATTERNS.items() if v == self.pattern), self.pattern)
        return f"BPETokenizer(vocab_size={self.vocab_size}, pattern={pat!r}, special_tokens={list(self.special_tokens)})"
