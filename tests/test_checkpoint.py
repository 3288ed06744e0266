"""Checkpoints: round trip, atomic writes under failures and kills, mismatches, versions, unsafe pickles."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import warnings

import pytest

if sys.platform != "win32":
    import resource
import torch
from ddp_worker import TinyLM

from lmlab.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    CheckpointWriteError,
    UnsafeCheckpointError,
    latest_checkpoint,
    load_checkpoint,
    remove_leftovers,
    save_checkpoint,
)
from lmlab.train import TrainConfig, make_optimizer

ROOT = pathlib.Path(__file__).resolve().parent.parent


def trained(seed=0, n_embd=16):
    """A TinyLM and an AdamW that has taken one step (so it has moment estimates to save)."""
    torch.manual_seed(seed)
    model = TinyLM(n_embd=n_embd)
    opt = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    _, loss = model(torch.randint(11, (2, 5)), torch.randint(11, (2, 5)))
    loss.backward()
    opt.step()
    return model, opt


def test_round_trip_restores_weights_optimizer_and_state(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path, model, opt, step=3, state={"note": "hi", "history": {"steps": [1, 2, 3]}})
    assert path == tmp_path / "step-000003"
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "optimizer.pt", "state.json"]
    assert (tmp_path / "latest").read_text().strip() == "step-000003"
    state = json.loads((path / "state.json").read_text())  # plain, inspectable JSON
    assert state["step"] == 3 and state["format_version"] == FORMAT_VERSION and state["note"] == "hi"

    other, other_opt = trained(seed=1)
    ckpt = load_checkpoint(tmp_path, other, other_opt)  # a run folder: its latest checkpoint
    assert ckpt.path == path and ckpt.step == 3 and ckpt.state["history"] == {"steps": [1, 2, 3]}
    assert ckpt.model is other
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) and torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"])


def test_keeps_the_newest_checkpoints_and_resaving_a_step_replaces_it(tmp_path):
    model, opt = trained()
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, model, opt, step=step, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000003", "step-000004"]
    save_checkpoint(tmp_path, model, None, step=4, state={"again": True}, keep=2)
    assert load_checkpoint(tmp_path, model).state["again"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


class FullDiskOptimizer(torch.optim.SGD):
    """Fails half-way through a save, after the weights were written, as a full disk would."""

    def state_dict(self):
        raise OSError(28, "No space left on device")


def test_failed_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt, step=1)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(CheckpointWriteError, match="No space left on device") as info:
        save_checkpoint(tmp_path, model, FullDiskOptimizer(model.parameters(), lr=0.1), step=2)
    assert isinstance(info.value, OSError) and str(tmp_path) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000001"]  # temp folder removed
    ckpt = load_checkpoint(tmp_path, TinyLM())
    assert ckpt.step == 1
    for k, v in ckpt.model.state_dict().items():
        assert torch.equal(v, good[k])


def test_crash_at_the_final_rename_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt, step=1)

    def crash(src, dst):  # simulates dying exactly at the commit point
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CheckpointWriteError):
        save_checkpoint(tmp_path, model, opt, step=2)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path).name == "step-000001"
    assert load_checkpoint(tmp_path, TinyLM()).step == 1


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # chmod does not stop root; a path under a file stops everyone
    model, _ = trained()
    with pytest.raises(CheckpointWriteError, match="could not write a checkpoint into .*a_file/run"):
        save_checkpoint(blocker / "run", model, step=1)


KILL_SCRIPT = r"""
import sys, torch
from lmlab.checkpoint import save_checkpoint
model = torch.nn.Linear(512, 512)   # 1 MB of weights: a save takes a while
step = 0
while True:
    step += 1
    with torch.no_grad():
        model.weight.fill_(step); model.bias.fill_(step)
    save_checkpoint(sys.argv[1], model, step=step, state={"value": step})
    print(step, flush=True)
"""


def test_killed_while_saving_leaves_a_loadable_consistent_checkpoint(tmp_path):
    """A real process saving in a loop, killed with SIGKILL at an arbitrary moment."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(run)], stdout=subprocess.PIPE, env=env)
    try:
        first = proc.stdout.readline()  # wait for at least one complete checkpoint
        assert first.strip(), "the saving process died before its first checkpoint"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    ckpt = load_checkpoint(run, torch.nn.Linear(512, 512))
    value = ckpt.state["value"]
    assert ckpt.step == value >= 1
    assert (ckpt.model.weight == value).all() and (ckpt.model.bias == value).all()  # weights match the state


