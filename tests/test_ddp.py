"""Distributed data parallel: 2 real torchrun processes (gloo, CPU) compute what 1 process computes."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "ddp_worker.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_worker(out: pathlib.Path, nproc: int, *extra: str) -> tuple[dict, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "LMLAB_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           f"--master_port={free_port()}", str(WORKER), str(out), *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    from safetensors.torch import load_file

    return load_file(str(out) + ".safetensors"), json.loads(pathlib.Path(str(out) + ".json").read_text())


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    params2, result2 = run_worker(tmp_path / "two", 2, str(tmp_path / "ckpt"))
    params1, result1 = run_worker(tmp_path / "one", nproc=1)
    assert result2["world_size"] == 2 and result1["world_size"] == 1
    rows = [json.loads((tmp_path / f"two.rank{r}.json").read_text())["rows_seen"] for r in (0, 1)]
    assert rows == [20 * 4, 20 * 4]  # each process took half of every batch of 8
    assert json.loads((tmp_path / "one.rank0.json").read_text())["rows_seen"] == 20 * 8
    h1, h2 = result1["history"], result2["history"]
    assert h1["steps"] == h2["steps"] == [5, 10, 15, 20]
    assert h1["tokens_seen"] == h2["tokens_seen"] == 20 * 8 * 8  # global tokens, both processes together
    assert h2["train_losses"][-1] < h2["train_losses"][0]  # it trained
    for a, b in zip(h1["train_losses"] + h1["val_losses"], h2["train_losses"] + h2["val_losses"]):
        assert a == pytest.approx(b, abs=1e-5)
    assert params1.keys() == params2.keys()
    for name in params1:
        torch.testing.assert_close(params1[name], params2[name], atol=1e-5, rtol=0, msg=name)
    # only rank 0 wrote checkpoints, with both processes' generator states; they load into one process
    from ddp_worker import TinyLM

    from lmlab.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "ckpt", TinyLM())
    assert ckpt.step == 20 and len(ckpt.state["rng_states"]) == 2 and ckpt.state["world_size"] == 2
    for name, p in ckpt.model.state_dict().items():
        assert torch.equal(p, params2[name])
