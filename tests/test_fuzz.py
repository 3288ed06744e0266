"""Fuzzing with hypothesis: tokenizers, tokenizer files, checkpoint state files, run records, downloads,
zip archives and Hugging Face model folders.

Thousands of generated inputs per run (the ``max_examples`` below add up to 10,450), derandomized and
without an example database so that CI sees the same inputs every time. The only errors allowed are
the documented ones:

- ``CharTokenizer.encode``: ``ValueError`` for characters outside the alphabet (never with ``unk=True``);
- ``decode``: ``ValueError`` for ids out of range, ``TypeError`` for things that are not int ids;
- ``load_tokenizer``: ``FileNotFoundError`` or ``ValueError``;
- ``load_checkpoint`` / ``read_state``: ``CheckpointError``;
- ``RunRecord.load``: ``ValueError``;
- ``read_corpus``/``fetch`` from a server sending any response: the exact corpus or ``DownloadError``, and any
  ``timeout``/``deadline``/``max_bytes``: ``TypeError``/``ValueError`` saying what they must be;
- ``read_member`` on damaged zips: ``ValueError`` or ``zipfile.BadZipFile``, never more than ``max_bytes``;
- ``from_hf`` on a folder whose config.json has any ``auto_map``: ``ValueError``; its code is never run.

Byte-level BPE must give back exactly the text it encoded, for any Unicode text.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from ddp_worker import TinyLM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data import LocalServer

from lmlab.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_state,
    save_checkpoint,
)
from lmlab.data import DownloadError, fetch, read_corpus
from lmlab.data.download import read_member
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


# ---------------------------------------------------------------------------------------------------- downloads, zips, model folders

LATIN1_LINE = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=14)  # a header value


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


@pytest.fixture(scope="module")
def http():
    server = LocalServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_files() -> dict[str, bytes]:
    root = Path(os.environ.get("LMLAB_DATA_DIR", ""))
    if not (root / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip("corpus files not found; set LMLAB_DATA_DIR")
    return {"tinyshakespeare": (root / "tinyshakespeare" / "input.txt").read_bytes()}


@settings(max_examples=150, **FUZZ)
@given(length=st.none() | st.integers(-5, 2**70).map(str) | LATIN1_LINE,
       body=st.sampled_from(["exact", "short", "long", "other"]), junk=st.binary(max_size=64))
def test_any_http_response_gives_the_corpus_or_a_download_error(http, shared_files, tmp_path_factory, length, body,
                                                               junk):
    corpus = shared_files["tinyshakespeare"]
    payload = {"exact": corpus, "short": corpus[: len(junk)], "long": corpus + junk, "other": junk}[body]
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
    if length is not None:
        head += b"Content-Length: " + length.encode("latin-1") + b"\r\n"
    url = http.add(f"/{len(http.httpd.files)}", head + b"\r\n" + payload, how="raw")
    folder = tmp_path_factory.mktemp("dl")
    try:
        got = read_corpus("tinyshakespeare", data_dir=folder, urls=[url], timeout=2, deadline=5)
    except DownloadError:
        assert not (folder / "tinyshakespeare" / "input.txt").exists()
    else:
        assert got == corpus and (folder / "tinyshakespeare" / "input.txt").read_bytes() == corpus
    assert not list(folder.rglob("*.part"))


@settings(max_examples=300, **FUZZ)
@given(data=st.data())
def test_zip_member_reader_on_damaged_archives(data):
    member = ("ham\tok then\nspam\tWIN a prize now\n" * 60).encode()
    archive = bytearray(zip_bytes({"SMSSpamCollection": member, "readme": b"about the collection"}))
    for _ in range(data.draw(st.integers(1, 4), label="damages")):
        if not archive:
            break
        kind = data.draw(st.sampled_from(["flip", "size", "cut"]), label="kind")
        if kind == "flip":
            i = data.draw(st.integers(0, len(archive) - 1), label="at")
            archive[i] ^= data.draw(st.integers(1, 255), label="bits")
        elif kind == "size":  # rewrite a declared (un)compressed size in the central directory
            at = archive.find(b"PK\x01\x02")
            if at >= 0:
                off = at + data.draw(st.sampled_from([20, 24]), label="field")
                archive[off:off + 4] = struct.pack("<I", data.draw(st.integers(0, 2**32 - 1), label="size"))
        else:
            del archive[data.draw(st.integers(0, len(archive)), label="cut"):]
    cap = data.draw(st.sampled_from([len(member), len(member) // 2, 10]), label="cap")
    try:
        out = read_member(bytes(archive), "SMSSpamCollection", max_bytes=cap)
    except (ValueError, zipfile.BadZipFile):
        return
    assert len(out) <= cap


@settings(max_examples=300, **FUZZ)
@given(timeout=st.floats() | st.integers(-3, 2**1100) | st.none() | st.text(max_size=3),
       deadline=st.floats() | st.integers(-3, 2**1100) | st.booleans(),
       max_bytes=st.none() | st.integers(-3, 2**65) | st.floats() | st.booleans())
def test_download_limits_are_valid_or_a_clear_error(http, tmp_path, timeout, deadline, max_bytes):
    """Valid limits reach a real (refusing) server and give a DownloadError; others say what they must be."""
    try:
        fetch("tinyshakespeare", data_dir=tmp_path / "none", urls=[http.base + "/missing"], timeout=timeout,
              deadline=deadline, max_bytes=max_bytes)
    except (TypeError, ValueError) as e:
        assert "must be" in str(e)
    except DownloadError as e:  # the server's refusal, or a limit so small that the mirror ran out of time
        assert re.search(r"404|timed out|deadline", str(e)), str(e)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """A save_pretrained folder of a tiny GPT-2 with a code.py beside it that writes a marker when run."""
    from lmlab.interop import to_hf
    from lmlab.models import GPT, GPTConfig

    folder = tmp_path_factory.mktemp("hf")
    to_hf(GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))).save_pretrained(folder)
    (folder / "code.py").write_text(f"open({str(folder / 'ran')!r}, 'w').write('the folder code ran')\n")
    return folder


AUTO_MAP_VALUE = st.sampled_from(["code.Model", "code.Config", "other--code.Model", "code"]) | JSON
AUTO_MAP = (st.dictionaries(st.sampled_from(["AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoTokenizer"])
                            | st.text(max_size=8), AUTO_MAP_VALUE, min_size=1, max_size=4)
            | st.lists(AUTO_MAP_VALUE, min_size=1, max_size=3) | st.text(min_size=1, max_size=10))


@settings(max_examples=200, **FUZZ)
@given(auto_map=AUTO_MAP, model_type=st.sampled_from(["gpt2", "bert", "llama", "code"]) | st.text(max_size=8))
def test_a_model_folder_with_any_auto_map_is_refused_and_never_run(model_folder, auto_map, model_type):
    from lmlab.interop import from_hf

    config_file = model_folder / "config.json"
    good = config_file.read_text()
    config = json.loads(good)
    config.update(auto_map=auto_map, model_type=model_type)
    stdin, sys.stdin = sys.stdin, io.StringIO("y\n")
    try:
        config_file.write_text(json.dumps(config))
        with pytest.raises(ValueError, match="never runs code from a model folder"):
            from_hf(model_folder)
        assert sys.stdin.tell() == 0
    finally:
        sys.stdin = stdin
        config_file.write_text(good)
    assert not (model_folder / "ran").exists()
