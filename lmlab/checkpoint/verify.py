"""Checking a checkpoint's files before anything is loaded from them.

- Bit rot: ``state.json`` records the SHA-256 of every other file (``"files"``); each file is read once, its
  hash compared, and only those same bytes are parsed. A flipped bit on a disk, or a copy cut short, is
  refused naming the file.
- Values: weights and optimizer moments must be finite (a NaN weight makes a model that emits one token
  forever, and a resumed run that blames its learning rate).
- The optimizer state must fit the optimizer it is loaded into: the same parameter groups, and every moment
  (``exp_avg``...) the shape of its parameter. PyTorch checks only the group sizes, so the state of another
  model size would load and crash at the first step.

The optimizer file is a pickle: it is read with ``lmlab.safe_load.safe_torch_load`` (``weights_only=True``,
and only on torch 2.6 or later).

Left out: ``state.json`` cannot hold its own hash; its fields are checked one by one instead
(``read_state``, and ``lmlab.checkpoint.trainstate`` for the training loop's).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from lmlab.checkpoint.layout import MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CheckpointError, UnsafeCheckpointError
from lmlab.safe_load import safe_torch_load

__all__ = ["file_hashes", "check_files_field", "read_verified", "read_tensors", "read_optimizer_state"]

HEX64 = re.compile(r"[0-9a-f]{64}")


def file_hashes(folder: Path, names: list[str]) -> dict[str, str]:
    """``{name: SHA-256 hex digest}`` of the files ``names`` in ``folder`` (what ``state.json`` records)."""
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}


def check_files_field(path: Path, state: dict[str, Any]) -> None:
    """Refuse a malformed ``"files"`` field of ``state.json`` (absent is allowed: older checkpoints)."""
    files = state.get("files")
    if "files" not in state:
        return
    ok = isinstance(files, dict) and MODEL_FILE in files and all(
        k in (MODEL_FILE, OPTIMIZER_FILE) and isinstance(v, str) and HEX64.fullmatch(v) for k, v in files.items())
    if not ok:
        raise CheckpointError(
            f"{path / STATE_FILE}: 'files' is malformed (expected {{\"{MODEL_FILE}\": \"<SHA-256>\", ...}}, got "
            f"{files!r:.100}); the checkpoint is damaged: use an earlier one"
        )


def read_verified(path: Path, name: str, state: dict[str, Any]) -> bytes:
    """The bytes of the file ``name`` of the checkpoint folder ``path``, after checking their SHA-256 against
    the one ``state.json`` records (a checkpoint without ``"files"`` is not checked: see ``restore``)."""
    file = path / name
    try:
        data = file.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{file} cannot be read ({e}); the checkpoint is incomplete: use an earlier one") from e
    files = state.get("files")
    if files is None:
        return data
    if name not in files:
        raise CheckpointError(f"{path / STATE_FILE} records no SHA-256 for {name}: the file was added after the "
                              "checkpoint was written; use an earlier checkpoint")
    actual = hashlib.sha256(data).hexdigest()
    if actual != files[name]:
        raise CheckpointError(
            f"{file} is damaged: its SHA-256 ({actual[:12]}...) differs from the one recorded in state.json "
            f"({files[name][:12]}...), so its bytes changed after it was written (a disk error, or a copy cut "
            "short). Use an earlier checkpoint"
        )
    return data


def read_tensors(file: Path, data: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file's bytes (on the CPU), refusing NaN or infinite values."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = dict(sorted(load(data).items()))  # by name, so that messages list them in a stable order
    except (SafetensorError, ValueError, OSError) as e:
        raise CheckpointError(f"{file} cannot be read ({e}); the checkpoint is damaged: use an earlier one") from e
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(
            f"{file} holds NaN or infinite values (in {', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}): "
            "the model was saved after its training diverged. Use an earlier checkpoint"
        )
    return tensors


def read_optimizer_state(file: Path, data: bytes, optimizer: torch.optim.Optimizer,
                         map_location: str | torch.device) -> dict[str, Any]:
    """The optimizer state in ``data`` (the bytes of ``optimizer.pt``), checked to fit ``optimizer``."""
    if not zipfile.is_zipfile(io.BytesIO(data)):  # torch.save writes a zip archive
        raise CheckpointError(f"{file} is not a file written by torch.save; the checkpoint is damaged")
    try:
        state = safe_torch_load(io.BytesIO(data), map_location=map_location, name=file)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"refused to load {file}: it contains pickled objects other than tensors and plain "
            "containers (or is damaged), and unpickling them could run arbitrary code. Do not load files "
            f"from sources you do not trust. (torch said: {str(e).splitlines()[0]})"
        ) from e
    except ValueError as e:  # torch older than 2.6
        raise CheckpointError(
            f"cannot load {file} with torch {torch.__version__}: before torch 2.6, torch.load(weights_only=True) "
            "can be made to run code hidden in a pickled file (CVE-2025-32434). Install torch 2.6 or later "
            "(pip install -U torch), or load the checkpoint without optimizer= (the weights are safetensors, "
            "which hold no code)"
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{file} cannot be read ({e}); the checkpoint is damaged") from e
    _check_fits_optimizer(file, state, optimizer)
    return state


def _check_fits_optimizer(file: Path, state: Any, optimizer: torch.optim.Optimizer) -> None:
    """Same parameter groups, every moment the shape of its parameter, every value finite."""
    groups = state.get("param_groups") if isinstance(state, dict) else None
    if not (isinstance(groups, list) and isinstance(state.get("state"), dict)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)):
        raise CheckpointError(f"{file} does not hold an optimizer's state_dict (with 'state' and 'param_groups'); "
                              "the checkpoint is damaged")
    saved_sizes = [len(g["params"]) for g in groups]
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    if saved_sizes != sizes:
        raise CheckpointError(f"{file} does not fit the optimizer: its parameter groups hold {saved_sizes} "
                              f"parameters, the optimizer's {sizes}. Create the optimizer with the same parameter "
                              "groups as the run that saved it")
    params = {i: p for g, mine in zip(groups, optimizer.param_groups) for i, p in zip(g["params"], mine["params"])}
    wrong, not_finite = [], []
    for i, entry in state["state"].items():
        if i not in params or not isinstance(entry, dict):
            wrong.append(f"state for parameter {i!r}, which no parameter group lists")
            continue
        for key, t in entry.items():
            if isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape != params[i].shape:
                wrong.append(f"{key} of parameter {i} is {list(t.shape)}, the parameter {list(params[i].shape)}")
            elif isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
                not_finite.append(f"{key} of parameter {i}")
    if wrong:
        raise CheckpointError(f"{file} does not fit the optimizer: {'; '.join(wrong[:5])}. It was saved for another "
                              "model (or model size): load it into the model and optimizer of the run that saved it")
    if not_finite:
        raise CheckpointError(f"{file} holds NaN or infinite values (in {', '.join(not_finite[:5])}): it was "
                              "saved after the training diverged. Use an earlier checkpoint")
