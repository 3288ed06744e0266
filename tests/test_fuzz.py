"""Fuzzing with hypothesis: tokenizers, tokenizer files, checkpoint state files and run records.

Thousands of generated inputs per run (the ``max_examples`` below add up to 9,500), derandomized and
without an example database so that CI sees the same inputs every time. The only errors allowed are
the documented ones:

- ``CharTokenizer.encode``: ``ValueError`` for characters outside the alphabet (never with ``unk=True``);
- ``decode``: ``ValueError`` for ids out of range, ``TypeError`` for things that are not int ids;
- ``load_tokenizer``: ``FileNotFoundError`` or ``ValueError``;
- ``load_checkpoint`` / ``read_state``: ``CheckpointError``;
- ``RunRecord.load``: ``ValueError``.

Byte-level BPE must give back exactly the text it encoded, for any Unicode text.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from ddp_worker import TinyLM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmlab.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_state,
    save_checkpoint,
)
from lmlab.repro import RunRecord
from lmlab.tokenizers import UNK, BPETokenizer, CharTokenizer, load_tokenizer

FUZZ = {"deadline": None, "derandomize": True, "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
NOT_AN_ID = st.floats() | st.text(max_size=3) | st.none() | st.lists(st.integers(), max_size=2) | st.just(b"\x00")


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    text = "The quick brown fox jumps over the lazy dog. " * 20 + "Ünïcödé 世界 🎉 " * 10
    return BPETokenizer().train(text, vocab_size=340, special_tokens=["<|endoftext|>"])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A folder with a valid tokenizer file of each kind and a valid checkpoint, for mutation."""
    folder = tmp_path_factory.mktemp("fuzz")
    CharTokenizer.from_text("hello world").save(folder / "char.json")
    BPETokenizer().train("hello world " * 30, vocab_size=270, special_tokens=["<s>"]).save(folder / "bpe.json")
    torch.manual_seed(0)
    save_checkpoint(folder / "run", TinyLM(), step=3, state={"history": {"steps": [1, 2, 3]}})
    return folder


# ---------------------------------------------------------------------------------------------------- tokenizers


@settings(max_examples=1500, **FUZZ)
@given(alphabet=st.text(max_size=30), text=st.text(max_size=60))
def test_char_tokenizer_round_trips_or_names_the_unknown_characters(alphabet, text):
    tok = CharTokenizer.from_text(alphabet)
    unknown = set(text) - set(alphabet)
    if unknown:
        with pytest.raises(ValueError, match="not in the vocabulary") as info:
            tok.encode(text)
        assert repr(min(unknown)) in str(info.value)
    else:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids) and tok.decode(ids) == text


@settings(max_examples=500, **FUZZ)
@given(alphabet=st.text(max_size=30), text=st.text(max_size=60))
def test_char_tokenizer_with_unk_never_fails(alphabet, text):
    tok = CharTokenizer.from_text(alphabet, unk=True)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == "".join(c if c in tok.stoi else UNK for c in text)


@settings(max_examples=2000, **FUZZ)
@given(text=st.text())
def test_byte_level_bpe_round_trips_any_text_exactly(bpe, text):
    ids = bpe.encode(text, allowed_special="none")
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text
    assert bpe.decode(bpe.encode(text, allowed_special="all")) == text


@settings(max_examples=300, **FUZZ)
@given(text=st.text(min_size=1, max_size=80), pattern=st.sampled_from(["gpt2", "gpt4", None]),
       extra=st.integers(0, 40))
def test_bpe_trained_on_any_text_round_trips_it(text, pattern, extra):
    tok = BPETokenizer().train(text * 2, vocab_size=256 + extra, pattern=pattern)
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=1500, **FUZZ)
@given(ids=st.lists(st.integers(-(2**64), 2**64) | NOT_AN_ID, max_size=20), kind=st.sampled_from(["char", "bpe"]))
def test_decode_of_anything_returns_text_or_a_documented_error(bpe, ids, kind):
    tok = CharTokenizer.from_text("abc", unk=True) if kind == "char" else bpe
    valid = all(type(i) is int and 0 <= i < tok.vocab_size for i in ids)
    try:
        out = tok.decode(ids)
    except ValueError as e:
        assert not valid and "out of range" in str(e)
    except TypeError as e:
        assert not valid and "token ids must be ints" in str(e)
    else:
        assert valid and isinstance(out, str)


