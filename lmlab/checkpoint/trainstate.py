"""The training loop's part of ``state.json``: what ``lmlab.train`` writes into a checkpoint besides the weights,
how each field is checked before a run continues from it, and how the continuing run is compared with it.

Fields (``training_state`` writes them):

- ``history``: the ``History`` so far (losses, steps, times...);
- ``train_config``: the ``TrainConfig`` of the run, to name the settings a resumed run changes
  (``RESUME_FREE`` lists those that do not change its results);
- ``rng_states``: every random-number generator's state, one per process (dropout masks continue exactly);
- ``pending_loss``: the sum and count of the losses since the last logged step;
- ``grad_scaler``: the fp16 gradient scaler's state (or null), and ``world_size``;
- ``fingerprints``: what the run trained on -- the SHA-256 of its first batch (``data``: the data, its order
  and the batch seed), the batch shape, and the tokenizer (``lmlab.tokenizers.tokenizer_fingerprint``) when
  ``train`` was given one -- so that resuming on other data, batches or tokens is noticed.

``check_training_fields`` refuses a malformed field with a ``CheckpointError`` that names it (instead of an
``IndexError`` from deep inside the loop); ``differences`` lists what a resumed run changes.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lmlab.checkpoint.layout import STATE_FILE, CheckpointError
from lmlab.repro import get_rng_state, set_rng_state, sha256_of
from lmlab.trainconfig import RESUME_FREE, History, TrainConfig

__all__ = ["training_state", "run_fingerprints", "check_training_fields", "differences"]

HEX64 = re.compile(r"[0-9a-f]{64}")
HISTORY_LISTS = {"steps": int, "train_losses": float, "lrs": float, "grad_norms": float, "tokens": int,
                 "times": float, "val_steps": int, "val_losses": float}


def training_state(history: History, config: TrainConfig, rng_states: list[dict[str, Any]],
                   pending_loss: tuple[float, int], grad_scaler: dict[str, Any] | None, world_size: int,
                   fingerprints: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training loop's part of ``state.json`` (the ``state=`` of ``save_checkpoint``)."""
    return {
        "history": history.to_dict(),
        "train_config": asdict(config),
        "rng_states": rng_states,  # one per process
        "pending_loss": list(pending_loss),  # losses since the last log, for exact resume
        "grad_scaler": grad_scaler,
        "world_size": world_size,
        "fingerprints": fingerprints,
    }


def run_fingerprints(batches: Any, tokenizer: Any = None) -> dict[str, Any]:
    """What a run trains on: the SHA-256 and shape of its first batch (``batches.get(0)``, from a stateless
    source), and the tokenizer's fingerprint (or None).

    Example: {"data": "9f2c...", "batch_shape": [32, 64], "tokenizer": {"kind": "char", "vocab_size": 65, ...}}
    """
    from lmlab.tokenizers import tokenizer_fingerprint

    data, shape = None, None
    batch = batches.get(0)
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and all(hasattr(t, "shape") for t in batch):
        x, y = batch  # (B, T), (B, T)
        data = hashlib.sha256((sha256_of(x) + sha256_of(y)).encode()).hexdigest()
        shape = list(x.shape)
    return {"data": data, "batch_shape": shape,
            "tokenizer": tokenizer_fingerprint(tokenizer) if tokenizer is not None else None}


def _number(v: Any) -> bool:
    return type(v) in (int, float)


def _history_problem(h: Any, step: int) -> str | None:
    """What is wrong with a saved history, or None."""
    if not isinstance(h, dict):
        return f"a JSON {type(h).__name__}, not an object"
    for name, kind in HISTORY_LISTS.items():
        v = h.get(name, [])
        if not isinstance(v, list) or not all(type(x) is int if kind is int else _number(x) for x in v):
            return f"'{name}' must be a list of {kind.__name__}s"
    if len({len(h.get(n, [])) for n in ("steps", "train_losses", "lrs", "grad_norms", "tokens", "times")}) > 1:
        return "'steps', 'train_losses', 'lrs', 'grad_norms', 'tokens' and 'times' must have one entry per logged step"
    if len(h.get("val_steps", [])) != len(h.get("val_losses", [])):
        return "'val_steps' and 'val_losses' must have the same length"
    if any(s > step for s in h.get("steps", []) + h.get("val_steps", [])):
        return f"it logs steps after the checkpoint's step {step}"
    if not (type(h.get("tokens_seen", 0)) is int and h.get("tokens_seen", 0) >= 0
            and _number(h.get("wall_time", 0.0)) and isinstance(h.get("stopped_early", False), bool)
            and isinstance(h.get("stop_reason"), (str, type(None)))):
        return "'tokens_seen', 'wall_time', 'stopped_early' or 'stop_reason' has the wrong type"
    return None  # (keys this version does not know are ignored by History.from_dict)


