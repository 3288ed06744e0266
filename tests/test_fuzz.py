"""Fuzzing with hypothesis: tokenizers, tokenizer files, checkpoint state files and pointers, damaged checkpoint
files, resumed training states, run records, command-line numbers, downloads, zip archives and Hugging Face
model folders.

Thousands of generated inputs per run (the ``max_examples`` below add up to 12,800), derandomized and
without an example database so that CI sees the same inputs every time. The only errors allowed are
the documented ones:

- ``CharTokenizer.encode``: ``ValueError`` for characters outside the alphabet (never with ``unk=True``);
  ``CharTokenizer(chars)``: ``ValueError`` naming the characters that appear twice;
- ``decode``: ``ValueError`` for ids out of range, ``TypeError`` for things that are not int ids;
- ``load_tokenizer``: ``FileNotFoundError`` or ``ValueError`` (merges whose tokens would take more than
  16 MiB are refused before any token is built);
- ``load_checkpoint`` / ``read_state``: ``CheckpointError`` (any flipped byte of model.safetensors or
  optimizer.pt among them); ``latest_checkpoint``: a folder inside the run, whatever ``latest`` holds;
- resuming ``lmlab.train`` from a garbled training state: ``CheckpointError`` naming state.json;
- ``RunRecord.load``: ``ValueError``;
- ``lmlab`` command-line numbers: accepted only finite and in range, else exit code 2 with one line;
- ``read_corpus``/``fetch`` from a server sending any response: the exact corpus or ``DownloadError``, and any
  ``timeout``/``deadline``/``max_bytes``: ``TypeError``/``ValueError`` saying what they must be;
- ``read_member`` on damaged zips: ``ValueError`` or ``zipfile.BadZipFile``, never more than ``max_bytes``;
- ``from_hf`` on a folder whose config.json has any ``auto_map``: ``ValueError``; its code is never run.

Byte-level BPE must give back exactly the text it encoded, for any Unicode text.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import struct
import sys
import warnings
import zipfile
from contextlib import redirect_stderr
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


# ---------------------------------------------------------------------------------------------------- reliability:
# pointers, bit rot, training state, tokenizer files built to exhaust memory, command-line numbers


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """mine/ (a run of lmlab.train, 2 steps, with an optimizer) and other/ (another run, step 5) side by side."""
    from ddp_worker import make_batches

    from lmlab.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    config = TrainConfig(max_steps=2, log_every=1, progress=False, device="cpu", checkpoint_dir=str(folder / "mine"))
    train(TinyLM(), make_batches()[0], None, config)
    save_checkpoint(folder / "other", TinyLM(), step=5)
    return folder


POINTERS = (st.binary(max_size=300) | st.text(max_size=80).map(str.encode)
            | st.sampled_from(["../other/step-000005", "ABSOLUTE", "step-000005", "step-000002\n", " step-000002 ",
                               "step-2", "step-000002/", "./step-000002", "step-000002\x00", "step-" + "9" * 400])
            .map(str.encode))


@settings(max_examples=400, **FUZZ)
@given(pointer=POINTERS)
def test_the_latest_pointer_never_leads_out_of_its_folder(runs, pointer):
    from lmlab.checkpoint import latest_checkpoint

    mine = runs / "mine"
    if pointer == b"ABSOLUTE":
        pointer = str(runs / "other" / "step-000005").encode()
    (mine / "latest").write_bytes(pointer)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert latest_checkpoint(mine) == mine / "step-000002"
    finally:
        (mine / "latest").write_text("step-000002\n")


@settings(max_examples=150, **FUZZ)
@given(name=st.sampled_from(["model.safetensors", "optimizer.pt"]), data=st.data())
def test_any_flipped_byte_of_a_checkpoint_file_is_refused(runs, name, data):
    from lmlab.train import TrainConfig, make_optimizer

    file = runs / "mine" / "step-000002" / name
    good = file.read_bytes()
    at = data.draw(st.integers(0, len(good) - 1), label="at")
    bad = bytearray(good)
    bad[at] ^= data.draw(st.integers(1, 255), label="bits")
    model = TinyLM()
    try:
        file.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match=f"{name} is damaged: its SHA-256"):
            load_checkpoint(file.parent, model, make_optimizer(model, TrainConfig()))
    finally:
        file.write_bytes(good)


TRAINING_FIELDS = ["history", "rng_states", "pending_loss", "grad_scaler", "world_size", "train_config",
                   "fingerprints", "step"]


@settings(max_examples=400, **FUZZ)
@given(data=st.data())
def test_resume_on_garbled_training_state_is_a_checkpoint_error_or_works(runs, data):
    """Resuming (lmlab.train) from a state.json whose training fields are replaced, removed or garbled inside."""
    from ddp_worker import make_batches

    from lmlab.train import TrainConfig, train

    file = runs / "mine" / "step-000002" / "state.json"
    good = file.read_text()
    state = json.loads(good)
    key = data.draw(st.sampled_from(TRAINING_FIELDS), label="key")
    action = data.draw(st.sampled_from(["replace", "remove", "inside"]), label="action")
    inner = state.get(key)
    if action == "remove":
        state.pop(key, None)
    elif action == "inside" and isinstance(inner, dict) and inner:
        inner[data.draw(st.sampled_from(sorted(inner)), label="field")] = data.draw(JSON, label="value")
    elif action == "inside" and isinstance(inner, list) and inner:
        inner[data.draw(st.integers(0, len(inner) - 1), label="index")] = data.draw(JSON, label="value")
    else:
        state[key] = data.draw(JSON, label="value")
    config = TrainConfig(max_steps=2, log_every=1, progress=False, device="cpu", checkpoint_dir=str(runs / "mine"))
    try:
        file.write_text(json.dumps(state))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                history = train(TinyLM(), make_batches()[0], None, config, resume=True)
            except CheckpointError as e:
                assert "state.json" in str(e) or "not written by lmlab.train" in str(e), str(e)
            else:
                assert all(s <= 2 for s in history.steps)  # (a history with no logged step yet is valid)
    finally:
        file.write_text(good)
        (runs / "mine" / "latest").write_text("step-000002\n")
        for other in (runs / "mine").glob("step-*"):
            if other.name != "step-000002":
                shutil.rmtree(other)


# runs of merges: k merges that each join the newest token with itself (doubling it), or k random merges
MERGE_RUNS = st.lists(st.tuples(st.sampled_from(["double", "random"]), st.integers(1, 40), st.integers(0, 10**6)),
                      max_size=6)


@settings(max_examples=300, **FUZZ)
@given(runs=MERGE_RUNS)
def test_bpe_files_load_within_the_memory_bound_or_are_refused(files, runs):
    rows = []
    for how, k, seed in runs:
        for j in range(k):
            new = 256 + len(rows)
            a, b = (seed * 7919 + j) % new, (seed * 104729 + 3 * j) % new
            rows.append([new - 1, new - 1, new] if how == "double" else [a, b, new])
    path = files / "merges.json"
    path.write_text(json.dumps({"format": "lmlab.BPETokenizer", "version": 1, "pattern": None, "special_tokens": {},
                                "merges": rows}))
    try:
        tok = load_tokenizer(path)
    except ValueError as e:
        assert "a BPE vocabulary may take" in str(e)
    else:
        assert sum(len(t) for t in tok.vocab.values()) <= 2**24
        assert tok.decode(tok.encode("aaaa")) == "aaaa"


@settings(max_examples=500, **FUZZ)
@given(chars=st.lists(st.characters(), max_size=60))
def test_a_character_vocabulary_loads_or_names_its_duplicates(chars):
    dupes = sorted({c for c in chars if chars.count(c) > 1})
    try:
        tok = CharTokenizer(chars)
    except ValueError as e:
        assert dupes and f"appear twice in the vocabulary: {dupes[:10]}" in str(e)
    else:
        assert not dupes and tok.vocab_size == len(chars)


NUMBER_TEXT = (st.text(max_size=8) | st.floats().map(repr) | st.integers(-5, 2**70).map(str)
               | st.sampled_from(["inf", "-inf", "nan", "1e3", "0", "1", "0.5", "1.0", "2**4", " 3", "0x10"]))
OPTIONS = {  # option -> (command, what an accepted value must be)
    "--lr": ("train", lambda v: isinstance(v, float) and math.isfinite(v) and v > 0),
    "--dropout": ("train", lambda v: isinstance(v, float) and 0 <= v < 1),
    "--max-steps": ("train", lambda v: type(v) is int and v >= 1),
    "--checkpoint-every": ("train", lambda v: type(v) is int and v >= 1),
    "--seed": ("train", lambda v: type(v) is int and 0 <= v < 2**32),
    "--temperature": ("sample", lambda v: isinstance(v, float) and math.isfinite(v) and v > 0),
    "--top-p": ("sample", lambda v: isinstance(v, float) and 0 < v <= 1),
    "--num-samples": ("sample", lambda v: type(v) is int and v >= 1),
    "--timeout": ("course grade", lambda v: isinstance(v, float) and math.isfinite(v) and v > 0),
}


@settings(max_examples=600, **FUZZ)
@given(option=st.sampled_from(sorted(OPTIONS)), text=NUMBER_TEXT)
def test_command_line_numbers_are_checked_or_refused_in_one_line(option, text):
    from hypothesis import assume

    from lmlab.cli import build_parser

    assume(not text.startswith("-") or re.fullmatch(r"-\d+|-\d*\.\d+", text))  # else argparse sees an option
    command, valid = OPTIONS[option]
    base = {"train": ["train"], "sample": ["sample", "--checkpoint", "run"],
            "course grade": ["course", "grade", "subs", "--out", "g.csv"]}[command]
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            args = build_parser().parse_args([*base, option, text])
    except SystemExit as e:
        lines = err.getvalue().strip().splitlines()
        assert e.code == 2 and len(lines) == 1 and f"argument {option}: must be" in lines[0], err.getvalue()
    else:
        assert valid(getattr(args, option[2:].replace("-", "_"))), text
