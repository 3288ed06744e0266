"""The settings of an ``lmlab train`` run, typed: a preset per model and machine (``PRESETS``), changed by
command-line options, recorded in the run folder's ``run.json`` and rebuilt from it by ``--resume``.

``run.json``'s ``"config"`` holds the fields of a ``RunConfig``, flat: the model's settings (``GPTSettings``
or ``LSTMSettings``) and the run's own (corpus, tokenizer, seed...). ``RunConfig.from_dict`` rebuilds the
dataclasses from it, so a record from another lmlab version that lacks a setting, or has one this version
does not know, is found before anything runs. ``--resume`` may change only ``RESUME_OPTIONS`` (a longer run);
``RunConfig.resumed_with`` names any other setting given with another value.

The command-line values are checked as they are parsed (``positive_int``, ``positive_float``...): a number
that is not finite, not positive or out of range is refused naming the option.

The CPU GPT was chosen by time to validation loss 1.88 on a 2-core CPU (benchmarks/time_to_loss.py): at the
same 1000 steps of 32 x 64 characters, 2 layers at lr 5e-3 reach 1.88 by about step 650 and end near 1.77,
while 4 layers at lr 2e-3 (nanoGPT's CPU recipe, bigger batch) need about 850 steps at twice the cost per step.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # torch is imported when a model is built, so that `lmlab --help` starts fast
    import torch.nn as nn

    from lmlab.trainconfig import TrainConfig

__all__ = ["GPTSettings", "LSTMSettings", "PRESETS", "OPTIONS", "DEFAULTS", "RESUME_OPTIONS", "RunConfig",
           "positive_int", "non_negative_int", "positive_float", "fraction", "probability", "seed_value"]


# ---------------------------------------------------------------------------------------------------- values


def _number(kind: type, ok: Callable[[Any], bool], must: str) -> Callable[[str], Any]:
    """An argparse ``type=``: ``kind(text)`` if that works and ``ok`` holds, else an error saying it ``must`` be."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {must}, got {text!r}")
        return value

    parse.__name__ = must  # what argparse would show
    return parse


positive_int = _number(int, lambda v: v >= 1, "an int >= 1")
non_negative_int = _number(int, lambda v: v >= 0, "an int >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
fraction = _number(float, lambda v: 0 <= v < 1, "a number >= 0 and < 1")  # e.g. dropout
probability = _number(float, lambda v: 0 < v <= 1, "a number > 0 and <= 1")  # e.g. top_p
seed_value = _number(int, lambda v: 0 <= v < 2**32, "an int >= 0 and < 2**32")  # numpy takes seeds below 2**32


@dataclass
class GPTSettings:
    """``lmlab train --model gpt``: the GPT's sizes and the training settings."""

    block_size: int  # context length T
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float
    batch_size: int  # rows B of every batch
    max_steps: int  # optimizer updates
    lr: float  # peak learning rate
    warmup_steps: int
    eval_every: int  # steps between validation losses (and checkpoints, unless --checkpoint-every)
    eval_batches: int  # validation batches per evaluation

    def build_model(self, vocab_size: int) -> nn.Module:
        from lmlab.models import GPT, GPTConfig

        return GPT(GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                             n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout))


@dataclass
class LSTMSettings:
    """``lmlab train --model lstm``: the LSTM's sizes and the training settings."""

    block_size: int  # context length T of the training windows (the LSTM itself has no limit)
    n_layer: int
    n_embd: int
    n_hidden: int  # LSTM state size
    dropout: float
    batch_size: int
    max_steps: int
    lr: float
    warmup_steps: int
    eval_every: int
    eval_batches: int

    def build_model(self, vocab_size: int) -> nn.Module:
        from lmlab.models import LSTMLM, LSTMConfig

        return LSTMLM(LSTMConfig(vocab_size=vocab_size, n_embd=self.n_embd, n_hidden=self.n_hidden,
                                 n_layer=self.n_layer, dropout=self.dropout))


# Sizes that finish in a few minutes on a laptop CPU, and larger ones for a GPU.
PRESETS: dict[str, dict[str, GPTSettings | LSTMSettings]] = {
    "gpt": {
        "cpu": GPTSettings(block_size=64, n_layer=2, n_head=4, n_embd=128, dropout=0.0, batch_size=32,
                           max_steps=1000, lr=5e-3, warmup_steps=100, eval_every=100, eval_batches=20),
        "gpu": GPTSettings(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, batch_size=64,
                           max_steps=5000, lr=1e-3, warmup_steps=200, eval_every=500, eval_batches=50),
    },
    "lstm": {
        "cpu": LSTMSettings(block_size=64, n_layer=1, n_embd=64, n_hidden=256, dropout=0.0, batch_size=32,
                            max_steps=2000, lr=3e-3, warmup_steps=50, eval_every=250, eval_batches=20),
        "gpu": LSTMSettings(block_size=256, n_layer=2, n_embd=256, n_hidden=1024, dropout=0.2, batch_size=64,
                            max_steps=5000, lr=2e-3, warmup_steps=200, eval_every=500, eval_batches=50),
    },
}