def _rng_problem(states: Any) -> str | None:
    """What is wrong with the saved generator states, or None (each is tried, then the current ones restored)."""
    if not isinstance(states, list) or not states or not all(isinstance(s, dict) for s in states):
        return "expected a non-empty list of generator states, one per process"
    current = get_rng_state()
    try:
        for i, s in enumerate(states):
            try:
                set_rng_state(s)
            except Exception as e:  # noqa: BLE001 - any way the data can fail to apply is the same damage
                return f"the state of process {i} cannot be applied: {type(e).__name__}: {str(e)[:100]}"
    finally:
        set_rng_state(current)
    return None


def _fingerprints_problem(f: Any) -> str | None:
    if f is None:
        return None
    if not isinstance(f, dict):
        return f"a JSON {type(f).__name__}, not an object"
    tok = f.get("tokenizer")
    ok = (f.get("data") is None or (isinstance(f["data"], str) and HEX64.fullmatch(f["data"]))) and (
        f.get("batch_shape") is None or (isinstance(f["batch_shape"], list)
                                          and all(type(d) is int and d >= 0 for d in f["batch_shape"]))) and (
        tok is None or (isinstance(tok, dict) and isinstance(tok.get("kind"), str)
                        and type(tok.get("vocab_size")) is int and isinstance(tok.get("sha256"), str)))
    return None if ok else "expected {\"data\": SHA-256 or null, \"batch_shape\": [ints] or null, \"tokenizer\": ...}"


def check_training_fields(path: Path, state: dict[str, Any]) -> None:
    """Raise a ``CheckpointError`` naming the first malformed training field of ``state.json``."""
    missing = [k for k in ("history", "rng_states") if k not in state]
    if missing:
        raise CheckpointError(
            f"{path} has no usable training state ({', '.join(missing)} missing): it was not written by lmlab.train. "
            "Load its weights with lmlab.checkpoint.load_checkpoint(path, model) and start a new run instead of "
            "resume=..."
        )
    pending = state.get("pending_loss", [0.0, 0])
    scaler = state.get("grad_scaler")
    problems = {
        "history": _history_problem(state["history"], state["step"]),
        "rng_states": _rng_problem(state["rng_states"]),
        "pending_loss": None if (isinstance(pending, list) and len(pending) == 2 and _number(pending[0])
                                 and math.isfinite(pending[0]) and type(pending[1]) is int and pending[1] >= 0)
        else "expected [sum of the losses since the last log, their count]",
        "grad_scaler": None if scaler is None or (isinstance(scaler, dict) and all(
            _number(v) for v in scaler.values())) else "expected null or the gradient scaler's numbers",
        "world_size": None if type(state.get("world_size", 1)) is int and state.get("world_size", 1) >= 1
        else "expected the number of processes, an int >= 1",
        "train_config": None if isinstance(state.get("train_config", {}), dict) else "expected the TrainConfig",
        "fingerprints": _fingerprints_problem(state.get("fingerprints")),
    }
    for name, problem in problems.items():
        if problem is not None:
            raise CheckpointError(f"{path / STATE_FILE}: '{name}' is malformed ({problem}); the checkpoint is damaged: "
                                  "resume from an earlier one")


def _as_json(value: Any) -> Any:
    """Tuples as lists, as they come back from JSON."""
    return list(value) if isinstance(value, tuple) else value


def differences(state: dict[str, Any], config: TrainConfig, fingerprints: dict[str, Any] | None) -> list[str]:
    """What a run resumed from ``state`` with ``config`` on data ``fingerprints`` changes, e.g.
    ``["lr: checkpoint 0.01, now 0.02", "batch shape: checkpoint [8, 8], now [16, 8]"]``."""
    out = []
    saved = state.get("train_config") or {}
    current = asdict(config)
    out += [f"{k}: checkpoint {saved.get(k)!r}, now {current[k]!r}" for k in current
            if k not in RESUME_FREE and k in saved and _as_json(saved[k]) != _as_json(current[k])]
    before = state.get("fingerprints")
    if before and fingerprints:
        if before.get("batch_shape") and fingerprints["batch_shape"] and before["batch_shape"] != fingerprints[
                "batch_shape"]:
            out.append(f"batch shape: checkpoint {before['batch_shape']}, now {fingerprints['batch_shape']}")
        elif before.get("data") and fingerprints["data"] and before["data"] != fingerprints["data"]:
            out.append("data: batch 0 differs from the one the checkpoint saw (other data, order or batch seed)")
        old_tok, new_tok = before.get("tokenizer"), fingerprints["tokenizer"]
        if old_tok and new_tok and old_tok["sha256"] != new_tok["sha256"]:
            out.append(f"tokenizer: the checkpoint's ({old_tok['kind']}, {old_tok['vocab_size']} tokens) differs from "
                       f"this one ({new_tok['kind']}, {new_tok['vocab_size']} tokens)")
    return out
