"""Tokenizers: characters, and byte-level BPE (byte-pair encoding), with export to Hugging Face.

``CharTokenizer`` maps each character (Unicode code point) of a fixed alphabet to an id.

``BPETokenizer`` is byte-level BPE in the style of minbpe and GPT-2: the text is cut into chunks with a
regex (GPT-2's by default), each chunk becomes its UTF-8 bytes (ids 0..255), and training repeatedly
replaces the most frequent adjacent pair of ids by a new id. Encoding replays the merges in the order
they were learned; decoding concatenates the bytes of the ids.

Training speed: the textbook loop recounts every pair of the whole text after each merge. Here the
text is first reduced to its distinct chunks ("words") with their counts, pair counts are kept up to
date, and an index pair -> words lets each merge touch only the words that contain the pair. The best
pair is taken from a heap with lazy deletion. Ties between pairs with equal counts go to the smallest
pair, compared as tuples of ids (so (32, 116) wins over (101, 32)); any implementation using the same
rule learns exactly the same merges (tests and benchmarks/bpe.py check this).

References: Sennrich et al. 2016 (BPE for NMT); Radford et al. 2019 (GPT-2, byte-level BPE and its regex);
Karpathy's minbpe. Left out: byte fallback, dropout, normalisation, the GPT-4 "cl100k" merges themselves.
"""

from __future__ import annotations

import heapq
import json
import operator
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}
UNK = "<unk>"


