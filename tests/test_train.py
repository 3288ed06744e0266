"""The training loop: schedule, optimizer groups, accumulation, exact resume, NaN, early stopping, history."""

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ddp_worker import VOCAB, TinyLM, make_batches, make_ids

from lmlab.checkpoint import latest_checkpoint, load_checkpoint
from lmlab.data.batching import ArrayBatches, LMBatches
from lmlab.progress import progress_on
from lmlab.train import (
    History,
    TrainConfig,
    TrainingDivergedError,
    evaluate,
    lr_at,
    make_optimizer,
    resolve_precision,
    train,
)


def quiet(**kw) -> TrainConfig:
    base = dict(lr=1e-2, warmup_steps=2, log_every=1, eval_every=5, eval_batches=2, progress=False, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def tiny(seed: int = 0, dropout: float = 0.0) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM(dropout=dropout)


# ---------------------------------------------------------------------------------------------------- schedule


def test_lr_schedule_warmup_then_cosine_to_min_lr():
    c = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, c) == pytest.approx(1e-4)  # lr * 1 / 10: the first update is not 0
    assert lr_at(4, c) == pytest.approx(5e-4)
    assert lr_at(9, c) == pytest.approx(1e-3)
    assert lr_at(10, c) == pytest.approx(1e-3)
    assert lr_at(60, c) == pytest.approx(5.5e-4)  # half way through the cosine: mean of lr and min_lr
    assert lr_at(110, c) == pytest.approx(1e-4)
    assert lr_at(500, c) == pytest.approx(1e-4)
    lrs = [lr_at(s, c) for s in range(111)]
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))  # warmup rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then decays
    assert lr_at(110, TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110)) == pytest.approx(1e-4)  # default lr/10


def test_history_records_the_scheduled_lr():
    tb, _ = make_batches()
    c = quiet(max_steps=6, warmup_steps=3, lr=1e-2, min_lr=1e-3)
    h = train(tiny(), tb, None, c)
    assert h.steps == [1, 2, 3, 4, 5, 6]
    assert h.lrs == [lr_at(s, c) for s in range(6)]


# ---------------------------------------------------------------------------------------------------- optimizer


def test_weight_decay_only_on_matrices_and_embeddings():
    model = tiny()
    opt = make_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.5), torch.device("cpu"))
    names = {id(p): n for n, p in model.named_parameters()}
    decay = sorted(names[id(p)] for p in opt.param_groups[0]["params"])
    no_decay = sorted(names[id(p)] for p in opt.param_groups[1]["params"])
    assert decay == ["emb.weight", "head.weight"]
    assert no_decay == ["head.bias", "ln.bias", "ln.weight"]
    assert opt.param_groups[0]["weight_decay"] == 0.5 and opt.param_groups[1]["weight_decay"] == 0.0
    # with zero gradients AdamW only decays: matrices shrink by (1 - lr * wd), the rest does not move
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if n in decay else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor)


def test_tied_weights_are_one_parameter_in_the_optimizer():
    model = tiny()
    model.head = nn.Linear(16, VOCAB, bias=False)
    model.head.weight = model.emb.weight  # tie, as GPT ties lm_head to wte
    opt = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    assert sum(len(g["params"]) for g in opt.param_groups) == 3  # emb/head once, ln weight, ln bias


# ---------------------------------------------------------------------------------------------------- accumulation


class Concat:
    """Batch b of this source = batches 2b and 2b + 1 of ``small`` stacked: one batch of 8 = two of 4."""

    def __init__(self, small):
        self.small = small

    def get(self, step):
        (x0, y0), (x1, y1) = self.small.get(2 * step), self.small.get(2 * step + 1)
        return torch.cat([x0, x1]), torch.cat([y0, y1])


def test_grad_accumulation_matches_one_big_batch():
    small, _ = make_batches(batch_size=4)
    c = quiet(max_steps=8, grad_clip=1.0)
    a, b = tiny(), tiny()
    ha = train(a, small, None, replace(c, grad_accum=2))
    hb = train(b, Concat(small), None, c)
    assert ha.tokens_seen == hb.tokens_seen == 8 * 8 * 8
    for la, lb in zip(ha.train_losses, hb.train_losses):
        assert la == pytest.approx(lb, abs=1e-5)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-5, rtol=0)
    # and it is not trivially true: without accumulation (4 rows per step) the run differs
    hc = train(tiny(), small, None, c)
    assert max(abs(x - y) for x, y in zip(hc.train_losses, hb.train_losses)) > 1e-3