# ---------------------------------------------------------------------------------------------------- tokenizer files


def _load_or_documented_error(path: Path) -> None:
    try:
        tok = load_tokenizer(path)
    except (ValueError, FileNotFoundError):
        return
    # whatever loaded works: it encodes and decodes its own alphabet
    if isinstance(tok, CharTokenizer):
        text = "".join(tok.chars[:20])
        assert tok.decode(tok.encode(text)) == text
    else:
        assert tok.decode(tok.encode("héllo wörld", allowed_special="none")) == "héllo wörld"


@settings(max_examples=1000, **FUZZ)
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_load_tokenizer_on_arbitrary_bytes(files, content):
    path = files / "garbage.json"
    path.write_bytes(content)
    _load_or_documented_error(path)


@settings(max_examples=500, **FUZZ)
@given(data=JSON)
def test_load_tokenizer_on_arbitrary_json(files, data):
    path = files / "json.json"
    path.write_text(json.dumps(data))
    _load_or_documented_error(path)


@settings(max_examples=800, **FUZZ)
@given(kind=st.sampled_from(["char.json", "bpe.json"]), data=st.data())
def test_load_tokenizer_on_garbled_tokenizer_files(files, kind, data):
    """A valid file with fields replaced, removed or added: the realistic damage."""
    content = json.loads((files / kind).read_text())
    key = data.draw(st.sampled_from(sorted(content) + ["extra"]), label="key")
    action = data.draw(st.sampled_from(["replace", "remove", "element"]), label="action")
    if action == "remove":
        content.pop(key, None)
    elif action == "element" and isinstance(content.get(key), list) and content[key]:
        i = data.draw(st.integers(0, len(content[key]) - 1), label="index")
        content[key][i] = data.draw(JSON | st.lists(st.integers(-5, 400), max_size=4), label="element")
    else:
        content[key] = data.draw(JSON, label="value")
    path = files / "garbled.json"
    path.write_text(json.dumps(content))
    _load_or_documented_error(path)


# ---------------------------------------------------------------------------------------------------- checkpoint state, run records


def _state_file_fuzz(files: Path, raw: bytes) -> None:
    step = files / "run" / "step-000003"
    good = (step / "state.json").read_bytes()
    try:
        (step / "state.json").write_bytes(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # another lmlab version, another config: warnings, not errors
            try:
                state = read_state(step)
            except CheckpointError:
                state = None
            try:
                ckpt = load_checkpoint(step, TinyLM())
            except CheckpointError:
                assert state is None or state.get("model_spec") is not None  # a spec that does not fit TinyLM
            else:
                assert state is not None and ckpt.step == state["step"]
    finally:
        (step / "state.json").write_bytes(good)


@settings(max_examples=300, **FUZZ)
@given(raw=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_checkpoint_state_loader_on_garbage(files, raw):
    _state_file_fuzz(files, raw)


@settings(max_examples=600, **FUZZ)
@given(data=st.data())
def test_checkpoint_state_loader_on_garbled_states(files, data):
    state = json.loads((files / "run" / "step-000003" / "state.json").read_text())
    key = data.draw(st.sampled_from(sorted(state) + ["extra"]), label="key")
    if data.draw(st.booleans(), label="remove"):
        state.pop(key, None)
    else:
        state[key] = data.draw(JSON, label="value")
    _state_file_fuzz(files, json.dumps(state).encode())


@settings(max_examples=500, **FUZZ)
@given(raw=st.binary(max_size=100) | JSON.map(lambda v: json.dumps(v).encode())
       | st.dictionaries(st.sampled_from(["seed", "config", "metrics", "extra", "lmlab_version", "other"]), JSON)
       .map(lambda d: json.dumps(d).encode()))
def test_run_record_loader_on_garbage(files, raw):
    path = files / "run.json"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            record = RunRecord.load(path)
        except ValueError:
            return
    assert isinstance(record, RunRecord) and isinstance(record.config, dict)