def _parse_json_file(path: str | os.PathLike) -> Any:
    """The JSON value in the file ``path``; every way it can fail is a FileNotFoundError or ValueError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no tokenizer file at {os.fspath(path)!r}; check the path, or save one with tok.save(path)"
        ) from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{os.fspath(path)!r} is not a UTF-8 text file ({e}); it is not a tokenizer file") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(
            f"{os.fspath(path)!r} is not valid JSON ({str(e)[:200]}); the file is damaged: save the tokenizer again"
        ) from None


def _read_json(path: str | os.PathLike, fmt: str, version: int) -> dict[str, Any]:
    """Read a tokenizer file and check its ``format`` and ``version`` fields."""
    data = _parse_json_file(path)
    if not isinstance(data, dict) or data.get("format") != fmt:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{os.fspath(path)!r} is not an {fmt} file (its 'format' field is {got!r})")
    if data.get("version") != version:
        raise ValueError(f"{os.fspath(path)!r} has version {data.get('version')!r}; this lmlab reads version {version}")
    return data


def _write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + os.replace) so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _as_id(i: Any) -> int:
    """One token id as a Python int: ints, NumPy integers and one-element integer tensors are fine;
    floats, strings and whole rows are not (``int(2.7)`` would silently become 2)."""
    try:
        return operator.index(i)
    except TypeError:
        shape = getattr(i, "shape", None)
        if shape is not None and len(shape):
            what = f"a tensor of shape {tuple(shape)}"
        else:
            what = f"{i!r:.40} ({type(i).__name__})"
        raise TypeError(
            f"token ids must be ints, got {what}; pass a flat list of ints, e.g. tok.decode(ids.tolist()) for a "
            "1-D tensor or tok.decode(idx[0].tolist()) for one row of a (B, T) batch"
        ) from None


def _iter_ids(ids: Any) -> Iterable[Any]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"decode takes a list of int token ids, got {type(ids).__name__}; e.g. tok.decode([3, 1])")
    return ids


# ---------------------------------------------------------------------------------------------------
# Characters
# ---------------------------------------------------------------------------------------------------


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
        dupes = sorted({c for c in chars if chars.count(c) > 1}) if len(set(chars)) != len(chars) else []
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
        for i in _iter_ids(ids):
            i = _as_id(i)
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

    def save(self, path: str | os.PathLike) -> None:
        """Write the alphabet as readable JSON (``{"format": "lmlab.CharTokenizer", "chars": [...]}``)."""
        _write_json(
            path, {"format": "lmlab.CharTokenizer", "type": "char", "version": 1, "unk": self.unk, "chars": self.chars}
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        data = _read_json(path, "lmlab.CharTokenizer", 1)
        if not isinstance(data.get("chars"), list) or not isinstance(data.get("unk"), bool):
            raise ValueError(f"{os.fspath(path)!r} needs a list 'chars' and a boolean 'unk'; the file is damaged")
        return cls(data["chars"], unk=data["unk"])

    def to_hf(self):
        """A ``transformers.PreTrainedTokenizerFast`` that gives the same ids (and decodes the same).

        Built from a ``tokenizers`` WordLevel model over single characters: a Split pre-tokenizer cuts the
        text into code points and a Fuse decoder joins tokens without spaces.
        """
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = dict(self.stoi)
        if self.unk:
            vocab[UNK] = self.unk_id
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK if self.unk else None))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one piece per code point
        tok.decoder = decoders.Fuse()
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token=UNK if self.unk else None, clean_up_tokenization_spaces=False
        )

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, unk={self.unk})"


# ---------------------------------------------------------------------------------------------------
# Byte-level BPE: pure helpers
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


# ---------------------------------------------------------------------------------------------------
# Byte-level BPE
# ---------------------------------------------------------------------------------------------------


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
        # 1. distinct chunks with their counts; each chunk as a list of byte ids
        chunk_counts = Counter(split_chunks(text, self.pattern))
        words = [list(w.encode("utf-8")) for w in chunk_counts]
        freqs = list(chunk_counts.values())
        # 2. pair counts (weighted by word frequency) and the index pair -> words that contain it
        counts: dict[tuple[int, int], int] = {}
        where: dict[tuple[int, int], set[int]] = {}
        for wi, (w, f) in enumerate(zip(words, freqs)):
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + f
                where.setdefault(pair, set()).add(wi)
        heap = [(-c, pair) for pair, c in counts.items()]  # max count first, then smallest pair
        heapq.heapify(heap)
        merges: list[tuple[tuple[int, int], int]] = []
        vocab = {i: bytes([i]) for i in range(256)}
        while len(merges) < n_merges:
            # 3. best pair: pop until an entry matches the current count (older entries are stale)
            while heap:
                negc, pair = heapq.heappop(heap)
                if counts.get(pair, 0) == -negc and negc < 0:
                    break
            else:
                break  # no pairs left: every chunk is a single token
            idx = 256 + len(merges)
            merges.append((pair, idx))
            vocab[idx] = vocab[pair[0]] + vocab[pair[1]]
            if verbose:
                print(f"merge {len(merges)}/{n_merges}: {pair} -> {idx} {vocab[idx]!r} ({-negc} occurrences)")
            # 4. update only the words that contain the pair
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
            for p in changed:
                c = counts[p]
                if c > 0:
                    heapq.heappush(heap, (-c, p))
                else:
                    del counts[p]
        self.merges = merges
        self.special_tokens = {s: 256 + len(merges) + i for i, s in enumerate(specials)}
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
        for i in _iter_ids(ids):
            i = _as_id(i)
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
        """Write readable JSON: the pattern, merges ``[a, b, new_id]`` in order, special tokens, and
        (for reading only, ignored by ``load``) each merged token's text."""
        readable = {idx: self.vocab[idx].decode("utf-8", errors="replace") for _, idx in self.merges}
        data = {
            "format": "lmlab.BPETokenizer",
            "type": "bpe",  # what `lmlab` commands look at to pick the class
            "version": 1,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "merges": [[a, b, idx] for (a, b), idx in self.merges],
            "tokens_readable": {str(k): v for k, v in readable.items()},
        }
        _write_json(path, data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a file written by ``save``; a damaged file raises ``ValueError`` saying what is wrong."""
        data = _read_json(path, "lmlab.BPETokenizer", 1)
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
        merges = []
        for i, m in enumerate(data["merges"]):
            ok = isinstance(m, list) and len(m) == 3 and all(type(x) is int for x in m)
            if not ok or m[2] != 256 + i or not (0 <= m[0] < m[2] and 0 <= m[1] < m[2]):
                raise ValueError(
                    f"{where!r}: merge number {i} is {m!r}; expected [a, b, {256 + i}] with a, b < {256 + i}"
                )
            merges.append(((m[0], m[1]), m[2]))
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
        """A ``transformers.PreTrainedTokenizerFast`` with the same ids as ``encode(..., "all")``.

        Tokens are written in GPT-2's byte-to-character alphabet (``bytes_to_unicode``), which is what
        the ``tokenizers`` ByteLevel pre-tokenizer produces. With the "gpt2" pattern the ByteLevel
        pre-tokenizer splits with the same regex (use_regex=True); other patterns become a Split
        pre-tokenizer (behavior="isolated") followed by ByteLevel(use_regex=False).

        Raises ValueError if two merges produce the same bytes (possible in byte-level BPE, rare):
        Hugging Face's vocabulary maps each string to one id, so the ids could not match.
        """
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        b2u = bytes_to_unicode()

        def as_str(i: int) -> str:
            return "".join(b2u[b] for b in self.vocab[i])

        vocab = {as_str(i): i for i in range(256 + len(self.merges))}
        if len(vocab) != 256 + len(self.merges):
            seen: dict[bytes, int] = {}
            dup = next((i, seen[b]) for i, b in self.vocab.items() if seen.setdefault(b, i) != i)
            raise ValueError(
                f"ids {dup[1]} and {dup[0]} both stand for {self.vocab[dup[0]]!r}; a Hugging Face vocabulary cannot "
                "hold the same token twice, so this tokenizer cannot be exported with identical ids"
            )
        merges = [(as_str(a), as_str(b)) for (a, b), _ in self.merges]
        model = models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False)
        tok = Tokenizer(model)
        if self.pattern == GPT2_PATTERN:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        elif self.pattern is None:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        else:
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(self.pattern), behavior="isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            )
        tok.decoder = decoders.ByteLevel()
        for s, i in sorted(self.special_tokens.items(), key=lambda kv: kv[1]):
            tok.add_special_tokens([AddedToken(s, special=True, normalized=False)])
            assert tok.token_to_id(s) == i, "special tokens must take the ids right after the merges"
        return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False)

    def __repr__(self) -> str:
        pat = next((k for k, v in PATTERNS.items() if v == self.pattern), self.pattern)
        return f"BPETokenizer(vocab_size={self.vocab_size}, pattern={pat!r}, special_tokens={list(self.special_tokens)})"


def load_tokenizer(path: str | os.PathLike) -> CharTokenizer | BPETokenizer:
    """Load a file written by ``CharTokenizer.save`` or ``BPETokenizer.save``, whichever it is.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not UTF-8 JSON, not a tokenizer file, of another version, or damaged
            (the message says which and what to do).
    """
    data = _parse_json_file(path)  # FileNotFoundError / ValueError saying what is wrong
    fmt = data.get("format") if isinstance(data, dict) else None
    return BPETokenizer.load(path) if fmt == "lmlab.BPETokenizer" else CharTokenizer.load(path)
