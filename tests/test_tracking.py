"""lmlab.tracking: the weights' hash, gradient norms, and TensorBoard logging from the training loop (real event
files in tmp_path, read back with TensorBoard's EventAccumulator)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn

from lmlab.data import LMBatches
from lmlab.models import GPT, GPTConfig
from lmlab.tracking import TensorBoardCallback, grad_norms, params_hash, read_scalars
from lmlab.train import TrainConfig, train


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8))


def data(n: int = 2000) -> torch.Tensor:
    return torch.randint(0, 7, (n,), generator=torch.Generator().manual_seed(0))


def f32(values):
    return torch.tensor(values, dtype=torch.float32).tolist()


def test_params_hash_sees_every_bit_and_ignores_registration_order():
    model = tiny_gpt()
    h = params_hash(model)
    assert len(h) == 64 and h == params_hash(copy.deepcopy(model))
    other = copy.deepcopy(model)
    with torch.no_grad():
        w = other.transformer.h[0].mlp.c_fc.weight
        w.view(-1).view(torch.int32)[5] ^= 1  # flip the lowest bit of one float
    assert params_hash(other) != h

    class AB(nn.Module):
        def __init__(self, first):
            super().__init__()
            names = ["a", "b"] if first == "a" else ["b", "a"]
            for name in names:
                self.add_module(name, nn.Linear(2, 2))

    x, y = AB("a"), AB("b")
    y.load_state_dict(x.state_dict())
    assert params_hash(x) == params_hash(y)
    with pytest.raises(TypeError, match="nn.Module"):
        params_hash({"w": torch.zeros(2)})


def test_grad_norms_skips_missing_and_matches_clipping_total():
    model = tiny_gpt()
    assert grad_norms(model) == {}  # before backward
    x = data()[:16].view(2, 8)
    model(x, x)[1].backward()
    norms = grad_norms(model)
    assert list(norms) == [n for n, _ in model.named_parameters()]
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")).item()
    assert math.isclose(math.sqrt(sum(v * v for v in norms.values())), total, rel_tol=1e-5)
    lin = nn.Linear(2, 1)
    lin(torch.ones(1, 2)).sum().backward()
    assert grad_norms(lin) == pytest.approx({"weight": math.sqrt(2), "bias": 1.0})


def _run(callback=None, steps=12, **kw):
    model = tiny_gpt()
    ids = data()
    config = TrainConfig(max_steps=steps, lr=1e-2, warmup_steps=2, log_every=2, eval_every=5, eval_batches=2,
                         progress=False, device="cpu", **kw)
    return train(model, LMBatches(ids, 8, 4), LMBatches(ids, 8, 4, random=False), config, callback=callback)


def test_callback_logs_exactly_the_history(tmp_path):
    with TensorBoardCallback(tmp_path / "run") as tb:
        history = _run(tb)
        tb.close(history)
    tb.close(history)  # closing twice is harmless
    logged = read_scalars(tmp_path / "run")
    assert sorted(logged) == ["train/grad_norm", "train/loss", "train/lr", "val/loss"]
    assert logged["train/loss"] == (history.steps, f32(history.train_losses))
    assert logged["train/lr"] == (history.steps, f32(history.lrs))
    assert logged["train/grad_norm"] == (history.steps, f32(history.grad_norms))
    assert logged["val/loss"] == (history.val_steps, f32(history.val_losses))
    assert history.val_steps[-1] == 12  # the last evaluation came after the last callback: close() wrote it
    with pytest.raises(ValueError, match="closed"):
        tb(12, history)


def test_resumed_run_logs_each_step_once(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    tb1 = TensorBoardCallback(tmp_path / "run")
    first = _run(lambda step, h: tb1(step, h) or step >= 6, checkpoint_dir=ckpt)
    tb1.close(first)
    tb2 = TensorBoardCallback(tmp_path / "run", after_step=first.steps[-1])
    model = tiny_gpt(1)
    ids = data()
    config = TrainConfig(max_steps=12, lr=1e-2, warmup_steps=2, log_every=2, eval_every=5, eval_batches=2,
                         progress=False, device="cpu", checkpoint_dir=ckpt)
    history = train(model, LMBatches(ids, 8, 4), LMBatches(ids, 8, 4, random=False), config, resume=True, callback=tb2)
    tb2.close(history)
    steps, values = read_scalars(tmp_path / "run")["train/loss"]
    assert steps == history.steps == [2, 4, 6, 8, 10, 12]
    assert values == f32(history.train_losses)


def test_read_scalars_bad_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        read_scalars(tmp_path / "missing")
