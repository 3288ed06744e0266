"""Reproducibility: bit-identical training runs, generator states, hashes, run records."""

import json
import random
import re

import numpy as np
import pytest
import torch
from ddp_worker import TinyLM, make_batches

from lmlab.repro import (
    RunRecord,
    compare,
    get_rng_state,
    git_commit,
    seed_everything,
    set_rng_state,
    setup,
    sha256_of,
)
from lmlab.train import TrainConfig, train


@pytest.fixture(autouse=True)
def _restore_global_switches():
    """seed_everything flips process-wide switches; give other test files the defaults back."""
    threads = torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, False
    torch.set_num_threads(threads)


def run(seed: int) -> list[float]:
    """Seed, build a model with dropout, train it: the losses at every step."""
    seed_everything(seed, threads=1)
    model = TinyLM(dropout=0.2)
    tb, vb = make_batches()
    config = TrainConfig(max_steps=15, lr=1e-2, warmup_steps=3, log_every=1, eval_every=5, eval_batches=2,
                         seed=seed, progress=False, device="cpu")
    h = train(model, tb, vb, config)
    return h.train_losses + h.val_losses


def test_same_seed_and_threads_give_bit_identical_losses():
    a, b = run(0), run(0)
    assert len(a) == 18
    assert a == b  # every loss exactly equal, not approximately
    c = run(1)
    assert all(x != y for x, y in zip(a, c))


def test_seed_everything_seeds_all_generators_and_reports_what_it_set():
    info = seed_everything(3, threads=1)
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    assert info["seed"] == 3 and info["threads"] == 1 and info["deterministic"] is True
    assert info["cudnn_benchmark"] is False and torch.are_deterministic_algorithms_enabled()
    seed_everything(3, threads=1)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws
    with pytest.raises(ValueError, match="threads must be a positive int"):
        seed_everything(0, threads=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything("0")


def test_setup_returns_a_device():
    device = setup(seed=0, threads=1, device="cpu")
    assert device == torch.device("cpu") and str(device) == "cpu"


def test_rng_state_round_trips_through_json():
    seed_everything(5)
    state = json.loads(json.dumps(get_rng_state()))
    first = (random.random(), np.random.rand(), torch.rand(3).tolist())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(3).tolist()) == first


def test_sha256_of_bytes_text_files_and_tensors(tmp_path):
    assert sha256_of(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    f = tmp_path / "data.txt"
    f.write_text("abc")
    assert sha256_of("abc") == sha256_of(f) == sha256_of(b"abc")  # a str is text, a Path is a file
    t = torch.tensor([1, 2, 3])
    assert sha256_of(t) == sha256_of(t.clone())
    assert sha256_of(t) != sha256_of(t.int())  # the dtype is part of the data
    assert sha256_of(torch.tensor([1.0], dtype=torch.bfloat16))  # any dtype hashes
    with pytest.raises(ValueError, match="not a file"):
        sha256_of(tmp_path / "missing.txt")
    with pytest.raises(TypeError):
        sha256_of(12)


def test_run_record_round_trip_and_compare(tmp_path):
    a = RunRecord.start(config={"lr": 1e-3, "model": {"n_layer": 2}}, seed=0, data=b"tokens", device="cpu")
    assert a.torch_version == torch.__version__ and a.threads == torch.get_num_threads() and a.device == "cpu"
    assert a.data_sha256 == sha256_of(b"tokens") and a.start_time and a.end_time is None
    a.finish({"val_loss": 1.25})
    path = a.save(tmp_path / "run.json")
    back = RunRecord.load(path)
    assert back == a

    b = RunRecord.start(config={"lr": 2e-3, "model": {"n_layer": 2}}, seed=1, data=b"tokens", device="cpu")
    b.finish({"val_loss": 1.5})
    assert compare(a, b) == {"seed": (0, 1), "config.lr": (1e-3, 2e-3), "metrics.val_loss": (1.25, 1.5)}
    assert compare(a, back) == {}
    b.start_time = "2000-01-01T00:00:00.000+00:00"
    assert compare(a, b, ignore=())["start_time"] == (a.start_time, b.start_time)


def test_git_commit_never_fails(tmp_path):
    assert git_commit(tmp_path) is None  # not a repository
    assert git_commit(tmp_path / "missing") is None


def test_run_record_from_another_version_names_the_differences(tmp_path):
    import lmlab

    path = RunRecord.start(config={"lr": 1e-3}, seed=0, device="cpu").save(tmp_path / "run.json")
    data = json.loads(path.read_text())
    data["lmlab_version"] = "0.0.1"
    data["optimizer_name"] = "adamw"  # a field from another version
    del data["git_commit"]  # and one it did not have
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning) as record:
        back = RunRecord.load(path)
    msg = str(record[0].message)
    assert f"written by lmlab 0.0.1; this is lmlab {lmlab.__version__}" in msg
    assert "does not know (kept in .extra): ['optimizer_name']" in msg and "lacks (left at their defaults): ['git_commit']" in msg
    assert back.extra == {"optimizer_name": "adamw"} and back.config == {"lr": 1e-3}
    for text, expected in [("{not json", "not valid JSON"), ("[1]", "expected a JSON object"),
                           ('{"config": [1]}', "config (a list, expected an object)")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(expected)):
            RunRecord.load(path)