# ---------------------------------------------------------------------------------------------------- resume


def _same_history(a: History, b: History) -> None:
    for name in ("steps", "train_losses", "lrs", "grad_norms", "tokens", "val_steps", "val_losses", "tokens_seen"):
        assert getattr(a, name) == getattr(b, name), name  # exact: bit-identical floats


def test_resume_from_a_mid_run_checkpoint_is_bit_identical(tmp_path):
    tb, vb = make_batches()
    # log every 3 and checkpoint every 4: the checkpoint at 4 falls between logs, so the pending loss must survive
    c = quiet(max_steps=12, log_every=3, eval_every=5, checkpoint_dir=str(tmp_path), checkpoint_every=4,
              keep_checkpoints=10)
    straight = tiny(dropout=0.2)
    h_straight = train(straight, tb, vb, c)
    assert [p.name for p in sorted(tmp_path.glob("step-*"))] == ["step-000004", "step-000008", "step-000012"]

    c2 = replace(c, checkpoint_dir=str(tmp_path / "again"))
    resumed = tiny(seed=123, dropout=0.2)  # different initial weights: everything must come from the checkpoint
    h_resumed = train(resumed, tb, vb, c2, resume=tmp_path / "step-000004")
    _same_history(h_straight, h_resumed)
    for (n, p), q in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), n


def test_stop_then_resume_true_is_bit_identical_with_dropout(tmp_path):
    tb, vb = make_batches()
    c = quiet(max_steps=10, eval_every=4, checkpoint_dir=str(tmp_path / "run"))
    h_straight = train(tiny(dropout=0.3), tb, vb, replace(c, checkpoint_dir=None))

    h_first = train(tiny(dropout=0.3), tb, vb, c, callback=lambda step, h: step == 6)  # "killed" after step 6
    assert h_first.stopped_early and h_first.stop_reason == "callback" and h_first.steps[-1] == 6
    assert latest_checkpoint(tmp_path / "run").name == "step-000006"
    h_resumed = train(tiny(seed=7, dropout=0.3), tb, vb, c, resume=True)
    assert not h_resumed.stopped_early
    # the straight run has no eval at 6 (the stop evaluates), otherwise the histories agree exactly
    assert h_resumed.train_losses == h_straight.train_losses
    assert h_resumed.grad_norms == h_straight.grad_norms
    assert dict(zip(h_straight.val_steps, h_straight.val_losses)).items() <= dict(
        zip(h_resumed.val_steps, h_resumed.val_losses)).items()
    # dropout really matters here: without restoring the generator state the losses would differ
    h_other_seed = train(tiny(dropout=0.3), tb, vb, replace(c, checkpoint_dir=None, seed=1))
    assert h_other_seed.train_losses != h_straight.train_losses


def test_resume_true_without_checkpoint_starts_fresh_and_bad_path_is_an_error(tmp_path):
    tb, _ = make_batches()
    h = train(tiny(), tb, None, quiet(max_steps=2, checkpoint_dir=str(tmp_path)), resume=True)
    assert h.steps == [1, 2] and latest_checkpoint(tmp_path).name == "step-000002"
    with pytest.raises(ValueError, match="no such checkpoint"):
        train(tiny(), tb, None, quiet(max_steps=2), resume=tmp_path / "nope")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(tiny(), tb, None, quiet(max_steps=2), resume=True)


# ---------------------------------------------------------------------------------------------------- NaN


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, x, targets=None):
        pred = self.lin(x).squeeze(-1)  # (B,)
        return pred, None if targets is None else F.mse_loss(pred, targets)


