"""Loading a checkpoint: read and check ``state.json``; read each file once and check its SHA-256, its values
and its fit (``lmlab.checkpoint.verify``); check the model fits the saved tensors (names and shapes) -- a model
rebuilt from the spec is first built on the ``meta`` device, which allocates nothing, so a spec edited to ask
for a huge vocabulary is refused before any memory is taken -- and only then load the weights (safetensors)
and the optimizer state (``torch.load(weights_only=True)``, on torch 2.6 or later). So a checkpoint that
fails any check leaves the model and the optimizer untouched.

``load_checkpoint(path)`` does it all; ``restore(path, state, ...)`` is its second half, for a caller that
has already read the state (the training loop's resume).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

import lmlab
from lmlab.checkpoint.layout import (
    FORMAT_VERSION,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    Checkpoint,
    CheckpointError,
    model_spec_or_none,
    resolve_checkpoint,
    unwrap_model,
)
from lmlab.checkpoint.verify import check_files_field, read_optimizer_state, read_tensors, read_verified
from lmlab.models import build_model


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The ``state.json`` of the checkpoint folder ``path``, checked: a JSON object with this lmlab's
    format version, a step (int >= 0) and a model spec (``None`` or ``{"kind": str, "config": dict}``).

    Raises:
        CheckpointError: the file is missing, not UTF-8 JSON, or lacks those fields (the message says which),
            or was written with another checkpoint format version (the message names both versions).
    """
    file = Path(path) / STATE_FILE
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CheckpointError(f"{file} is missing; {Path(path)} is not a complete checkpoint") from e
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{file} is not valid JSON ({e}); the checkpoint is damaged: use an earlier one") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} holds a JSON {type(state).__name__}, not an object; the checkpoint is damaged")
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{Path(path)} has checkpoint format version {version!r} (written by lmlab "
            f"{state.get('lmlab_version', '?')}), but this lmlab ({lmlab.__version__}) reads version "
            f"{FORMAT_VERSION}; load it with the lmlab version that wrote it"
        )
    problems = []
    step = state.get("step")
    if type(step) is not int or step < 0:
        problems.append(f"'step' must be an int >= 0, got {step!r}")
    spec = state.get("model_spec")
    if spec is not None and not (
        isinstance(spec, dict) and isinstance(spec.get("kind"), str) and isinstance(spec.get("config"), dict)
    ):
        problems.append(f"'model_spec' must be null or {{\"kind\": str, \"config\": {{...}}}}, got {spec!r:.200}")
    if problems:
        raise CheckpointError(f"{file} is damaged: " + "; ".join(problems))
    check_files_field(Path(path), state)
    saved_version = state.get("lmlab_version")
    if saved_version != lmlab.__version__:
        warnings.warn(
            f"{Path(path)} was written by lmlab {saved_version!r}; this is lmlab {lmlab.__version__!r} "
            f"(same checkpoint format {FORMAT_VERSION}, so it loads)", stacklevel=3
        )
    return state


def load_checkpoint(
    path_or_dir: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Load a checkpoint folder (or the latest one in a run folder) into a model and optimizer.

    Args:
        path_or_dir: a ``step-XXXXXX`` folder, or a folder of them (the latest is loaded).
        model: the model to load the weights into. ``None``: rebuild it from the checkpoint's model
            spec with ``lmlab.models.build_model`` (on CPU).
        optimizer: loaded from ``optimizer.pt`` when given (needs torch 2.6 or later: ``lmlab.safe_load``).
        map_location: where the optimizer's tensors are read to before being copied into the optimizer.

    Returns:
        A ``Checkpoint`` (path, step, state, model).

    Raises:
        CheckpointError: nothing to load, another format version, damaged files (state.json that is not
            a JSON object with a step, a file whose SHA-256 differs from the one state.json records, weights
            or optimizer state that cannot be read or hold NaN/inf), an optimizer state that does not fit the
            optimizer (other groups, moments of other shapes), ``optimizer=`` on torch older than 2.6
            (CVE-2025-32434: load without it to get the weights), or a model whose tensor names or shapes
            differ from the checkpoint's (the message lists the config and tensor differences; nothing is
            loaded). Every check comes before anything is loaded. A config that differs only in settings
            without weights (dropout) warns, and so do a checkpoint written by another lmlab version of the
            same format and one without recorded SHA-256s.
        UnsafeCheckpointError: ``optimizer.pt`` holds pickled objects that are not tensors or plain
            containers (loading them could run code, so they are not loaded).
    """
    path = resolve_checkpoint(path_or_dir)
    return restore(path, read_state(path), model, optimizer, map_location)


def restore(
    path: Path,
    state: dict[str, Any],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Load the checkpoint folder ``path``, whose ``state.json`` ``read_state`` has read as ``state``, into
    ``model`` (or a model rebuilt from its spec) and ``optimizer``. Raises as ``load_checkpoint``; every
    check comes before anything is loaded."""
    if "files" not in state:
        warnings.warn(f"{path / STATE_FILE} records no SHA-256 of its files (it was written before lmlab "
                      "recorded them), so damaged bytes cannot be found; it loads unchecked", stacklevel=3)
    tensors = read_tensors(path / MODEL_FILE, read_verified(path, MODEL_FILE, state))  # CPU tensors, all finite
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    spec = state.get("model_spec")
    model = unwrap_model(model) if model is not None else _rebuild(path, spec, shapes)
    _check_fits(path, spec, model, shapes)
    opt_state = None
    if optimizer is not None:
        if not (path / OPTIMIZER_FILE).is_file():
            raise CheckpointError(f"{path} holds no optimizer state ({OPTIMIZER_FILE}); load it without optimizer=")
        opt_data = read_verified(path, OPTIMIZER_FILE, state)
        opt_state = read_optimizer_state(path / OPTIMIZER_FILE, opt_data, optimizer, map_location)
    # ---- every check passed: load (tied names, stored once, load through their twin)
    model.load_state_dict(tensors, strict=False)
    if opt_state is not None:
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise CheckpointError(f"the optimizer does not match {path / OPTIMIZER_FILE}: {e}. Create the "
                                  "optimizer with the same parameter groups as the run that saved it") from e
    return Checkpoint(path=path, step=int(state["step"]), state=state, model=model)


