"""Tokenizers: round trips (hypothesis), BPE merges against a textbook trainer, Hugging Face export, files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmlab.tokenizers import (GPT2_PATTERN, BPETokenizer, CharTokenizer, get_stats, incremental_merges, load_tokenizer,
                              merge, split_chunks, textbook_merges)

ODD = "Hello 世界! 🎉👍🏽 café e\u0301 naïve \t\n\n  x  \x00\x1f 'll 12345 ÅÄÖ  👨‍👩‍👧 end"


@pytest.fixture(scope="module")
def shakespeare_text() -> str:
    path = Path(os.environ.get("LMLAB_DATA_DIR", "")) / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found; set LMLAB_DATA_DIR")
    return path.read_text(encoding="ascii")


@pytest.fixture(scope="module")
def bpe(shakespeare_text) -> BPETokenizer:
    return BPETokenizer().train(shakespeare_text[:60_000] + ODD, vocab_size=420)


# -- CharTokenizer ------------------------------------------------------------------------------------


def test_char_tokenizer_hand_example():
    tok = CharTokenizer.from_text("hello")
    assert tok.chars == ["e", "h", "l", "o"] and tok.vocab_size == 4
    assert tok.encode("hell") == [1, 0, 2, 2] and tok.decode([3, 1]) == "oh"
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_char_tokenizer_unknown_characters():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"\['x', 'z'\].*unk=True"):
        tok.encode("abzx")
    unk = CharTokenizer.from_text("abc", unk=True)
    assert unk.vocab_size == 4 and unk.encode("azb") == [0, 3, 1] and unk.decode([0, 3]) == "a<unk>"
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([3])
    with pytest.raises(ValueError, match="twice"):
        CharTokenizer(["a", "b", "a"])


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_char_round_trip(s):
    tok = CharTokenizer.from_text(s)
    ids = tok.encode(s)
    assert len(ids) == len(s) and tok.decode(ids) == s


def test_char_save_load_and_corrupt_file(tmp_path):
    tok = CharTokenizer.from_text(ODD, unk=True)
    tok.save(tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert data["format"] == "lmlab.CharTokenizer" and "世" in data["chars"]  # readable, not escaped
    back = CharTokenizer.load(tmp_path / "c.json")
    assert back.chars == tok.chars and back.unk and back.encode(ODD + "Q") == tok.encode(ODD + "Q")
    (tmp_path / "bad.json").write_text('{"format": "lmlab.CharTokenizer", "version": 1, "chars": ["a"', encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        CharTokenizer.load(tmp_path / "bad.json")


def test_char_to_hf_same_ids(shakespeare_text):
    chunk = shakespeare_text[:20_000]
    tok = CharTokenizer.from_text(chunk + ODD)
    hf = tok.to_hf()
    for s in (chunk, ODD):
        ids = tok.encode(s)
        assert hf(s)["input_ids"] == ids
        assert hf.decode(ids) == s
    unk = CharTokenizer.from_text("abc", unk=True).to_hf()
    assert unk("abzc")["input_ids"] == [0, 1, 3, 2]


# -- BPE helpers ---------------------------------------------------------------------------------------


def test_helpers_hand_examples():
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge([5, 5, 5], (5, 5), 6) == [6, 5]
    assert split_chunks("Hello world!!", GPT2_PATTERN) == ["Hello", " world", "!!"]
    assert split_chunks("ab12cd", r"\d+") == ["ab", "12", "cd"]  # unmatched text is kept, not dropped
    assert split_chunks("", GPT2_PATTERN) == []


def test_bpe_hand_example():
    tok = BPETokenizer().train("aaabdaaabac", vocab_size=259, pattern=None)
    # after (a, a) -> 256, both (256, a) and (a, b) occur twice: the smaller pair (97, 98) wins the tie
    assert tok.merges == [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    assert incremental_merges("aaabdaaabac", 259, None) == textbook_merges("aaabdaaabac", 259, None) == tok.merges
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.decode([258, 100]) == "aaabd"
    assert tok.vocab[258] == b"aaab"




@pytest.mark.parametrize("pattern", ["gpt2", None])
def test_bpe_merges_equal_textbook_trainer(shakespeare_text, pattern):
    text = shakespeare_text[:6000] + ODD
    fast = BPETokenizer().train(text, vocab_size=256 + 120, pattern=pattern)
    regex_or_none = GPT2_PATTERN if pattern == "gpt2" else None
    slow = textbook_merges(text, 256 + 120, regex_or_none)
    assert len(slow) == 120 and fast.merges == slow
    assert incremental_merges(text, 256 + 120, regex_or_none) == slow


def test_bpe_stops_when_nothing_is_left_to_merge():
    tok = BPETokenizer().train("ab ab", vocab_size=1000)
    # chunks "ab" and " ab": (a, b) twice, then (" ", ab) once, then no pair is left
    assert [tok.vocab[i] for _, i in tok.merges] == [b"ab", b" ab"]


def test_bpe_on_real_text_compresses(bpe, shakespeare_text):
    s = shakespeare_text[100_000:120_000]
    ids = bpe.encode(s)
    assert bpe.decode(ids) == s
    assert len(s) / len(ids) > 1.7  # 164 merges: about 1.8 bytes per token on unseen Shakespeare
    assert bpe.encode("") == [] and bpe.decode([]) == ""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_bpe_round_trip(bpe, s):
    assert bpe.decode(bpe.encode(s)) == s


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_bpe_round_trip_when_trained_on_the_text_itself(s):
    tok = BPETokenizer().train(s * 3, vocab_size=300, pattern=None)
    assert tok.decode(tok.encode(s)) == s


def test_bpe_decode_errors_and_partial_utf8(bpe):
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([65, bpe.vocab_size])
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([-1])
    emoji = "🎉".encode()
    assert bpe.decode([emoji[0], emoji[1]]) == "\ufffd"  # half an emoji: replacement character


def test_bpe_special_tokens():
    text = "hello world<|endoftext|>hello there<|endoftext|>"
    tok = BPETokenizer().train(text.replace("<|endoftext|>", " "), vocab_size=270, special_tokens=["<|endoftext|>", "<pad>"])
    assert len(tok.merges) == 12 and tok.special_tokens == {"<|endoftext|>": 268, "<pad>": 269}
    ids = tok.encode(text, allowed_special="all")
    assert ids.count(268) == 2 and tok.decode(ids) == text
    with pytest.raises(ValueError, match="allowed_special='all'"):
        tok.encode(text)
    as_text = tok.encode(text, allowed_special="none")
    assert 268 not in as_text and tok.decode(as_text) == text
    assert tok.encode("<pad><|endoftext|>", allowed_special={"<pad>"})[0] == 269
    assert tok.to_hf()(text)["input_ids"] == ids


def test_bpe_to_hf_same_ids(bpe, shakespeare_text):
    hf = bpe.to_hf()
    chunk = shakespeare_text[200_000:230_000]
    for s in (chunk, ODD, "  leading and trailing spaces  \n\n\n", "I'll've don't CAN'T"):
        ids = bpe.encode(s)
        assert hf(s)["input_ids"] == ids, s[:40]
        assert hf.decode(ids) == s


@pytest.mark.parametrize("pattern", [None, r"\p{L}+|\p{N}+"])
def test_bpe_to_hf_other_patterns(shakespeare_text, pattern):
    text = shakespeare_text[:20_000]
    tok = BPETokenizer().train(text, vocab_size=300, pattern=pattern)
    hf = tok.to_hf()
    for s in (shakespeare_text[50_000:52_000], ODD):
        assert hf(s)["input_ids"] == tok.encode(s)


def test_bpe_save_load_round_trip(bpe, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "lmlab.BPETokenizer" and data["version"] == 1
    assert data["merges"][0] == [*bpe.merges[0][0], 256]
    back = BPETokenizer.load(path)
    assert back.merges == bpe.merges and back.pattern == bpe.pattern and back.vocab == bpe.vocab
    assert back.encode(ODD) == bpe.encode(ODD)
    assert isinstance(load_tokenizer(path), BPETokenizer)
    CharTokenizer.from_text("ab").save(tmp_path / "c.json")
    assert isinstance(load_tokenizer(tmp_path / "c.json"), CharTokenizer)


def test_bpe_load_rejects_damaged_files(bpe, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    good = path.read_text(encoding="utf-8")
    path.write_text(good[: len(good) // 2], encoding="utf-8")  # cut in half
    with pytest.raises(ValueError, match="not valid JSON"):
        BPETokenizer.load(path)
    data = json.loads(good)
    data["merges"][5] = [1, 2, 999]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="merge number 5"):
        BPETokenizer.load(path)
    path.write_text(json.dumps({**json.loads(good), "format": "something else"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not an lmlab.BPETokenizer file"):
        BPETokenizer.load(path)
    with pytest.raises(ValueError, match="not an lmlab.CharTokenizer file"):
        CharTokenizer.load(tmp_path / "bpe.json")


def test_bpe_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        BPETokenizer().train("abc", vocab_size=200)
    with pytest.raises(ValueError, match="not a valid regex"):
        BPETokenizer().train("abc", vocab_size=300, pattern="(unclosed")
    with pytest.raises(ValueError, match="allowed_special"):
        BPETokenizer().encode("abc", allowed_special="some")
    assert regex.compile(GPT2_PATTERN)


@pytest.fixture(scope="module")
def bpe_hf(bpe):
    return bpe.to_hf()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_bpe_to_hf_same_ids_on_arbitrary_text(bpe, bpe_hf, s):
    assert bpe_hf(s)["input_ids"] == bpe.encode(s)


# -- hostile tokenizer files ----------------------------------------------------------------------------


def doubling_merges_file(path: Path, n: int = 40) -> Path:
    """A BPE file of ``n`` merges, each joining the previous token with itself: token 256 + i is 2 ** (i + 1)
    bytes long, so 40 merges would need 2 ** 40 bytes (a terabyte) of vocabulary."""
    merges = [[97, 97, 256]] + [[255 + i, 255 + i, 256 + i] for i in range(1, n)]
    path.write_text(json.dumps({"format": "lmlab.BPETokenizer", "type": "bpe", "version": 1, "pattern": None,
                                "special_tokens": {}, "merges": merges}))
    return path


def test_a_bpe_file_whose_tokens_double_at_every_merge_is_refused(tmp_path):
    path = doubling_merges_file(tmp_path / "bomb.json")
    assert path.stat().st_size < 1100  # about 1 KB
    with pytest.raises(ValueError, match=r"merge number 22 makes a token of 8,388,608 bytes .* more than the "
                                         r"16,777,216 bytes a BPE vocabulary may take; the file is damaged"):
        load_tokenizer(path)


def test_long_tokens_that_training_can_make_still_load(tmp_path):
    tok = BPETokenizer().train("a" * 4096, vocab_size=256 + 12, pattern=None)  # tokens of 2, 4, ... 4096 bytes
    assert max(len(b) for b in tok.vocab.values()) == 4096
    tok.save(tmp_path / "long.json")
    assert load_tokenizer(tmp_path / "long.json").vocab == tok.vocab


class CountedChar(str):
    """A one-character string that counts the comparisons made with it (hash as a plain str)."""

    comparisons = 0

    def __eq__(self, other):
        CountedChar.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_the_duplicate_check_of_a_character_vocabulary_is_linear():
    chars = [CountedChar(chr(0x4E00 + i)) for i in range(3000)] + [CountedChar(chr(0x4E00 + 7))]  # one duplicate
    CountedChar.comparisons = 0
    with pytest.raises(ValueError, match=r"characters appear twice in the vocabulary: \['万'\]"):
        CharTokenizer(chars)
    assert CountedChar.comparisons < 10 * len(chars)  # a quadratic check makes about 9 million


def test_a_character_file_with_60000_characters_and_one_duplicate_is_refused(tmp_path):
    chars = [chr(c) for c in range(0x10000, 0x10000 + 60_000)] + ["a", "a"]
    (tmp_path / "chars.json").write_text(json.dumps({"format": "lmlab.CharTokenizer", "type": "char", "version": 1,
                                                     "unk": False, "chars": chars}))
    with pytest.raises(ValueError, match=r"characters appear twice in the vocabulary: \['a'\]"):
        load_tokenizer(tmp_path / "chars.json")