# the settings the command line may change (``--block-size 128``...), with the checks of their values
OPTIONS: dict[str, Callable[[str], Any]] = {
    "block_size": positive_int, "n_layer": positive_int, "n_head": positive_int, "n_embd": positive_int,
    "batch_size": positive_int, "max_steps": positive_int, "lr": positive_float, "dropout": fraction,
    "eval_every": positive_int}
# the run's own settings and their defaults (``--corpus``, ``--model``...)
DEFAULTS: dict[str, Any] = {"corpus": "tinyshakespeare", "model": "gpt", "tokenizer": "char", "vocab_size": 512,
                            "seed": 1337}
RESUME_OPTIONS = ("max_steps", "eval_every")  # may change when a run is resumed: train longer, evaluate more often


@dataclass
class RunConfig:
    """Everything an ``lmlab train`` run depends on; ``to_dict()`` is ``run.json``'s ``"config"``."""

    model: str  # "gpt" or "lstm": the kind of ``settings``
    corpus: str  # a name of lmlab.data.CORPORA
    tokenizer: str  # "char" or "bpe"
    vocab_size: int  # BPE vocabulary size (not used by "char")
    seed: int  # seeds the generators, the batches and the model's initial weights
    preset: str  # "cpu" or "gpu": the preset the settings started from
    threads: int | None  # torch CPU threads (None: torch's default)
    settings: GPTSettings | LSTMSettings

    @classmethod
    def new(cls, model: str, preset: str, options: dict[str, Any], **run: Any) -> RunConfig:
        """The preset of ``model`` with the ``options`` that are not None (those the model has) changed."""
        settings = PRESETS[model][preset]
        names = {f.name for f in fields(settings)}
        settings = replace(settings, **{k: v for k, v in options.items() if v is not None and k in names})
        return cls(model=model, preset=preset, settings=settings, **run)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON data: the settings' fields, then the run's."""
        run = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"}
        return {**asdict(self.settings), **run}

    @classmethod
    def from_dict(cls, data: dict[str, Any], model: str = "gpt") -> RunConfig:
        """Rebuild a ``RunConfig`` from ``to_dict()``'s data (``model`` when the data names none).

        Raises:
            ValueError: a setting is missing, unknown to this version, or the model kind is unknown.
        """
        kind = data.get("model", model)
        if kind not in PRESETS:
            raise ValueError(f"names the model {kind!r}, which this version does not know ({sorted(PRESETS)})")
        settings_cls = type(PRESETS[kind]["cpu"])
        run_names = [f.name for f in fields(cls) if f.name != "settings"]
        settings_names = [f.name for f in fields(settings_cls)]
        missing = [k for k in run_names + settings_names if k not in data]
        unknown = [k for k in data if k not in run_names + settings_names]
        if missing or unknown:
            problems = [f"lacks the settings {missing}"] if missing else []
            problems += [f"has settings this version does not know: {unknown}"] if unknown else []
            raise ValueError(" and ".join(problems))
        settings = settings_cls(**{k: data[k] for k in settings_names})
        return cls(settings=settings, **{k: data[k] for k in run_names})

    def resumed_with(self, given: dict[str, Any]) -> tuple[RunConfig, list[str]]:
        """This run with the ``RESUME_OPTIONS`` in ``given`` applied, and the other options of ``given`` (None: not
        given) whose values differ from the run's, e.g. ``["--lr 0.1 (the run has 0.005)"]``."""
        recorded = self.to_dict()
        conflicts = [f"--{k.replace('_', '-')} {v} (the run has " + (f"{recorded[k]})" if k in recorded else "none)")
                     for k, v in given.items() if v is not None and k not in RESUME_OPTIONS and v != recorded.get(k)]
        changes = {k: v for k, v in given.items() if v is not None and k in RESUME_OPTIONS}
        return replace(self, settings=replace(self.settings, **changes)), conflicts

    def train_config(self, **extra: Any) -> TrainConfig:
        """The ``TrainConfig`` of the run; ``extra`` adds the settings that are not recorded (checkpoint folder,
        device, progress bar...)."""
        from lmlab.trainconfig import TrainConfig

        s = self.settings
        return TrainConfig(max_steps=s.max_steps, lr=s.lr, warmup_steps=s.warmup_steps, eval_every=s.eval_every,
                           eval_batches=s.eval_batches, seed=self.seed, **extra)