class PoisonAt:
    """Float batches; batch ``bad_step`` contains a NaN input (as corrupt data would)."""

    def __init__(self, bad_step):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=g)
        self.src, self.bad_step = ArrayBatches(x, x.sum(1), batch_size=8), bad_step

    def get(self, step):
        x, y = self.src.get(step)
        if step == self.bad_step:
            x = x.clone()
            x[0, 0] = float("nan")
        return x, y


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = Regressor()
    c = quiet(max_steps=20, log_every=4, checkpoint_dir=str(tmp_path), checkpoint_every=1, lr=1e-2)
    with pytest.raises(TrainingDivergedError, match=r"at step 7 \(learning rate") as info:
        train(model, PoisonAt(bad_step=6), None, c)  # update index 6 = the 7th update
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.step == 7 and err.lr == pytest.approx(lr_at(6, c))
    assert "lower learning rate" in str(err) and "fp32" in str(err)
    assert err.history.steps == [4]  # caught before the log at step 8
    # the checkpoint at step 7 was never written: the latest is the last good one, and it is finite
    assert latest_checkpoint(tmp_path).name == "step-000006"
    ckpt = load_checkpoint(tmp_path, Regressor())
    assert all(torch.isfinite(p).all() for p in ckpt.model.parameters())


# ---------------------------------------------------------------------------------------------------- stopping


def test_early_stopping_triggers_when_validation_stops_improving():
    tb, _ = make_batches()
    # validation data follow another rule: once the model fits the training rule, validation gets worse
    g = torch.Generator().manual_seed(1)
    other = torch.randint(VOCAB, (400,), generator=g)
    for i in range(1, 400):
        other[i] = (5 * other[i - 1] + 2) % VOCAB
    vb = LMBatches(other, 8, 8, random=False)
    c = quiet(max_steps=200, lr=3e-2, eval_every=2, early_stopping_patience=3, log_every=2)
    h = train(tiny(), tb, vb, c)
    assert h.stopped_early and h.stop_reason == "early_stopping"
    assert h.steps[-1] < 200
    best = h.val_losses.index(min(h.val_losses))
    assert len(h.val_losses) - 1 - best == 3  # stopped after exactly `patience` evaluations without improvement
    assert h.best_val_loss == min(h.val_losses) and h.best_val_step == h.val_steps[best]


def test_callback_sees_every_logged_step_and_can_stop():
    tb, _ = make_batches()
    seen = []

    def cb(step, history):
        seen.append((step, history.final_train_loss))
        return step >= 6

    h = train(tiny(), tb, None, quiet(max_steps=50, log_every=2), callback=cb)
    assert [s for s, _ in seen] == [2, 4, 6]
    assert all(math.isfinite(l) for _, l in seen)
    assert h.stopped_early and h.stop_reason == "callback" and h.steps[-1] == 6


# -------------------------------------------------------------------------------------- history, eval, config


def test_training_reduces_the_loss_and_history_round_trips():
    tb, vb = make_batches()
    h = train(tiny(), tb, vb, quiet(max_steps=40, log_every=10, eval_every=20))
    assert h.steps == [10, 20, 30, 40] and h.val_steps == [20, 40]
    assert h.train_losses[-1] < h.train_losses[0] - 0.5
    assert h.final_train_loss == h.train_losses[-1] and h.final_val_loss == h.val_losses[-1]
    assert h.tokens == [s * 8 * 8 for s in h.steps] and h.tokens_seen == 40 * 64
    assert h.wall_time > 0 and h.times == sorted(h.times)
    back = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back == h
    assert History().best_val_loss is None and History().final_train_loss is None


def test_history_plot_is_labelled():
    import matplotlib

    matplotlib.use("Agg")
    h = History(steps=[1, 2, 3], train_losses=[3.0, 2.0, 1.5], val_steps=[3], val_losses=[1.7])
    ax = h.plot()
    assert ax.get_xlabel() == "step" and "loss" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]


def test_evaluate_is_deterministic_without_dropout_and_restores_train_mode():
    _, vb = make_batches()
    model = tiny(dropout=0.5)
    model.train()
    a, b = evaluate(model, vb, 3), evaluate(model, vb, 3)
    assert a == b and model.training
    model.eval()
    evaluate(model, vb, 1)
    assert not model.training
    assert abs(a - math.log(VOCAB)) < 1.0  # an untrained model is close to uniform


