"""Bad input, one case per row: each gets a clear error that says what was wrong and what to do.

``CASES`` is the table: an id, the call that goes wrong (given a fresh temporary folder), the error it must
raise and a fragment of the message that says what to do. Errors must be raised by lmlab's own code (the
innermost frame of the traceback lies in the lmlab package), never surface as a raw traceback from deep
inside torch, Python or a file parser. Exercises never raise at the learner: their cases expect
``FEEDBACK``, a failed ``CheckResult`` whose message contains the fragment.

``CLI_CASES`` is the same for the ``lmlab`` command: each bad command line gets exactly one line on stderr (no
traceback) and a non-zero exit code.

The number of bad inputs covered is ``len(CASES) + len(CLI_CASES)``.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import sys
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from ddp_worker import TinyLM, make_batches
from test_data import LocalServer

import lmlab
from lmlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lmlab.data import DownloadError, fetch
from lmlab.data.batching import ArrayBatches, LMBatches
from lmlab.data.download import read_member
from lmlab.exercises import nb01
from lmlab.interop import from_hf
from lmlab.exercises.core import CheckResult
from lmlab.generate import (
    apply_temperature,
    generate,
    generate_text,
    top_k_filter,
    top_p_filter,
)
from lmlab.models import (
    GPT,
    LSTMLM,
    BigramConfig,
    BigramLM,
    GPTConfig,
    LSTMConfig,
    SequenceClassifier,
)
from lmlab.safe_load import safe_torch_load
from lmlab.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer
from lmlab.train import TrainConfig, train

FEEDBACK = "feedback"  # an exercise check: no exception, a failed CheckResult explains


@dataclass(frozen=True)
class Case:
    id: str
    topic: str  # tokenizer, model, generation, data, training, exercise
    trigger: Callable[[Path], Any]  # called with a fresh temporary folder
    error: type[BaseException] | str  # the exception type, or FEEDBACK
    says: str  # part of the message that says what to do (or, for some, exactly what is wrong)


# ---------------------------------------------------------------------------------------------------- things to call


@functools.cache
def char_tok() -> CharTokenizer:
    return CharTokenizer.from_text("abc")  # ids 0..2


@functools.cache
def bpe_tok() -> BPETokenizer:
    return BPETokenizer().train("low lower lowest " * 20, vocab_size=270, special_tokens=["<|endoftext|>"])


@functools.cache
def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))


def new_gpt() -> GPT:
    """A tiny GPT of its own (for calls that train or move it)."""
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))


def ids(*shape: int, high: int = 11) -> torch.Tensor:
    return torch.randint(high, shape, generator=torch.Generator().manual_seed(0))


def gen(**kw: Any) -> Any:
    """generate() on the tiny GPT with one prompt of 3 tokens, plus the keyword arguments."""
    kw = {"idx": ids(1, 3), "max_new_tokens": 2, **kw}
    return generate(kw.pop("model", gpt()), kw.pop("idx"), kw.pop("max_new_tokens"), **kw)


def tokenizer_file(tmp: Path, content: str | bytes | dict | list) -> Path:
    path = tmp / "tokenizer.json"
    if isinstance(content, (dict, list)):
        content = json.dumps(content)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def bpe_file(tmp: Path, **changes: Any) -> Path:
    """A BPE tokenizer file with some fields changed (a field set to ... is removed)."""
    bpe_tok().save(tmp / "bpe.json")
    data = json.loads((tmp / "bpe.json").read_text())
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not ...}
    return tokenizer_file(tmp, data)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


def fetch_served(tmp: Path, name: str, body: bytes, path: str = "/file", truncated: bool = False,
                 how: str = "ok", **limits: Any) -> Path:
    """fetch() corpus ``name`` from a real HTTP server on 127.0.0.1 that serves ``body`` (misbehaving as
    ``how`` says, see tests/test_data.py), with the download limits given."""
    server = LocalServer()
    try:
        url = server.add(path, body, how)
        if truncated:
            url = server.base + "/truncated" + path
        return fetch(name, data_dir=tmp / "data", urls=[url], **limits)
    finally:
        server.stop()


def lying_zip(member: bytes, declared: int) -> bytes:
    """A zip whose only member says it is ``declared`` bytes long."""
    raw = bytearray(zip_bytes({"SMSSpamCollection": member}))
    raw[22:26] = struct.pack("<I", declared)
    central = raw.find(b"PK\x01\x02")
    raw[central + 24:central + 28] = struct.pack("<I", declared)
    return bytes(raw)


def damaged_zip(damage: str) -> bytes:
    """A zip of an SMS-like file with its deflated data overwritten, or claiming a zip format from the future."""
    raw = bytearray(zip_bytes({"SMSSpamCollection": b"ham\tsee you\n" * 500}))
    if damage == "data":
        start = 30 + len("SMSSpamCollection")  # the local header, then the compressed data
        raw[start:start + 20] = b"\xff" * 20  # not a valid deflate block
    else:
        central = raw.find(b"PK\x01\x02")
        raw[central + 6] = 99  # "version needed to extract": 9.9
    return bytes(raw)


def cached_too_large(tmp: Path) -> Path:
    path = tmp / "data" / "tinyshakespeare" / "input.txt"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        f.truncate(2 * 2**30)  # a sparse 2 GiB file: never read whole
    return fetch("tinyshakespeare", data_dir=tmp / "data", urls=[])


def hf_folder(tmp: Path, config: dict | None = None, weights: str = "safetensors") -> Path:
    """A save_pretrained folder of a tiny GPT-2, with config.json fields changed and the weights kept
    as safetensors, turned into a pickled pytorch_model.bin, or removed."""
    from lmlab.interop import to_hf

    folder = tmp / "hf"
    hf = to_hf(new_gpt())
    hf.save_pretrained(folder)
    if weights != "safetensors":
        (folder / "model.safetensors").unlink()
    if weights == "pickle":
        torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    if config:
        data = json.loads((folder / "config.json").read_text())
        data.update(config)
        (folder / "config.json").write_text(json.dumps(data))
    return folder


def with_code(tmp: Path) -> Path:
    folder = hf_folder(tmp, {"model_type": "gpt2-custom", "auto_map": {"AutoModelForCausalLM": "evil.Model"}})
    (folder / "evil.py").write_text(f"open({str(tmp / 'ran')!r}, 'w').write('ran')")
    return folder


def on_torch(version: str, call: Callable[[], Any]) -> Any:
    """``call()`` while torch says it is ``version`` (to check what lmlab does on an older torch)."""
    real = torch.__version__
    torch.__version__ = version  # type: ignore[assignment]
    try:
        return call()
    finally:
        torch.__version__ = real  # type: ignore[assignment]


def cached_with_wrong_hash(tmp: Path) -> Path:
    path = tmp / "data" / "tinyshakespeare" / "input.txt"
    path.parent.mkdir(parents=True)
    path.write_text("not the corpus")
    return fetch("tinyshakespeare", data_dir=tmp / "data", urls=[])


def evil_zip_member(tmp: Path) -> bytes:
    return read_member(zip_bytes({"../../outside.txt": b"x"}), "../../outside.txt", max_bytes=10)


def under_a_file(tmp: Path) -> Path:
    (tmp / "a_file").write_text("not a folder")
    return tmp / "a_file" / "data"


def quiet(**kw: Any) -> TrainConfig:
    return TrainConfig(**{"max_steps": 1, "progress": False, "device": "cpu", **kw})


class Batches:
    """A batch source whose get(step) returns ``value``."""

    def __init__(self, value: Any):
        self.value = value

    def get(self, step: int) -> Any:
        return self.value


def checkpoint_of(tmp: Path, model: torch.nn.Module) -> Path:
    return save_checkpoint(tmp / "run", model, step=1)


def optimizer_file(tmp: Path) -> Path:
    model = TinyLM()
    return save_checkpoint(tmp / "run", model, torch.optim.AdamW(model.parameters()), step=1) / "optimizer.pt"



# checkpoints damaged on disk or by hand, training runs that collide (run with lmlab.train on TinyLM)
def trained_run(tmp: Path, **kw: Any) -> Path:
    """tmp/run: a TinyLM trained 2 steps by lmlab.train, with its checkpoints; returns the latest one."""
    torch.manual_seed(0)
    train(TinyLM(), make_batches()[0], None, quiet(max_steps=2, checkpoint_dir=str(tmp / "run")), **kw)
    return tmp / "run" / "step-000002"


def resume_run(tmp: Path, **kw: Any) -> Any:
    """Resume tmp/run (to 4 steps) with a fresh TinyLM."""
    return train(TinyLM(), kw.pop("batches", make_batches()[0]), None,
                 quiet(max_steps=4, checkpoint_dir=str(tmp / "run")), resume=kw.pop("resume", True), **kw)


def with_state(tmp: Path, **changes: Any) -> Path:
    """A trained run whose latest state.json has some fields changed."""
    path = trained_run(tmp)
    state = json.loads((path / "state.json").read_text())
    state.update(changes)
    (path / "state.json").write_text(json.dumps(state))
    return path


def flipped(tmp: Path, name: str) -> Path:
    """A trained run with one byte of the tensor data of ``name`` flipped (as a failing disk would)."""
    path = trained_run(tmp)
    raw = bytearray((path / name).read_bytes())
    if name == "model.safetensors":
        at = 8 + int.from_bytes(raw[:8], "little") + 3
    else:
        with zipfile.ZipFile(path / name) as zf:
            info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        n, m = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
        at = info.header_offset + 30 + n + m + info.file_size // 2
    raw[at] ^= 1
    (path / name).write_bytes(bytes(raw))
    return path


def load_with_optimizer(path: Path, model: torch.nn.Module | None = None) -> Any:
    model = model if model is not None else TinyLM()
    return load_checkpoint(path, model, torch.optim.AdamW(model.parameters()))


def nan_weights(tmp: Path) -> Path:
    model = TinyLM()
    with torch.no_grad():
        model.emb.weight[2, 5] = float("inf")
    return save_checkpoint(tmp / "run", model, step=1)


def other_size_optimizer(tmp: Path) -> Path:
    """A checkpoint of TinyLM(n_embd=16) whose optimizer.pt (and its recorded hash) came from n_embd=8."""
    import hashlib

    small = TinyLM(n_embd=8)
    opt = torch.optim.AdamW(small.parameters())
    small(ids(2, 3), ids(2, 3))[1].backward()
    opt.step()
    big = TinyLM(n_embd=16)
    path = save_checkpoint(tmp / "run", big, torch.optim.AdamW(big.parameters()), step=1)
    torch.save(opt.state_dict(), path / "optimizer.pt")
    state = json.loads((path / "state.json").read_text())
    state["files"]["optimizer.pt"] = hashlib.sha256((path / "optimizer.pt").read_bytes()).hexdigest()
    (path / "state.json").write_text(json.dumps(state))
    return path


def huge_vocabulary(tmp: Path) -> Path:
    path = save_checkpoint(tmp / "run", new_gpt(), step=1)
    state = json.loads((path / "state.json").read_text())
    state["model_spec"]["config"]["vocab_size"] = 10**14
    (path / "state.json").write_text(json.dumps(state))
    return path


def locked_run(tmp: Path) -> Any:
    """Train into a folder whose lock this process holds (as a second trainer in the same folder would)."""
    from lmlab.checkpoint import RunLock

    (tmp / "run").mkdir()
    RunLock(tmp / "run").acquire()
    return resume_run(tmp)


def doubling_bpe(tmp: Path) -> Any:
    merges = [[97, 97, 256]] + [[255 + i, 255 + i, 256 + i] for i in range(1, 40)]
    return load_tokenizer(tokenizer_file(tmp, {"format": "lmlab.BPETokenizer", "version": 1, "pattern": None,
                                               "special_tokens": {}, "merges": merges}))


def many_chars_one_duplicate(tmp: Path) -> Any:
    chars = [chr(c) for c in range(0x10000, 0x10000 + 60_000)] + ["b", "b"]
    return load_tokenizer(tokenizer_file(tmp, {"format": "lmlab.CharTokenizer", "version": 1, "unk": False,
                                               "chars": chars}))


# exercise answers a learner might pass
def check(exercise, answer: Any, timeout: float = 2.0) -> CheckResult:
    return exercise.evaluate(answer, timeout=timeout)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no ==")

    __hash__ = None  # type: ignore[assignment]


def divides_by_zero(ids, vocab_size):
    return 1 / 0


def hangs(ce_nats):
    while True:
        pass


def prints_megabytes(ce_nats):
    print("x" * 5_000_000)
    return 2.0


def calls_exit(ce_nats):
    sys.exit(3)


def raises_base_exception(ce_nats):
    raise BaseException("not an Exception")  # noqa: TRY002 - what a learner might write


def recurses(ce_nats):
    return recurses(ce_nats)


def stub(ce_nats):
    raise NotImplementedError("Exercise q3: write your solution here")


# ---------------------------------------------------------------------------------------------------- the table

T, M, G, D, TR, E = "tokenizer", "model", "generation", "data", "training", "exercise"
CASES = [
    # tokenizers: unknown characters, ids out of range, wrong types, empty input
    Case("char-unknown-character", T, lambda t: char_tok().encode("abz"), ValueError, "pass unk=True"),
    Case("char-empty-vocabulary", T, lambda t: CharTokenizer.from_text("").encode("a"), ValueError,
         "build the tokenizer from a text that contains them"),
    Case("char-encode-not-a-str", T, lambda t: char_tok().encode(["a"]), TypeError, "encode takes a str"),
    Case("char-from-text-bytes", T, lambda t: CharTokenizer.from_text(b"abc"), TypeError, "text must be a str"),
    Case("char-vocab-entry-two-chars", T, lambda t: CharTokenizer(["ab"]), ValueError, "must be a single character"),
    Case("char-vocab-duplicates", T, lambda t: CharTokenizer(["a", "a"]), ValueError, "list each once"),
    Case("char-decode-id-too-large", T, lambda t: char_tok().decode([3]), ValueError, "decode ids made by this tokenizer"),
    Case("char-decode-negative-id", T, lambda t: char_tok().decode([-1]), ValueError, "ids 0..2"),
    Case("char-decode-float-id", T, lambda t: char_tok().decode([1.0]), TypeError, "pass a flat list of ints"),
    Case("char-decode-str-id", T, lambda t: char_tok().decode(["a"]), TypeError, "pass a flat list of ints"),
    Case("char-decode-batch-of-rows", T, lambda t: char_tok().decode(torch.zeros(2, 3, dtype=torch.long)), TypeError,
         "tok.decode(idx[0].tolist())"),
    Case("char-decode-not-a-list", T, lambda t: char_tok().decode(5), TypeError, "e.g. tok.decode([3, 1])"),
    Case("bpe-special-token-in-text", T, lambda t: bpe_tok().encode("a<|endoftext|>"), ValueError,
         "allowed_special='all'"),
    Case("bpe-unknown-allowed-special", T, lambda t: bpe_tok().encode("a", allowed_special={"<pad>"}), ValueError,
         "are not special tokens of this tokenizer"),
    Case("bpe-decode-id-out-of-range", T, lambda t: bpe_tok().decode([270]), ValueError,
         "decode ids made by this tokenizer"),
    Case("bpe-decode-float-id", T, lambda t: bpe_tok().decode([104.5]), TypeError, "pass a flat list of ints"),
    Case("bpe-encode-bytes", T, lambda t: bpe_tok().encode(b"hi"), TypeError, "encode takes a str"),
    Case("bpe-vocab-size-too-small", T, lambda t: BPETokenizer().train("abc", 200), ValueError, "must hold 256 bytes"),
    Case("bpe-vocab-size-not-int", T, lambda t: BPETokenizer().train("abc", "300"), TypeError,
         "vocab_size must be an int"),
    Case("bpe-bad-regex", T, lambda t: BPETokenizer(pattern="(unclosed"), ValueError, "use 'gpt2', 'gpt4', None or a regex"),
    # tokenizer files: missing, empty, not JSON, not UTF-8, other format or version, damaged fields
    Case("tokenizer-file-missing", T, lambda t: load_tokenizer(t / "nope.json"), FileNotFoundError,
         "save one with tok.save(path)"),
    Case("tokenizer-file-empty", T, lambda t: load_tokenizer(tokenizer_file(t, "")), ValueError,
         "save the tokenizer again"),
    Case("tokenizer-file-not-json", T, lambda t: load_tokenizer(tokenizer_file(t, "{chars: [a]")), ValueError,
         "save the tokenizer again"),
    Case("tokenizer-file-deeply-nested", T, lambda t: load_tokenizer(tokenizer_file(t, "[" * 100_000)), ValueError,
         "save the tokenizer again"),
    Case("tokenizer-file-not-utf8", T, lambda t: load_tokenizer(tokenizer_file(t, b"\xff\xfe\x00")), ValueError,
         "not a UTF-8 text file"),
    Case("tokenizer-file-a-list", T, lambda t: load_tokenizer(tokenizer_file(t, [1, 2])), ValueError,
         "is not an lmlab.CharTokenizer file"),
    Case("tokenizer-file-future-version", T, lambda t: load_tokenizer(bpe_file(t, version=2)), ValueError,
         "this lmlab reads version 1"),
    Case("char-file-chars-not-a-list", T, lambda t: load_tokenizer(tokenizer_file(
        t, {"format": "lmlab.CharTokenizer", "version": 1, "unk": False, "chars": "abc"})), ValueError,
         "needs a list 'chars'"),
    Case("bpe-file-merges-out-of-order", T, lambda t: load_tokenizer(bpe_file(t, merges=[[97, 98, 300]])), ValueError,
         "expected [a, b, 256]"),
    Case("bpe-file-merges-not-a-list", T, lambda t: load_tokenizer(bpe_file(t, merges=5)), ValueError,
         "'merges' must be a list"),
    Case("bpe-file-bad-pattern", T, lambda t: load_tokenizer(bpe_file(t, pattern=7)), ValueError,
         "its 'pattern' is unusable"),
    Case("bpe-file-bad-special-ids", T, lambda t: load_tokenizer(bpe_file(t, special_tokens={"<s>": "x"})), ValueError,
         "special_tokens must map strings to the ids"),
    Case("bpe-file-missing-field", T, lambda t: load_tokenizer(bpe_file(t, merges=...)), ValueError,
         "has no 'merges' field"),
    # models: context, dtypes, devices, shapes, ids
    Case("gpt-prompt-longer-than-context", M, lambda t: gpt()(ids(1, 9)), ValueError, "idx[:, -8:]"),
    Case("gpt-empty-batch-of-ids-list", M, lambda t: gpt()([[1, 2]]), TypeError, "torch.tensor([[...]], dtype=torch.long)"),
    Case("gpt-float-ids", M, lambda t: gpt()(ids(1, 4).float()), TypeError, "idx.long()"),
    Case("gpt-bool-ids", M, lambda t: gpt()(ids(1, 4).bool()), TypeError, "idx.long()"),
    Case("gpt-1d-ids", M, lambda t: gpt()(ids(4)), ValueError, "add a batch dimension with idx[None]"),
    Case("gpt-3d-ids", M, lambda t: gpt()(ids(1, 1, 4)), ValueError, "reshape it to (B, T)"),
    Case("gpt-id-beyond-vocab", M, lambda t: gpt()(ids(1, 4) + 11), ValueError, "check the tokenizer matches"),
    Case("gpt-negative-id", M, lambda t: gpt()(ids(1, 4) - 20), ValueError, "check the tokenizer matches"),
    Case("gpt-ids-on-another-device", M, lambda t: gpt()(ids(1, 4).to("meta")), ValueError, "move it with idx.to('cpu')"),
    Case("gpt-targets-on-another-device", M, lambda t: gpt()(ids(1, 4), ids(1, 4).to("meta")), ValueError,
         "targets.to('cpu')"),
    Case("gpt-targets-flattened", M, lambda t: gpt()(ids(2, 4), ids(8)), ValueError, "pass class ids shaped (B, T)"),
    Case("gpt-targets-batch-mismatch", M, lambda t: gpt()(ids(2, 4), ids(3, 4)), ValueError, "pass class ids shaped (B, T)"),
    Case("gpt-targets-one-hot", M, lambda t: gpt()(ids(2, 4), torch.zeros(2, 4, 11)), ValueError, "not one-hot"),
    Case("gpt-targets-float", M, lambda t: gpt()(ids(2, 4), ids(2, 4).float()), TypeError, "targets.long()"),
    Case("gpt-targets-out-of-range", M, lambda t: gpt()(ids(2, 4), ids(2, 4) + 11), ValueError, "or -100 (ignored)"),
    Case("gpt-config-heads-do-not-divide", M, lambda t: GPTConfig(n_embd=10, n_head=3), ValueError, "try n_head in"),
    Case("gpt-config-not-a-config", M, lambda t: GPT({"n_layer": 2}), TypeError, "build one with GPTConfig(**fields)"),
    Case("lstm-float-ids", M, lambda t: LSTMLM(LSTMConfig(vocab_size=11))(ids(1, 4).float()), TypeError, "idx.long()"),
    Case("lstm-targets-batch-mismatch", M, lambda t: LSTMLM(LSTMConfig(vocab_size=11))(ids(2, 4), ids(1, 4)),
         ValueError, "pass class ids shaped (B, T)"),
    Case("bigram-id-beyond-vocab", M, lambda t: BigramLM(BigramConfig(vocab_size=5))(ids(1, 4, high=11) + 5),
         ValueError, "check the tokenizer matches"),
    Case("classifier-labels-batch-mismatch", M, lambda t: SequenceClassifier(gpt(), n_classes=2)(
        ids(1, 4), torch.zeros(3, dtype=torch.long)), ValueError, "labels must be class ids of shape (1,)"),
    Case("hf-folder-with-code", M, lambda t: from_hf(with_code(t)), ValueError,
         "lmlab never runs code from a model folder (trust_remote_code=False)"),
    Case("hf-folder-pickled-weights", M, lambda t: from_hf(hf_folder(t, weights="pickle")), ValueError,
         "pass from_hf(path, use_safetensors=False)"),
    Case("hf-pickled-weights-on-old-torch", M, lambda t: on_torch("2.5.1", lambda: from_hf(
        hf_folder(t, weights="pickle"), use_safetensors=False)), ValueError, "Install torch 2.6 or later"),
    Case("hf-folder-without-weights", M, lambda t: from_hf(hf_folder(t, weights="none")), FileNotFoundError,
         "has no weights (model.safetensors)"),
    Case("hf-folder-without-config", M, lambda t: from_hf(t), FileNotFoundError, "has no config.json"),
    Case("hf-folder-missing", M, lambda t: from_hf(t / "nope"), FileNotFoundError, "no such folder"),
    Case("hf-use-safetensors-not-bool", M, lambda t: from_hf(t, use_safetensors="no"), TypeError,
         "use_safetensors must be True or False"),
    Case("classifier-mask-shape", M, lambda t: SequenceClassifier(gpt(), n_classes=2)(
        ids(1, 4), attention_mask=torch.ones(2, 2)), ValueError, "(1 = real token, 0 = padding)"),
    # generation: empty prompts, impossible sampling settings, dtypes, devices, shapes
    Case("generate-empty-prompt", G, lambda t: gen(idx=ids(1, 0)), ValueError, "start from a BOS/end-of-text token"),
    Case("generate-no-prompts", G, lambda t: gen(idx=ids(0, 3)), ValueError, "pass at least one prompt"),
    Case("generate-text-empty-prompt", G, lambda t: generate_text(gpt(), CharTokenizer.from_text("abc"), "", 2),
         ValueError, "give at least one character"),
    Case("generate-text-ids-as-prompt", G, lambda t: generate_text(gpt(), char_tok(), [0, 1], 2), TypeError,
         "for token ids call generate()"),
    Case("generate-prompt-out-of-vocab", G, lambda t: gen(idx=ids(1, 3) + 11), ValueError, "check the tokenizer matches"),
    Case("generate-temperature-zero", G, lambda t: gen(temperature=0), ValueError, "use greedy decoding: do_sample=False"),
    Case("generate-temperature-negative", G, lambda t: gen(temperature=-1.0), ValueError, "do_sample=False"),
    Case("generate-temperature-nan", G, lambda t: gen(temperature=float("nan")), ValueError, "do_sample=False"),
    Case("generate-temperature-inf", G, lambda t: gen(temperature=float("inf")), ValueError,
         "a large value (e.g. 100) samples almost uniformly"),
    Case("generate-temperature-str", G, lambda t: gen(temperature="0.8"), TypeError, "temperature must be a number"),
    Case("generate-top-p-zero", G, lambda t: gen(top_p=0.0), ValueError, "top_p=1.0 or None keeps every token"),
    Case("generate-top-p-above-one", G, lambda t: gen(top_p=1.5), ValueError, "top_p=1.0 or None keeps every token"),
    Case("generate-top-p-nan", G, lambda t: gen(top_p=float("nan")), ValueError, "top_p=1.0 or None keeps every token"),
    Case("generate-top-k-zero", G, lambda t: gen(top_k=0), ValueError, "use top_k=None to keep every token"),
    Case("generate-top-k-negative", G, lambda t: gen(top_k=-5), ValueError, "use top_k=None to keep every token"),
    Case("generate-top-k-float", G, lambda t: gen(top_k=2.5), TypeError, "top_k must be a positive int"),
    Case("generate-num-beams-zero", G, lambda t: gen(num_beams=0), ValueError, "1 = no beam search"),
    Case("generate-max-new-tokens-negative", G, lambda t: gen(max_new_tokens=-1), ValueError, "max_new_tokens must be >= 0"),
    Case("generate-max-new-tokens-float", G, lambda t: gen(max_new_tokens=2.0), TypeError, "max_new_tokens must be an int"),
    Case("generate-int32-ids", G, lambda t: gen(idx=ids(1, 3).int()), TypeError, "idx.long()"),
    Case("generate-1d-prompt", G, lambda t: gen(idx=ids(3)), ValueError, "add a batch dimension with idx[None]"),
    Case("generate-model-on-another-device", G, lambda t: gen(model=new_gpt().to("meta")), ValueError,
         "move it with idx.to('meta')"),
    Case("generate-generator-not-a-generator", G, lambda t: gen(generator=0), TypeError, "must be a torch.Generator"),
    Case("generate-eos-not-in-vocab", G, lambda t: gen(eos_id=11), ValueError, "use the tokenizer's end-of-text id"),
    Case("generate-eos-negative", G, lambda t: gen(eos_id=-1), ValueError, "eos_id must be a token id >= 0"),
    Case("generate-model-not-a-module", G, lambda t: generate(lambda x: x, ids(1, 3), 2), TypeError,
         "model must be a torch.nn.Module"),
    Case("top-k-filter-zero", G, lambda t: top_k_filter(torch.zeros(5), 0), ValueError, "use top_k=None"),
    Case("top-p-filter-above-one", G, lambda t: top_p_filter(torch.zeros(5), 1.5), ValueError, "top_p=1.0 or None"),
    Case("temperature-zero", G, lambda t: apply_temperature(torch.zeros(5), 0.0), ValueError, "do_sample=False"),
    # data: downloads, cache folder, zips, batches
    Case("download-wrong-hash", D, lambda t: fetch_served(t, "tinyshakespeare", b"not shakespeare"), DownloadError,
         "set LMLAB_DATA_DIR=DIR"),
    Case("download-truncated", D, lambda t: fetch_served(t, "tinyshakespeare", b"x" * 10_000, truncated=True),
         DownloadError, "truncated download"),
    Case("cache-folder-missing-offline", D, lambda t: fetch("tinyshakespeare", data_dir=t / "missing", urls=[]),
         DownloadError, "lmlab data download --all --to DIR"),
    Case("cache-folder-unusable", D, lambda t: fetch("tinyshakespeare", data_dir=under_a_file(t), urls=[]), OSError,
         "point LMLAB_DATA_DIR to a writable folder"),
    Case("cached-file-wrong-hash", D, cached_with_wrong_hash, DownloadError, "delete it or let a download replace it"),
    Case("zip-member-escapes-the-folder", D, evil_zip_member, ValueError, "get the file from another mirror"),
    Case("zip-download-escapes-the-folder", D, lambda t: fetch_served(
        t, "sms_spam", zip_bytes({"../SMSSpamCollection": b"ham\thi\n"})), DownloadError, "escapes the target folder"),
    Case("zip-download-not-a-zip", D, lambda t: fetch_served(t, "sms_spam", b"<html>maintenance</html>"),
         DownloadError, "not a valid zip archive"),
    Case("download-endless-stream", D, lambda t: fetch_served(t, "tinyshakespeare", b"x", how="endless"),
         DownloadError, "more than the 1,115,394 expected (the mirror sends a wrong file, or never stops)"),
    Case("download-content-length-too-large", D, lambda t: fetch_served(t, "tinyshakespeare", b"x",
         how="lying-length"), DownloadError, "announces 1,000,000,000,000 bytes, more than the 1,115,394 expected"),
    Case("download-slow-drip", D, lambda t: fetch_served(t, "tinyshakespeare", b"x" * 1000, how="drip",
         deadline=0.5), DownloadError, "pass a larger deadline= to wait longer"),
    Case("download-headers-drip", D, lambda t: fetch_served(t, "tinyshakespeare", b"", how="drip-headers",
         deadline=0.5), DownloadError, "gave up after the 0.5 s deadline"),
    Case("zip-bomb", D, lambda t: fetch_served(t, "sms_spam", zip_bytes({"SMSSpamCollection": bytes(50 * 2**20)})),
         DownloadError, "not extracted (a zip bomb or the wrong archive)"),
    Case("zip-member-lies-about-its-size", D, lambda t: fetch_served(t, "sms_spam", lying_zip(bytes(10**6), 100)),
         DownloadError, "not a valid zip archive (Bad CRC-32"),
    Case("zip-member-data-damaged", D, lambda t: fetch_served(t, "sms_spam", damaged_zip("data")), DownloadError,
         "not a valid zip archive (cannot read zip member 'SMSSpamCollection' (error: Error -3"),
    Case("zip-format-from-the-future", D, lambda t: fetch_served(t, "sms_spam", damaged_zip("version")),
         DownloadError, "(NotImplementedError: zip file version 9.9)"),
    Case("cached-file-far-too-large", D, cached_too_large, DownloadError, "is larger than 1,115,394 bytes"),
    Case("download-deadline-infinite", D, lambda t: fetch("tinyshakespeare", data_dir=t, urls=[],
         deadline=float("inf")), ValueError, "must be a positive number of seconds, at most 86,400"),
    Case("download-timeout-a-string", D, lambda t: fetch("tinyshakespeare", data_dir=t, urls=[], timeout="30"),
         TypeError, "timeout must be a number of seconds"),
    Case("download-max-bytes-zero", D, lambda t: fetch("tinyshakespeare", data_dir=t, urls=[], max_bytes=0),
         ValueError, "max_bytes=0 must be a positive int"),
    Case("unknown-corpus", D, lambda t: fetch("shakespeare", data_dir=t), ValueError,
         "known corpora: sms_spam, tinyshakespeare"),
    Case("batches-data-too-short", D, lambda t: LMBatches(torch.arange(5), 8, 2), ValueError,
         "use a smaller block_size or more data"),
    Case("batches-float-ids", D, lambda t: LMBatches(torch.rand(100), 8, 2), TypeError, "pass the tokenizer's ids"),
    Case("batches-2d-ids", D, lambda t: LMBatches(torch.zeros(4, 50, dtype=torch.long), 8, 2), ValueError,
         "flatten it first"),
    Case("array-batches-rows-differ", D, lambda t: ArrayBatches(torch.zeros(4, 2), torch.zeros(3), 2), ValueError,
         "they must pair up row by row"),
    # training and checkpoints
    Case("train-config-a-dict", TR, lambda t: train(TinyLM(), make_batches()[0], None, {"max_steps": 1}), TypeError,
         "config must be a TrainConfig"),
    Case("train-config-zero-steps", TR, lambda t: TrainConfig(max_steps=0), ValueError, "must be a positive int"),
    Case("train-batches-a-tensor", TR, lambda t: train(TinyLM(), torch.arange(100), None, quiet()), TypeError,
         "e.g. lmlab.data.batching.LMBatches"),
    Case("train-batch-not-a-pair", TR, lambda t: train(TinyLM(), Batches(ids(2, 4)), None, quiet()), TypeError,
         "it must return a pair (x, y), as lmlab.data.batching.LMBatches does"),
    Case("train-batch-shapes-differ", TR, lambda t: train(new_gpt(), Batches((ids(2, 4), ids(2, 3))), None, quiet()),
         ValueError, "targets must have the same shape as idx"),
    Case("train-model-without-targets", TR, lambda t: train(torch.nn.Linear(2, 2), Batches((ids(2, 2), ids(2, 2))),
         None, quiet()), TypeError, "model(idx, targets) -> (logits, loss)"),
    Case("train-resume-missing-folder", TR, lambda t: train(TinyLM(), make_batches()[0], None, quiet(),
         resume=t / "nope"), ValueError, "no such checkpoint folder"),
    Case("checkpoint-other-model-config", TR, lambda t: load_checkpoint(checkpoint_of(t, TinyLM(n_embd=16)),
         TinyLM(n_embd=8)), CheckpointError, "build the model with the checkpoint's config"),
    Case("checkpoint-none-there", TR, lambda t: load_checkpoint(t), CheckpointError, "expected a folder step-XXXXXX"),
    Case("torch-load-on-old-torch", TR, lambda t: on_torch("2.5.1", lambda: safe_torch_load(optimizer_file(t))),
         ValueError, "(CVE-2025-32434). Install torch 2.6 or later"),
    Case("checkpoint-state-not-json", TR, lambda t: save_checkpoint(t, TinyLM(), step=1, state={"f": print}), TypeError,
         "must be JSON data"),
    # exercises: whatever a learner passes gets feedback, never an exception
    Case("answer-raises", E, lambda t: check(nb01.q1, divides_by_zero), FEEDBACK, "raised ZeroDivisionError"),
    Case("answer-hangs", E, lambda t: check(nb01.q3, hangs, timeout=0.3), FEEDBACK,
         "Look for a loop that never ends"),
    Case("answer-prints-megabytes", E, lambda t: check(nb01.q3, prints_megabytes), FEEDBACK,
         "Your code printed 5,000,001 characters during the check; the first 500 are shown"),
    Case("answer-calls-exit", E, lambda t: check(nb01.q3, calls_exit), FEEDBACK, "a function should `return` its result"),
    Case("answer-raises-base-exception", E, lambda t: check(nb01.q3, raises_base_exception), FEEDBACK,
         "raised BaseException: not an Exception"),
    Case("answer-recurses-forever", E, lambda t: check(nb01.q3, recurses), FEEDBACK, "raised RecursionError"),
    Case("answer-is-a-stub", E, lambda t: check(nb01.q3, stub), FEEDBACK, "replace the `raise NotImplementedError"),
    Case("answer-left-out", E, lambda t: check(nb01.q3, ...), FEEDBACK, "Not yet solved"),
    Case("answer-is-a-result", E, lambda t: check(nb01.q3, 4.0), FEEDBACK, "without parentheses after perplexity"),
    Case("answer-is-none", E, lambda t: check(nb01.q3, None), FEEDBACK, "Pass the function itself"),
    Case("answer-is-a-class", E, lambda t: check(nb01.q3, dict), FEEDBACK, "it expects your function `perplexity`"),
    Case("answer-is-unprintable", E, lambda t: check(nb01.q3, Unprintable()), FEEDBACK,
         "received an Unprintable (it cannot be shown: RuntimeError)"),
    Case("answer-returns-unprintable", E, lambda t: check(nb01.q3, lambda ce: Unprintable()), FEEDBACK,
         "it should return a single number"),
    Case("answer-returns-meta-tensor", E, lambda t: check(nb01.q1, lambda ids, V: torch.zeros(V, V, device="meta")),
         FEEDBACK, "bigram_probs"),
    Case("answer-takes-other-arguments", E, lambda t: check(nb01.q1, lambda ids: ids), FEEDBACK, "raised TypeError"),
]

RELIABILITY = [
    # checkpoints: bit rot, non-finite values, another model's optimizer, hand-edited specs, old torch
    Case("checkpoint-weights-bit-flip", TR, lambda t: load_checkpoint(flipped(t, "model.safetensors"), TinyLM()),
         CheckpointError, "model.safetensors is damaged: its SHA-256"),
    Case("checkpoint-optimizer-bit-flip", TR, lambda t: load_with_optimizer(flipped(t, "optimizer.pt")),
         CheckpointError, "optimizer.pt is damaged: its SHA-256"),
    Case("checkpoint-checksums-malformed", TR, lambda t: load_checkpoint(with_state(t, files=["x"]), TinyLM()),
         CheckpointError, "state.json: 'files' is malformed"),
    Case("checkpoint-infinite-weights", TR, lambda t: load_checkpoint(nan_weights(t), TinyLM()), CheckpointError,
         "model.safetensors holds NaN or infinite values (in emb.weight)"),
    Case("checkpoint-optimizer-of-another-model-size", TR, lambda t: load_with_optimizer(other_size_optimizer(t)),
         CheckpointError, "optimizer.pt does not fit the optimizer"),
    Case("checkpoint-optimizer-on-old-torch", TR, lambda t: on_torch("2.5.1", lambda: load_with_optimizer(
        trained_run(t))), CheckpointError, "optimizer.pt with torch 2.5.1"),
    Case("checkpoint-spec-huge-vocabulary", TR, lambda t: load_checkpoint(huge_vocabulary(t)), CheckpointError,
         "does not match model.safetensors (nothing was allocated)"),
    # the training loop's part of state.json
    Case("resume-rng-states-malformed", TR, lambda t: (with_state(t, rng_states=[]), resume_run(t)),
         CheckpointError, "'rng_states' is malformed"),
    Case("resume-pending-loss-malformed", TR, lambda t: (with_state(t, pending_loss=[1.0]), resume_run(t)),
         CheckpointError, "'pending_loss' is malformed"),
    Case("resume-history-malformed", TR, lambda t: (with_state(t, history={"steps": "1, 2"}), resume_run(t)),
         CheckpointError, "'history' is malformed"),
    Case("resume-grad-scaler-malformed", TR, lambda t: (with_state(t, grad_scaler=[2.0]), resume_run(t)),
         CheckpointError, "'grad_scaler' is malformed"),
    Case("resume-world-size-malformed", TR, lambda t: (with_state(t, world_size="two"), resume_run(t)),
         CheckpointError, "'world_size' is malformed"),
    Case("resume-fingerprints-malformed", TR, lambda t: (with_state(t, fingerprints=7), resume_run(t)),
         CheckpointError, "'fingerprints' is malformed"),
    # runs that collide
    Case("train-into-a-finished-run", TR, lambda t: (trained_run(t), resume_run(t, resume=False)), FileExistsError,
         "pass resume=True to continue it, overwrite=True to replace it"),
    Case("train-overwrite-and-resume", TR, lambda t: resume_run(t, overwrite=True), ValueError,
         "overwrite=True starts a new run; it cannot be combined with resume"),
    Case("train-folder-locked", TR, locked_run, RuntimeError, "wait for it to finish or use another checkpoint_dir"),
    Case("resume-other-data-strict", TR, lambda t: (trained_run(t), resume_run(t, batches=make_batches(seed=5)[0],
         strict=True)), ValueError, "data: batch 0 differs from the one the checkpoint saw"),
    Case("resume-other-tokenizer-strict", TR, lambda t: (trained_run(t, tokenizer=CharTokenizer(list("abcdefghijk"))),
         resume_run(t, tokenizer=CharTokenizer(list("abcdefghijz")), strict=True)), ValueError, "tokenizer: "),
    # tokenizer files built to exhaust memory or time
    Case("bpe-file-tokens-double-each-merge", T, doubling_bpe, ValueError,
         "more than the 16,777,216 bytes a BPE vocabulary may take"),
    Case("char-file-60000-chars-one-duplicate", T, many_chars_one_duplicate, ValueError, "['b']; list each once"),
]
CASES += RELIABILITY

LMLAB = Path(lmlab.__file__).resolve().parent


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error(case: Case, tmp_path: Path) -> None:
    if case.error == FEEDBACK:
        result = case.trigger(tmp_path)
        assert isinstance(result, CheckResult) and not result.passed
        assert case.says in result.message, result.message
        return
    with pytest.raises(case.error) as info:  # type: ignore[arg-type]
        case.trigger(tmp_path)
    assert case.says in str(info.value), str(info.value)
    innermost = Path(traceback.extract_tb(info.tb)[-1].filename).resolve()
    assert LMLAB in innermost.parents, f"raised from {innermost}, not by lmlab's own checks"


def test_the_table_covers_every_kind_of_bad_input() -> None:
    assert len({c.id for c in CASES}) == len(CASES)  # one test id per case
    assert {c.topic for c in CASES} == {T, M, G, D, TR, E}
    assert len(CASES) >= 50


# ---------------------------------------------------------------------------------------------------- the command line
# Each bad command line gets exactly one line on stderr (no traceback) and a non-zero exit code.

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--max-steps",
        "2", "--eval-every", "2", "--threads", "1", "--seed", "3", "--no-progress"]


@dataclass(frozen=True)
class CliCase:
    id: str
    argv: Callable[[Path], list[str]]  # given a folder holding "run", a finished `lmlab train` run of TINY
    code: int  # the exit code: 2 for a command line that cannot be used, 1 for an error while running
    says: str  # part of the one line on stderr


def unavailable_device() -> str:
    return "mps" if torch.cuda.is_available() else "cuda"


def replace_tokenizer(run: Path, where: Path) -> Path:
    """Remove the run's tokenizer and put one with another vocabulary at ``where``."""
    (run / "tokenizer.json").unlink()
    CharTokenizer.from_text("abc").save(where)
    return run