def _rebuild(path: Path, spec: dict[str, Any] | None, shapes: dict[str, tuple[int, ...]]) -> nn.Module:
    """A fresh model from the checkpoint's model spec (``lmlab.models.build_model``), built for real only
    once a skeleton on the ``meta`` device (shapes, no memory) has the checkpoint's tensor shapes."""
    if spec is None:
        raise CheckpointError(
            f"{path} does not say how to build its model (no model spec: the model class is not one of "
            "lmlab.models); build the model yourself and pass it as model=..."
        )
    largest = max([d for shape in shapes.values() for d in shape], default=0)
    # a size larger than every saved dimension and the number of tensors cannot fit (and n_layer=10**9 would
    # take long even on the meta device): refused from the numbers alone
    diffs = [f"{k}={v} is larger than any tensor dimension it saved (the largest is {largest})"
             for k, v in spec["config"].items() if type(v) is int and v > max(largest, len(shapes))]
    if not diffs:
        try:
            with torch.device("meta"):
                skeleton = build_model(spec["kind"], spec["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(
                f"cannot rebuild the model of {path} from its model spec ({e}); the checkpoint was written by "
                "another lmlab version or edited by hand: build the model yourself and pass it as model=..."
            ) from e
        diffs = _shape_differences(shapes, skeleton)
    if diffs:
        raise CheckpointError(f"the model spec in {path / STATE_FILE} does not match {MODEL_FILE} (nothing was "
                              "allocated): " + "; ".join(diffs[:10]) + ". The state.json was edited or damaged: "
                              "use an earlier checkpoint, or build the model yourself and pass it as model=...")
    return build_model(spec["kind"], spec["config"])


def _config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Readable differences between two model specs, e.g. ``["n_layer: checkpoint 4, model 2"]``."""
    out = []
    if saved.get("kind") != current.get("kind"):
        out.append(f"kind: checkpoint {saved.get('kind')!r}, model {current.get('kind')!r}")
    sc, cc = saved.get("config") or {}, current.get("config") or {}
    for key in list(sc) + [k for k in cc if k not in sc]:
        if sc.get(key) != cc.get(key):
            out.append(f"{key}: checkpoint {sc.get(key)!r}, model {cc.get(key)!r}")
    return out


def _shape_differences(saved: dict[str, tuple[int, ...]], model: nn.Module) -> list[str]:
    """Readable differences between the saved tensor names/shapes and the model's.

    A name the checkpoint lacks is fine when it is tied to (is the same tensor as) a saved one.
    """
    current = model.state_dict(keep_vars=True)  # the tensors themselves: tied names give the same object
    out = []
    for name, shape in saved.items():
        if name not in current:
            out.append(f"{name}: in the checkpoint {list(shape)}, not in the model")
        elif tuple(current[name].shape) != tuple(shape):
            out.append(f"{name}: checkpoint {list(shape)}, model {list(current[name].shape)}")
    saved_tensors = {id(current[n]) for n in saved if n in current}
    for name, t in current.items():
        if name not in saved and id(t) not in saved_tensors:
            out.append(f"{name}: in the model {list(t.shape)}, not in the checkpoint")
    return out


def _check_fits(path: Path, spec: dict[str, Any] | None, model: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse (nothing loaded) a model whose tensor names or shapes differ from the checkpoint's; warn when
    only settings without weights (dropout) differ."""
    current = model_spec_or_none(model)
    config_diffs = _config_differences(spec, current) if spec is not None and current is not None else []
    tensor_diffs = _shape_differences(shapes, model)
    if tensor_diffs:
        lines = config_diffs + tensor_diffs[:20]
        if len(tensor_diffs) > 20:
            lines.append(f"... and {len(tensor_diffs) - 20} more tensors")
        raise CheckpointError(
            f"the model does not match the checkpoint {path} (nothing was loaded):\n  " + "\n  ".join(lines)
            + "\nbuild the model with the checkpoint's config, or pass model=None to rebuild it from the checkpoint"
        )
    if config_diffs:  # same tensors, other settings (e.g. dropout for fine-tuning): allowed, but said
        warnings.warn(
            f"loading {path} into a model with a different config: " + "; ".join(config_diffs), stacklevel=4
        )