def test_config_and_input_errors_say_what_to_do():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="grad_accum must be a positive int"):
        TrainConfig(grad_accum=0)
    with pytest.raises(ValueError, match="set a checkpoint_dir"):
        TrainConfig(checkpoint_every=10)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        resolve_precision("fp16", torch.device("cpu"))
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    tb, _ = make_batches()
    with pytest.raises(ValueError, match="needs val_batches"):
        train(tiny(), tb, None, quiet(max_steps=2, early_stopping_patience=2))
    with pytest.raises(TypeError, match=r"get\(step\)"):
        train(tiny(), make_ids(), None, quiet(max_steps=2))


def test_progress_follows_the_environment(monkeypatch):
    monkeypatch.setenv("LMLAB_PROGRESS", "0")
    assert progress_on(None) is False
    assert progress_on(True) is True and progress_on(False) is False


def test_bf16_autocast_on_cpu_trains():
    tb, _ = make_batches()
    h = train(tiny(), tb, None, quiet(max_steps=4, precision="bf16"))
    assert all(math.isfinite(l) for l in h.train_losses)


# ---------------------------------------------------------------------------------------------------- tiny GPT


def _tiny_gpt(seed=0, dropout=0.1):
    from lmlab.models.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=dropout))


def test_tiny_gpt_resume_is_bit_identical(tmp_path):
    pytest.importorskip("lmlab.models.gpt")
    tb, vb = make_batches()
    c = quiet(max_steps=6, eval_every=3, checkpoint_dir=str(tmp_path), checkpoint_every=3, keep_checkpoints=5)
    a = _tiny_gpt()
    ha = train(a, tb, vb, c)
    assert ha.train_losses[-1] < ha.train_losses[0]
    b = _tiny_gpt(seed=9)
    hb = train(b, tb, vb, replace(c, checkpoint_dir=str(tmp_path / "b")),
               resume=tmp_path / "step-000003")
    _same_history(ha, hb)
    assert b.lm_head.weight is b.transformer.wte.weight  # loading kept the tie
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_lstm_trains_and_is_rebuilt_from_its_checkpoint(tmp_path):
    from lmlab.models import LSTMLM, LSTMConfig

    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig(vocab_size=VOCAB, n_embd=8, n_hidden=16, dropout=0.1))
    tb, vb = make_batches()
    h = train(model, tb, vb, quiet(max_steps=10, log_every=5, checkpoint_dir=str(tmp_path)))
    assert h.train_losses[-1] < h.train_losses[0]
    ckpt = load_checkpoint(tmp_path)  # no model given: rebuilt from the model spec in state.json
    assert isinstance(ckpt.model, LSTMLM) and ckpt.step == 10
    assert evaluate(ckpt.model, vb, 2) == evaluate(model, vb, 2)


def test_resume_with_other_settings_names_them_and_a_bare_checkpoint_is_refused(tmp_path):
    from lmlab.checkpoint import CheckpointError, save_checkpoint

    tb, _ = make_batches()
    c = quiet(max_steps=4, checkpoint_dir=str(tmp_path / "run"))
    train(tiny(), tb, None, replace(c, max_steps=2))
    with pytest.warns(UserWarning, match=r"other training settings .*lr: checkpoint 0.01, now 0.02"):
        train(tiny(), tb, None, replace(c, lr=2e-2), resume=True)
    save_checkpoint(tmp_path / "bare", tiny(), step=1)  # weights only: no history, no generator states
    model = tiny(seed=5)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(CheckpointError, match="not written by lmlab.train.*load_checkpoint"):
        train(model, tb, None, replace(c, checkpoint_dir=str(tmp_path / "new")), resume=tmp_path / "bare")
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))  # nothing was loaded


# ---------------------------------------------------------------------------------------------------- run folders


def _trained_run(tmp_path, steps=2, **kw):
    """A run of `steps` updates with checkpoints in tmp_path/run; returns (batches, config for 4 steps)."""
    tb, _ = make_batches()
    c = quiet(max_steps=4, checkpoint_dir=str(tmp_path / "run"))
    train(tiny(), tb, None, replace(c, max_steps=steps), **kw)
    return tb, c