def hold_lock(run: Path) -> Path:
    from lmlab.checkpoint import RunLock

    RunLock(run).acquire()
    return run


def without_checkpoints(run: Path) -> Path:
    """What a run killed before its first checkpoint leaves: run.json and tokenizer.json."""
    import shutil

    shutil.rmtree(run / "checkpoints")
    return run


def flipped_weights(run: Path) -> Path:
    from lmlab.checkpoint import latest_checkpoint

    file = latest_checkpoint(run / "checkpoints") / "model.safetensors"
    raw = bytearray(file.read_bytes())
    raw[8 + int.from_bytes(raw[:8], "little") + 3] ^= 1
    file.write_bytes(bytes(raw))
    return run


def sample(run: Path, *args: str) -> list[str]:
    return ["sample", "--checkpoint", str(run), "--max-new-tokens", "3", *args]


CLI_CASES = [
    CliCase("cli-lr-infinite", lambda t: ["train", "--out", str(t / "new"), "--lr", "inf"], 2,
            "lmlab train: error: argument --lr: must be a finite number > 0, got 'inf'"),
    CliCase("cli-lr-nan", lambda t: ["train", "--out", str(t / "new"), "--lr", "nan"], 2, "got 'nan'"),
    CliCase("cli-lr-zero", lambda t: ["train", "--out", str(t / "new"), "--lr", "0"], 2, "must be a finite number > 0"),
    CliCase("cli-checkpoint-every-zero", lambda t: ["train", "--out", str(t / "new"), "--checkpoint-every", "0"], 2,
            "argument --checkpoint-every: must be an int >= 1, got '0'"),
    CliCase("cli-max-steps-not-an-int", lambda t: ["train", "--out", str(t / "new"), "--max-steps", "1e3"], 2,
            "argument --max-steps: must be an int >= 1, got '1e3'"),
    CliCase("cli-dropout-one", lambda t: ["train", "--out", str(t / "new"), "--dropout", "1"], 2,
            "argument --dropout: must be a number >= 0 and < 1, got '1'"),
    CliCase("cli-seed-negative", lambda t: ["train", "--out", str(t / "new"), "--seed", "-1"], 2,
            "argument --seed: must be an int >= 0 and < 2**32, got '-1'"),
    CliCase("cli-num-samples-negative", lambda t: sample(t / "run", "--num-samples", "-2"), 2,
            "lmlab sample: error: argument --num-samples: must be an int >= 1, got '-2'"),
    CliCase("cli-temperature-infinite", lambda t: sample(t / "run", "--temperature", "inf"), 2,
            "argument --temperature: must be a finite number > 0"),
    CliCase("cli-top-p-above-one", lambda t: sample(t / "run", "--top-p", "1.5"), 2,
            "argument --top-p: must be a number > 0 and <= 1, got '1.5'"),
    CliCase("cli-max-new-tokens-negative", lambda t: ["sample", "--checkpoint", str(t / "run"), "--max-new-tokens",
            "-1"], 2, "argument --max-new-tokens: must be an int >= 0, got '-1'"),
    CliCase("cli-grade-timeout-nan", lambda t: ["course", "grade", str(t), "--out", str(t / "g.csv"), "--timeout",
            "nan"], 2, "lmlab course grade: error: argument --timeout: must be a finite number > 0, got 'nan'"),
    CliCase("cli-grade-jobs-zero", lambda t: ["course", "grade", str(t), "--out", str(t / "g.csv"), "--jobs", "0"], 2,
            "argument --jobs: must be an int >= 1, got '0'"),
    CliCase("cli-check-device-unavailable", lambda t: ["env", "--check-device", "--device", unavailable_device()], 1,
            "is not available"),
    CliCase("cli-diverging-run", lambda t: ["train", "--out", str(t / "new"), *TINY, "--max-steps", "30", "--lr",
            "1e6"], 1, "lmlab train: error: the training loss (or its gradient) became NaN or infinite"),
    CliCase("cli-resume-other-lr", lambda t: ["train", "--out", str(t / "run"), "--resume", "--lr", "0.1"], 2,
            "--lr 0.1 (the run has 0.005)"),
    CliCase("cli-resume-other-batch-size", lambda t: ["train", "--out", str(t / "run"), "--resume", "--batch-size",
            "8"], 2, "--batch-size 8 (the run has 4)"),
    CliCase("cli-resume-other-corpus", lambda t: ["train", "--out", str(t / "run"), "--resume", "--corpus", "sms_spam"],
            2, "--corpus sms_spam (the run has tinyshakespeare)"),
    CliCase("cli-resume-and-overwrite", lambda t: ["train", "--out", str(t / "run"), "--resume", "--overwrite"], 2,
            "--overwrite starts a new run; it cannot be combined with --resume"),
    CliCase("cli-new-run-over-a-finished-one", lambda t: ["train", "--out", str(t / "run"), *TINY], 2,
            "already holds a run (run.json, tokenizer.json, history.json, checkpoints)"),
    CliCase("cli-new-run-over-a-tokenizer-and-run-json", lambda t: ["train", "--out", str(without_checkpoints(
        t / "run")), *TINY, "--lr", "0.01"], 2, "already holds a run (run.json, tokenizer.json, history.json)"),
    CliCase("cli-train-into-a-locked-folder", lambda t: ["train", "--out", str(hold_lock(t / "run")), "--resume"], 1,
            f"another training process (pid {__import__('os').getpid()}) is using"),
    CliCase("cli-sample-tokenizer-of-a-parent-folder", lambda t: sample(replace_tokenizer(t / "run",
            t / "tokenizer.json")), 2, "no tokenizer.json beside the checkpoints"),
    CliCase("cli-sample-tokenizer-of-another-vocabulary", lambda t: sample(replace_tokenizer(t / "run",
            t / "run" / "tokenizer.json")), 2, "has 3 tokens but the model has a vocabulary of 65"),
    CliCase("cli-sample-damaged-weights", lambda t: sample(flipped_weights(t / "run")), 1,
            "model.safetensors is damaged: its SHA-256"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    import os

    from lmlab.cli import main

    data = Path(os.environ.get("LMLAB_DATA_DIR", ""))
    if not (data / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip("corpus files not found; set LMLAB_DATA_DIR")
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    return run


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_a_bad_command_line_gets_one_clear_line(case: CliCase, finished_run: Path, tmp_path: Path, capsys) -> None:
    import shutil

    from lmlab.cli import main

    shutil.copytree(finished_run, tmp_path / "run")
    argv = case.argv(tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's errors
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lmlab") and "Traceback" not in err, err
    assert case.says in lines[0], lines[0]
    assert code == case.code, err


def test_the_tables_count() -> None:
    assert len({c.id for c in CLI_CASES} | {c.id for c in CASES}) == len(CASES) + len(CLI_CASES)
    assert len(CASES) + len(CLI_CASES) >= 142 + len(RELIABILITY) + 25