def test_mismatched_model_names_every_difference_and_loads_nothing(tmp_path):
    model, _ = trained(n_embd=16)
    save_checkpoint(tmp_path, model, step=1)
    small = TinyLM(n_embd=8)
    before = {k: v.clone() for k, v in small.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path, small)
    msg = str(info.value)
    assert "emb.weight: checkpoint [11, 16], model [11, 8]" in msg
    assert "ln.weight: checkpoint [16], model [8]" in msg
    assert all(torch.equal(v, before[k]) for k, v in small.state_dict().items())


def test_other_format_version_is_refused_with_a_clear_message(tmp_path):
    model, _ = trained()
    path = save_checkpoint(tmp_path, model, step=1)
    state = json.loads((path / "state.json").read_text())
    state["format_version"] = 999
    (path / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="format version 999.*reads version 1"):
        load_checkpoint(path, TinyLM())


class Evil:
    """Unpickling this object creates a marker file: it stands for arbitrary code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_malicious_optimizer_pickle_is_refused(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path, model, opt, step=1)
    marker = tmp_path / "pwned"
    torch.save({"state": {0: Evil(str(marker))}, "param_groups": []}, path / "optimizer.pt")
    with pytest.raises(CheckpointError, match="optimizer.pt is damaged: its SHA-256"):  # a swapped file ...
        load_checkpoint(path, TinyLM(), make_optimizer(TinyLM(), TrainConfig()))
    _rehash(path, "optimizer.pt")  # ... unless its hash was swapped too: then the unpickler refuses it
    with pytest.raises(UnsafeCheckpointError, match="refused to load .*optimizer.pt"):
        load_checkpoint(path, TinyLM(), make_optimizer(TinyLM(), TrainConfig()))
    assert not marker.exists()
    # the planted file is really dangerous: unpickling it without weights_only runs its code
    torch.load(path / "optimizer.pt", weights_only=False)
    assert marker.exists()


def test_nothing_to_load_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
    model, _ = trained()
    save_checkpoint(tmp_path, model, step=1)
    with pytest.raises(CheckpointError, match="pass it as model="):
        load_checkpoint(tmp_path)  # TinyLM is not an lmlab.models model: no spec to rebuild from
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(tmp_path, TinyLM(), make_optimizer(TinyLM(), TrainConfig()))


# ---------------------------------------------------------------------------------------------------- tiny GPT


def _gpt(n_layer=2, seed=0):
    from lmlab.models.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=n_layer, n_head=2, n_embd=16))


def test_gpt_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    pytest.importorskip("lmlab.models.gpt")
    from safetensors import safe_open

    model = _gpt()
    path = save_checkpoint(tmp_path, model, step=1)
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
    assert ("lm_head.weight" in names) != ("transformer.wte.weight" in names)  # exactly one copy
    other = _gpt(seed=1)
    load_checkpoint(path, other)
    assert other.lm_head.weight is other.transformer.wte.weight
    for p, q in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(p, q)


def test_gpt_config_mismatch_names_the_field(tmp_path):
    pytest.importorskip("lmlab.models.gpt")
    save_checkpoint(tmp_path, _gpt(n_layer=4), step=1)
    with pytest.raises(CheckpointError, match="n_layer: checkpoint 4, model 2") as info:
        load_checkpoint(tmp_path, _gpt(n_layer=2))
    assert "transformer.h.2.attn.c_attn.weight: in the checkpoint" in str(info.value)


def test_gpt_other_dropout_loads_with_a_warning(tmp_path):
    pytest.importorskip("lmlab.models.gpt")
    from lmlab.models.gpt import GPT, GPTConfig

    model = _gpt()
    save_checkpoint(tmp_path, model, step=1)
    torch.manual_seed(5)
    other = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.2))
    with pytest.warns(UserWarning, match="dropout: checkpoint 0.0, model 0.2"):
        load_checkpoint(tmp_path, other)
    assert torch.equal(other.lm_head.weight, model.lm_head.weight)


def test_gpt_is_rebuilt_from_the_model_spec(tmp_path):
    models = pytest.importorskip("lmlab.models")
    if not hasattr(models, "build_model") or not hasattr(models, "model_spec"):
        pytest.skip("lmlab.models.build_model / model_spec not written yet")
    model = _gpt()
    save_checkpoint(tmp_path, model, step=1)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.state["model_spec"] == json.loads(json.dumps(models.model_spec(model)))
    assert type(ckpt.model) is type(model)
    for p, q in zip(model.state_dict().values(), ckpt.model.state_dict().values()):
        assert torch.equal(p, q)


# ---------------------------------------------------------------------------------------------------- leftovers, full disk, damage


def test_leftovers_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt, step=1)
    # what kills at different moments of a save leave behind (see tests/test_kill_resume.py for real kills)
    (tmp_path / ".tmp-step-000002-0123abcd").mkdir()  # killed while writing step 2
    (tmp_path / ".tmp-step-000002-0123abcd" / "model.safetensors").write_bytes(b"half a file")
    (tmp_path / ".latest.tmp-89abcdef").write_text("step-000002\n")  # killed while writing `latest`
    (tmp_path / ".del-step-000000-00ff00ff").mkdir()  # killed while deleting an old checkpoint
    assert remove_leftovers(tmp_path / "missing") == []
    save_checkpoint(tmp_path, model, opt, step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000001", "step-000002"]


def test_killed_while_saving_a_step_again_puts_the_old_copy_back(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt, step=1)
    path = save_checkpoint(tmp_path, model, opt, step=2, state={"copy": "old"})
    os.replace(path, tmp_path / ".old-step-000002-0badf00d")  # killed between moving it aside and the new rename
    (tmp_path / ".tmp-step-000002-1badf00d").mkdir()
    assert latest_checkpoint(tmp_path).name == "step-000001"
    assert remove_leftovers(tmp_path) == [".tmp-step-000002-1badf00d"]
    ckpt = load_checkpoint(tmp_path, TinyLM())
    assert ckpt.step == 2 and ckpt.state["copy"] == "old"


def _save_with_file_size_limit(directory, limit, **kw):
    """save_checkpoint while the kernel refuses to let any file grow beyond ``limit`` bytes (EFBIG), as
    a nearly full disk refuses the file that does not fit. (No root needed, unlike a small tmpfs.)"""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        return save_checkpoint(directory, **kw)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.mark.skipif(sys.platform == "win32" or not hasattr(signal, "SIGXFSZ"), reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("failing_file", ["model.safetensors", "optimizer.pt", "state.json"])
def test_a_real_write_failure_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, failing_file):
    model, opt = trained()  # files: model.safetensors ~2 KB, optimizer.pt ~8 KB, state.json < 1 KB
    save_checkpoint(tmp_path, model, opt, step=1)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    limit, kw = {
        "model.safetensors": (1000, {}),
        "optimizer.pt": (4000, {"optimizer": opt}),
        "state.json": (4000, {"state": {"notes": "x" * 10_000}}),
    }[failing_file]
    with pytest.raises(CheckpointWriteError) as info:
        _save_with_file_size_limit(tmp_path, limit, model=TinyLM(), step=2, **kw)
    msg = str(info.value)
    assert str(tmp_path) in msg and "free space" in msg, msg
    assert isinstance(info.value, OSError) and f"(at {failing_file})" in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000001"]  # partial one removed
    ckpt = load_checkpoint(tmp_path, TinyLM(), make_optimizer(TinyLM(), TrainConfig()))
    assert ckpt.step == 1 and all(torch.equal(v, good[k]) for k, v in ckpt.model.state_dict().items())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_a_clear_error(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "run", model, opt, step=1)
    (tmp_path / "run").chmod(0o500)
    try:
        with pytest.raises(CheckpointWriteError, match="Permission denied.*pick another checkpoint_dir"):
            save_checkpoint(tmp_path / "run", model, opt, step=2)
    finally:
        (tmp_path / "run").chmod(0o700)
    assert load_checkpoint(tmp_path / "run", TinyLM()).step == 1


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: (p / "state.json").write_bytes(b"\xff\xfe not utf-8"), "state.json is not valid JSON"),
        (lambda p: (p / "state.json").write_text("[1, 2]"), "holds a JSON list, not an object"),
        (lambda p: _edit_state(p, step="three"), "'step' must be an int >= 0, got 'three'"),
        (lambda p: _edit_state(p, model_spec=[1]), "'model_spec' must be null or"),
        (lambda p: (p / "model.safetensors").write_bytes(os.urandom(64)), "model.safetensors is damaged: its SHA-256"),
        (lambda p: (p / "optimizer.pt").write_bytes(b"garbage"), "optimizer.pt is damaged: its SHA-256"),
        (lambda p: ((p / "model.safetensors").write_bytes(os.urandom(64)), _rehash(p, "model.safetensors")),
         "model.safetensors cannot be read"),
        (lambda p: ((p / "optimizer.pt").write_bytes(b"garbage"), _rehash(p, "optimizer.pt")),
         "optimizer.pt is not a file written by torch.save"),
        (lambda p: (p / "state.json").unlink(), "no complete checkpoint"),
    ],
    ids=["state-not-utf8", "state-not-object", "step-not-int", "bad-model-spec", "weights-garbage",
         "optimizer-garbage", "weights-garbage-rehashed", "optimizer-garbage-rehashed", "state-missing"],
)
def test_damaged_checkpoint_files_are_clear_errors(tmp_path, damage, expected):
    model, opt = trained()
    path = save_checkpoint(tmp_path, model, opt, step=1)
    damage(path)
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        load_checkpoint(tmp_path, TinyLM(), make_optimizer(TinyLM(), TrainConfig()))


def _edit_state(path, **changes):
    state = json.loads((path / "state.json").read_text())
    state.update(changes)
    (path / "state.json").write_text(json.dumps(state))


def test_checkpoint_of_another_lmlab_version_names_both_versions(tmp_path):
    import lmlab

    model, _ = trained()
    path = save_checkpoint(tmp_path, model, step=1)
    _edit_state(path, lmlab_version="0.0.1")  # same format: it loads, and says so
    with pytest.warns(UserWarning, match=rf"written by lmlab '0.0.1'; this is lmlab '{re.escape(lmlab.__version__)}'"):
        load_checkpoint(path, TinyLM())
    _edit_state(path, lmlab_version="9.0", format_version=2)  # another format: refused, naming both
    with pytest.raises(CheckpointError, match=r"format version 2 \(written by lmlab 9.0\).*reads version 1"):
        load_checkpoint(path, TinyLM())


def test_spec_that_cannot_be_rebuilt_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path, _gpt(), step=1)
    _edit_state(path, model_spec={"kind": "gpt", "config": {"n_layers": 3}})
    with pytest.raises(CheckpointError, match=r"cannot rebuild the model .*n_layers.*pass it as model="):
        load_checkpoint(path)


# ---------------------------------------------------------------------------------------------------- bit rot, NaN, pointers


def _flip_a_data_byte(file: pathlib.Path) -> None:
    """Flip one byte inside the tensor data (not a header): the kind of damage a disk does."""
    import struct
    import zipfile

    raw = bytearray(file.read_bytes())
    if file.suffix == ".safetensors":
        at = 8 + int.from_bytes(raw[:8], "little") + 5  # the tensors follow the JSON header
    else:  # torch.save's zip archive: the bytes of the largest stored tensor
        with zipfile.ZipFile(file) as zf:
            info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
        at = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    raw[at] ^= 0x10
    file.write_bytes(bytes(raw))


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.pt"])
def test_a_flipped_byte_in_the_tensor_data_is_refused_naming_the_file(tmp_path, name):
    model, opt = trained()
    path = save_checkpoint(tmp_path, model, opt, step=1)
    assert set(json.loads((path / "state.json").read_text())["files"]) == {"model.safetensors", "optimizer.pt"}
    _flip_a_data_byte(path / name)
    fresh = TinyLM()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CheckpointError, match=rf"{re.escape(name)} is damaged: its SHA-256 .* differs from the one "
                                               r"recorded in state.json"):
        load_checkpoint(path, fresh, make_optimizer(fresh, TrainConfig()))
    assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())  # nothing was loaded


def test_a_checkpoint_without_checksums_loads_with_a_warning(tmp_path):
    model, _ = trained()
    path = save_checkpoint(tmp_path, model, step=1)
    state = json.loads((path / "state.json").read_text())
    del state["files"]  # as written before checksums were recorded
    (path / "state.json").write_text(json.dumps(state))
    with pytest.warns(UserWarning, match="records no SHA-256 of its files"):
        load_checkpoint(path, TinyLM())


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    model, _ = trained()
    with torch.no_grad():
        model.head.bias[3] = float("nan")
    path = save_checkpoint(tmp_path, model, step=1)
    fresh = TinyLM()
    with pytest.raises(CheckpointError, match=r"model.safetensors holds NaN or infinite values \(in head.bias\)"):
        load_checkpoint(path, fresh)
    assert torch.isfinite(fresh.head.bias).all()


def _rehash(path: pathlib.Path, name: str) -> None:
    """Record the SHA-256 of a replaced file, as someone who edits a checkpoint by hand would."""
    import hashlib

    state = json.loads((path / "state.json").read_text())
    state["files"][name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / "state.json").write_text(json.dumps(state))


def test_optimizer_moments_of_another_model_size_are_refused_naming_the_file(tmp_path):
    model, opt = trained(n_embd=16)
    path = save_checkpoint(tmp_path, model, opt, step=1)
    _, other_opt = trained(n_embd=8)  # same parameter groups, other shapes
    torch.save(other_opt.state_dict(), path / "optimizer.pt")
    _rehash(path, "optimizer.pt")
    fresh = TinyLM(n_embd=16)
    fresh_opt = make_optimizer(fresh, TrainConfig())
    with pytest.raises(CheckpointError, match=r"optimizer.pt does not fit the optimizer: .*exp_avg .*\[11, 8\].*"
                                               r"parameter .*\[11, 16\]"):
        load_checkpoint(path, fresh, fresh_opt)
    assert fresh_opt.state_dict()["state"] == {}  # nothing was loaded


def test_non_finite_optimizer_moments_are_refused(tmp_path):
    model, opt = trained()
    next(iter(opt.state.values()))["exp_avg_sq"].fill_(float("inf"))
    path = save_checkpoint(tmp_path, model, opt, step=1)
    with pytest.raises(CheckpointError, match=r"optimizer.pt holds NaN or infinite values"):
        load_checkpoint(path, TinyLM(), make_optimizer(TinyLM(), TrainConfig()))


def _two_runs(tmp_path):
    """Run "mine" (step 1) and run "other" (step 5) side by side."""
    model, _ = trained()
    save_checkpoint(tmp_path / "mine", model, step=1)
    save_checkpoint(tmp_path / "other", model, step=5)
    return tmp_path / "mine"


@pytest.mark.parametrize("pointer", [
    "ABSOLUTE", b"../other/step-000005\n", b"step-000005/../../other/step-000005", b"\xff\xfe step-000001",
    b"step-" + b"0" * 5000, b"step-000001\x00", b"  \n", b"../mine/step-000001",
], ids=["absolute", "parent", "sneaky", "not-utf8", "over-long", "nul", "blank", "own-via-parent"])
def test_the_latest_pointer_names_only_a_step_in_its_own_folder(tmp_path, pointer):
    mine = _two_runs(tmp_path)
    if pointer == "ABSOLUTE":
        pointer = str(tmp_path / "other" / "step-000005").encode()
    (mine / "latest").write_bytes(pointer)
    found = latest_checkpoint(mine)  # falls back to the highest step-* folder here
    assert found == mine / "step-000001"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_checkpoint(mine, TinyLM()).step == 1


def test_a_good_latest_pointer_is_followed(tmp_path):
    model, _ = trained()
    save_checkpoint(tmp_path, model, step=1, keep=5)
    save_checkpoint(tmp_path, model, step=2, keep=5)
    (tmp_path / "latest").write_text("step-000001\n")  # e.g. a rewind: the pointer wins over the highest step
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000001"


@pytest.mark.parametrize("vocab_size, says", [
    (10**14, r"vocab_size=100000000000000 is larger than any tensor dimension it saved \(the largest is 64\)"),
    (12, r"lm_head.weight: checkpoint \[11, 16\], model \[12, 16\]"),  # checked on the meta device
])
def test_a_model_spec_that_does_not_fit_the_weights_is_refused_before_anything_is_allocated(tmp_path, monkeypatch,
                                                                                            vocab_size, says):
    path = save_checkpoint(tmp_path, _gpt(), step=1)
    _edit_state(path, model_spec={"kind": "gpt", "config": {**json.loads(
        (path / "state.json").read_text())["model_spec"]["config"], "vocab_size": vocab_size}})
    built = []
    real_empty = torch.empty

    def watching_empty(*args, **kw):  # every parameter of a model being built goes through torch.empty
        out = real_empty(*args, **kw)
        if out.device.type != "meta":
            built.append(out.shape)
        return out

    monkeypatch.setattr(torch, "empty", watching_empty)
    with pytest.raises(CheckpointError, match=r"the model spec in .*state.json does not match model.safetensors "
                                               r"\(nothing was allocated\): " + says):
        load_checkpoint(path)
    assert built == []  # no parameter was allocated


@pytest.mark.parametrize("with_optimizer", [True, False])
def test_old_torch_refuses_the_optimizer_file_but_loads_the_weights(tmp_path, monkeypatch, with_optimizer):
    model, opt = trained()
    path = save_checkpoint(tmp_path, model, opt, step=1)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    fresh = TinyLM()
    if with_optimizer:
        with pytest.raises(CheckpointError, match=r"optimizer.pt.*CVE-2025-32434.*torch 2.6 or later"):
            load_checkpoint(path, fresh, make_optimizer(fresh, TrainConfig()))
    else:
        assert load_checkpoint(path, fresh).step == 1
        assert torch.equal(fresh.head.weight, model.head.weight)