def test_training_into_a_folder_that_holds_a_run_refuses_unless_overwrite(tmp_path):
    import os

    tb, _ = make_batches()
    run = tmp_path / "run"
    c = quiet(max_steps=3, checkpoint_dir=str(run))
    model = tiny()
    train(model, tb, None, c)
    weights = [p.detach().clone() for p in model.parameters()]
    names = sorted(os.listdir(run))
    with pytest.raises(FileExistsError, match=r"already holds a run \(latest checkpoint step-000003\).*resume=True"
                                              r".*overwrite=True"):
        train(model, tb, None, c)  # a notebook cell run a second time
    assert sorted(os.listdir(run)) == names  # nothing deleted
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), weights))  # nor trained further
    assert all(torch.equal(p, q) for p, q in zip(load_checkpoint(run, tiny(seed=9)).model.parameters(), weights))
    train(tiny(), tb, None, replace(c, checkpoint_dir=str(tmp_path / "other")))
    with pytest.raises(FileExistsError, match="already holds a run"):  # continuing another run's checkpoint there
        train(tiny(), tb, None, c, resume=tmp_path / "other")
    with pytest.raises(ValueError, match="overwrite=True starts a new run; it cannot be combined with resume"):
        train(tiny(), tb, None, c, resume=True, overwrite=True)

    fresh = tiny(seed=4)
    h = train(fresh, tb, None, replace(c, max_steps=2), overwrite=True)
    assert h.steps[-1] == 2 and sorted(os.listdir(run)) == ["latest", "step-000002"]  # the old run is gone
    assert all(torch.equal(p, q) for p, q in zip(load_checkpoint(run, tiny()).model.parameters(), fresh.parameters()))


def test_resuming_from_an_earlier_checkpoint_of_the_same_folder_is_allowed(tmp_path):
    tb, _ = make_batches()
    c = quiet(max_steps=4, checkpoint_dir=str(tmp_path), checkpoint_every=2, keep_checkpoints=5)
    train(tiny(), tb, None, c)
    h = train(tiny(), tb, None, c, resume=tmp_path / "step-000002")  # a rewind: the user asked for it
    assert h.steps[-1] == 4


@pytest.mark.parametrize("field, value", [
    ("rng_states", []),
    ("rng_states", [{"torch": "not base64!"}]),
    ("rng_states", [{"python": [3, [1, 2], None]}]),
    ("rng_states", [5]),
    ("pending_loss", [1.0]),
    ("pending_loss", ["a", 1]),
    ("pending_loss", [1.0, -3]),
    ("history", []),
    ("history", {"steps": 5}),
    ("history", {"steps": [1, 2], "train_losses": [1.0]}),
    ("history", {"steps": [1, 9], "train_losses": [1.0, 2.0], "lrs": [0.1, 0.1], "grad_norms": [1, 1],
                 "tokens": [1, 2], "times": [0.1, 0.2]}),
    ("history", {"tokens_seen": "many"}),
    ("grad_scaler", "x"),
    ("grad_scaler", {"scale": "big"}),
    ("world_size", 0),
    ("train_config", [1]),
    ("fingerprints", "x"),
    ("fingerprints", {"batch_shape": "8x8"}),
], ids=lambda v: v if isinstance(v, str) else json.dumps(v)[:30])
def test_every_malformed_training_field_of_state_json_is_named(tmp_path, field, value):
    from lmlab.checkpoint import CheckpointError

    tb, c = _trained_run(tmp_path)
    path = latest_checkpoint(tmp_path / "run")
    state = json.loads((path / "state.json").read_text())
    state[field] = value
    (path / "state.json").write_text(json.dumps(state))
    model = tiny(seed=5)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(CheckpointError, match=rf"state.json: '{field}' is malformed \(.+\); the checkpoint is "
                                              "damaged"):
        train(model, tb, None, c, resume=True)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))  # nothing was loaded


