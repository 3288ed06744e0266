"""The course's language models, from counting to transformers.

Every language model follows one convention: ``forward(idx, targets=None) -> (logits, loss)`` with
``idx`` (B, T) int64 token ids, ``logits`` (B, T, V) and ``loss`` the mean cross-entropy over
positions (targets of -100 ignored), or None without targets.

``build_model(kind, config)`` and ``model_spec(model)`` turn a model into plain JSON data and back, so
checkpoints can rebuild it::

    spec = model_spec(model)                        # {"kind": "gpt", "config": {...}}
    same = build_model(spec["kind"], spec["config"])
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch.nn as nn

from lmlab.models.bigram import BigramConfig, BigramLM
from lmlab.models.classifier import SequenceClassifier
from lmlab.models.gpt import GPT, GPTConfig, KVCache
from lmlab.models.lstm import LSTMLM, LSTMConfig
from lmlab.models.masked import MaskedLM, MaskedLMConfig, mask_tokens
from lmlab.models.ngram import NGramLM

__all__ = [
    "NGramLM", "BigramLM", "BigramConfig", "LSTMLM", "LSTMConfig", "GPT", "GPTConfig", "KVCache",
    "MaskedLM", "MaskedLMConfig", "mask_tokens", "SequenceClassifier", "build_model", "model_spec",
]

# kind -> (model class, config class)
_KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "gpt": (GPT, GPTConfig),
    "lstm": (LSTMLM, LSTMConfig),
    "masked": (MaskedLM, MaskedLMConfig),
    "bigram": (BigramLM, BigramConfig),
}


def build_model(kind: str, config: dict[str, Any]) -> nn.Module:
    """A fresh model of ``kind`` ("gpt", "lstm", "masked", "bigram") from a config dict.

    Example: build_model("gpt", {"vocab_size": 65, "n_layer": 2}) -> GPT with the other fields at defaults
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(_KINDS)}")
    model_cls, config_cls = _KINDS[kind]
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of {config_cls.__name__} fields, got {type(config).__name__}")
    fields = set(config_cls.__dataclass_fields__)
    unknown = set(config) - fields
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} fields {sorted(unknown)}; valid fields are {sorted(fields)}")
    return model_cls(config_cls(**config))


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"kind": ..., "config": {...}}``: plain JSON-serializable data; ``build_model`` turns it back into a model."""
    for kind, (model_cls, _) in _KINDS.items():
        if type(model) is model_cls:
            return {"kind": kind, "config": asdict(model.config)}
    raise TypeError(f"model_spec supports {[c.__name__ for c, _ in _KINDS.values()]}, got {type(model).__name__}")