def test_resuming_with_other_data_or_batch_shape_warns_and_strict_refuses(tmp_path):
    import shutil
    import warnings

    _, c = _trained_run(tmp_path)
    c = replace(c, max_steps=2)  # the same settings: only the data differs
    copy = replace(c, checkpoint_dir=str(tmp_path / "copy"))
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same data: no warning
        train(tiny(), make_batches()[0], None, copy, resume=True)
    for batches, says in [(make_batches(seed=1)[0], r"data: batch 0 differs from the one the checkpoint saw"),
                          (make_batches(batch_size=16)[0], r"batch shape: checkpoint \[8, 8\], now \[16, 8\]")]:
        with pytest.raises(ValueError, match=rf"strict=True.*{says}"):
            train(tiny(), batches, None, c, resume=True, strict=True)
        with pytest.warns(UserWarning, match=says):
            train(tiny(), batches, None, copy, resume=True)


def test_resuming_with_another_tokenizer_warns_and_strict_refuses(tmp_path):
    from lmlab.tokenizers import CharTokenizer

    tok_a, tok_b = CharTokenizer(list("abcdefghijk")), CharTokenizer(list("abcdefghijz"))
    tb, c = _trained_run(tmp_path, tokenizer=tok_a)
    state = json.loads((latest_checkpoint(tmp_path / "run") / "state.json").read_text())
    assert state["fingerprints"]["tokenizer"]["vocab_size"] == 11
    with pytest.raises(ValueError, match=r"strict=True.*tokenizer: .*differs"):
        train(tiny(), tb, None, c, resume=True, strict=True, tokenizer=tok_b)
    with pytest.warns(UserWarning, match=r"tokenizer: .*differs"):
        train(tiny(), tb, None, c, resume=True, tokenizer=tok_b)


def test_strict_resume_refuses_other_settings_too(tmp_path):
    tb, c = _trained_run(tmp_path)
    with pytest.raises(ValueError, match=r"strict=True.*lr: checkpoint 0.01, now 0.02"):
        train(tiny(), tb, None, replace(c, lr=2e-2), resume=True, strict=True)
    assert latest_checkpoint(tmp_path / "run").name == "step-000002"


LOCK_HOLDER = r"""
import pathlib, sys, time
from ddp_worker import TinyLM, make_batches
from lmlab.train import TrainConfig, train

run, marker, release = map(pathlib.Path, sys.argv[1:4])

def hold(step, history):
    marker.write_text("training")
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)

train(TinyLM(), make_batches()[0], None, TrainConfig(max_steps=2, log_every=1, progress=False, device="cpu",
      checkpoint_dir=str(run)), resume=True, callback=hold)
"""


def _holder_config(tmp_path):
    """The settings of LOCK_HOLDER's run."""
    return TrainConfig(max_steps=2, log_every=1, progress=False, device="cpu", checkpoint_dir=str(tmp_path / "run"))


def _start_holder(tmp_path):
    """A real training process that stops inside its first step's callback until `release` exists."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(here.parent), str(here)]))
    marker, release = tmp_path / "marker", tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path / "run"), str(marker), str(release)],
                            env=env)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the first trainer did not start"
        time.sleep(0.05)
    return proc, release


def test_a_second_trainer_in_the_same_folder_is_stopped_with_a_clear_message(tmp_path):
    from lmlab.checkpoint import RunLockedError

    proc, release = _start_holder(tmp_path)
    try:
        with pytest.raises(RunLockedError, match=rf"another training process \(pid {proc.pid}\) is using "
                                                 rf".*run; wait for it to finish"):
            train(tiny(), make_batches()[0], None, _holder_config(tmp_path), resume=True)
    finally:
        release.touch()
        assert proc.wait(timeout=120) == 0  # the first trainer was not disturbed
    assert latest_checkpoint(tmp_path / "run").name == "step-000002" and not (tmp_path / "run" / ".lock").exists()
    h = train(tiny(), make_batches()[0], None, _holder_config(tmp_path), resume=True)  # free again
    assert h.steps[-1] == 2


def test_the_stale_lock_of_a_killed_trainer_is_taken_over(tmp_path):
    proc, _ = _start_holder(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert (tmp_path / "run" / ".lock").is_file()  # what a killed trainer leaves behind
    h = train(tiny(), make_batches()[0], None, _holder_config(tmp_path), resume=True)
    assert h.steps[-1] == 2 and not (tmp_path / "run" / ".lock").exists()
