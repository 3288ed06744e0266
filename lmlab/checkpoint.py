"""Checkpoints: plain, inspectable folders, written atomically.

A checkpoint is a folder ``step-000123/`` holding

- ``model.safetensors``: the weights (safetensors: raw tensors plus a JSON header, nothing executable).
  Tied weights (GPT's ``lm_head.weight`` is ``transformer.wte.weight``) are stored once.
- ``optimizer.pt``: the optimizer's ``state_dict`` (AdamW moments), read back with
  ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers and refuses
  any other pickled object -- a pickle can run arbitrary code when it is loaded.
- ``state.json``: the step, the format version, the lmlab version, the model spec (``kind`` + config,
  enough to rebuild the model with ``lmlab.models.build_model``) and whatever the caller adds (the
  training loop adds its history, its config and the random-number-generator states).

Writing is atomic: everything goes into a temporary folder next to the final one, is flushed to disk
(fsync), and only then renamed to ``step-000123`` (a rename within one file system is atomic). A file
``latest`` names the newest checkpoint; it is replaced atomically too. Older checkpoints are deleted only
after the new one is complete (renamed to a hidden ``.del-*`` name first, so a half-deleted folder is never
taken for a checkpoint). So a crash or a full disk at any moment leaves the previous checkpoint loadable.
A process killed while saving leaves hidden leftovers (``.tmp-step-*``...); the next save into the folder
removes them (``remove_leftovers``).

Left out: sharded checkpoints of models that do not fit in one process, and asynchronous saving.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointWriteError",
    "UnsafeCheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "unwrap_model",
    "model_spec_or_none",
    "remove_leftovers",
    "read_state",
]

FORMAT_VERSION = 1  # bump when the folder layout or state.json keys change incompatibly
_STEP_DIR = re.compile(r"^step-(\d+)$")
_LEFTOVER = re.compile(r"^\.(?:tmp-step-\d+|del-step-\d+|latest\.tmp)-[0-9a-f]+$")  # see remove_leftovers
_OLD_DIR = re.compile(r"^\.old-(step-\d+)-[0-9a-f]+$")
MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, LATEST_FILE = "model.safetensors", "optimizer.pt", "state.json", "latest"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be loaded: missing files, another format version, or a model that does
    not match it."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holds pickled objects other than tensors and plain containers."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (unwritable folder, full disk...). The previous checkpoint
    is untouched and the partial one has been removed."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    ``state`` is the whole of ``state.json`` (``state["step"]``, ``state["model_spec"]``, the training
    loop's ``history`` and ``train_config``...). ``model`` is the model the weights were loaded into:
    the one passed to ``load_checkpoint``, or one rebuilt from the model spec.
    """

    path: Path  # the step-XXXXXX folder
    step: int  # optimizer steps completed when it was saved
    state: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None


# ----------------------------------------------------------------------------------------------------
# helpers


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel (``.module``) and ``torch.compile`` (``._orig_mod``)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def model_spec_or_none(model: nn.Module) -> dict[str, Any] | None:
    """``lmlab.models.model_spec(model)`` (``{"kind": ..., "config": {...}}``), or ``None`` for a model
    lmlab.models does not know (e.g. one defined in a notebook)."""
    try:
        from lmlab import models
    except ImportError:
        return None
    spec_fn = getattr(models, "model_spec", None)
    if spec_fn is None:
        return None
    try:
        spec = spec_fn(unwrap_model(model))
    except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError):
        return None
    return json.loads(json.dumps(spec))  # plain JSON data (tuples -> lists), as it will be read back


def _step_of(path: Path) -> int | None:
    m = _STEP_DIR.match(path.name)
    return int(m.group(1)) if m else None


def _is_complete(path: Path) -> bool:
    return path.is_dir() and (path / STATE_FILE).is_file() and (path / MODEL_FILE).is_file()


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete ``step-*`` checkpoints in ``directory``, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _step_of(p) is not None and _is_complete(p)]
    return sorted(found, key=lambda p: _step_of(p))


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``directory``: the one the ``latest`` file names, or, if that
    file is missing or points to something incomplete, the highest ``step-*`` folder. ``None`` if there
    is none."""
    directory = Path(directory)
    pointer = directory / LATEST_FILE
    if pointer.is_file():
        target = directory / pointer.read_text().strip()
        if _is_complete(target):
            return target
    found = list_checkpoints(directory)
    return found[-1] if found else None


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries (the renames in it) to disk; not possible on every OS, so best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_leftovers(directory: str | os.PathLike) -> list[str]:
    """Tidy what a process killed while saving left in ``directory``; return the names it removed.

    - ``.tmp-step-*``: a checkpoint that was still being written (never complete): removed;
    - ``.del-step-*``: an old checkpoint being deleted: removed;
    - ``.latest.tmp-*``: a ``latest`` file being written: removed;
    - ``.old-step-*``: the previous copy of a step that was being saved again: put back as ``step-*``
      when the new copy never arrived, otherwise removed.

    ``save_checkpoint`` calls it before writing, and ``lmlab.train`` when it resumes. Only one process
    may save into a folder at a time (the training loop saves from rank 0 only).

    Example: after a kill during a save, [".tmp-step-000006-1f2e3d4c"] -> removed, ["step-000003", "latest"] kept
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in sorted(directory.iterdir()):
        old = _OLD_DIR.match(p.name)
        if old and _is_complete(p) and not (directory / old.group(1)).exists():
            os.replace(p, directory / old.group(1))  # the re-save never finished: the old copy is the checkpoint
        elif old or _LEFTOVER.match(p.name):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def _delete_checkpoint(path: Path) -> None:
    """Rename to a hidden ``.del-*`` name, then delete: a kill half-way leaves no half-deleted ``step-*``."""
    hidden = path.with_name(f".del-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, hidden)
    except OSError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# saving


def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int,
    state: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Save a checkpoint folder ``directory/step-{step:06d}`` atomically and point ``latest`` at it.

    Args:
        directory: the run's checkpoint folder (created if needed).
        model: the model (DDP and torch.compile wrappers are unwrapped).
        optimizer: saved too when given.
        step: optimizer steps completed.
        state: extra JSON-able data for ``state.json`` (the training loop stores its history, config and
            random-number-generator states here).
        keep: how many checkpoints to keep; older ones are deleted after the new one is complete.

    Returns:
        The path of the new checkpoint folder.

    Raises:
        CheckpointWriteError: the folder cannot be written (not a folder, no permission, disk full).
            The partial checkpoint is removed; earlier checkpoints are untouched.

    Example:
        >>> path = save_checkpoint("runs/demo", model, optimizer, step=100)   # doctest: +SKIP
        >>> path.name                                                     # doctest: +SKIP
        'step-000100'
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_model

    import lmlab

    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be at least 1 (the checkpoint just written), got {keep!r}")
    directory = Path(directory)
    model = unwrap_model(model)
    contents = {
        "format_version": FORMAT_VERSION,
        "lmlab_version": lmlab.__version__,
        "step": step,
        "model_spec": model_spec_or_none(model),
        **(state or {}),
    }
    try:
        text = json.dumps(contents, indent=1)
    except TypeError as e:
        raise TypeError(f"the checkpoint state must be JSON data (dicts, lists, numbers, strings): {e}") from e

    final = directory / f"step-{step:06d}"
    tmp = directory / f".tmp-step-{step:06d}-{uuid.uuid4().hex[:8]}"
    old, writing = None, "the folder"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        remove_leftovers(directory)
        tmp.mkdir()
        writing = MODEL_FILE
        save_model(model, str(tmp / MODEL_FILE))  # drops the duplicate names of tied tensors
        if optimizer is not None:
            writing = OPTIMIZER_FILE
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        writing = STATE_FILE
        (tmp / STATE_FILE).write_text(text)
        writing = "the flush to disk and the rename"
        for f in tmp.iterdir():
            _fsync_file(f)
        _fsync_dir(tmp)
        if final.exists():  # saving the same step again: move the old one aside, never delete it first
            old = directory / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)  # the atomic step: from here on the new checkpoint is complete
        _fsync_dir(directory)
        pointer_tmp = directory / f".{LATEST_FILE}.tmp-{uuid.uuid4().hex[:8]}"
        pointer_tmp.write_text(final.name + "\n")
        _fsync_file(pointer_tmp)
        os.replace(pointer_tmp, directory / LATEST_FILE)
        _fsync_dir(directory)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        for leftover in directory.glob(f".{LATEST_FILE}.tmp-*") if directory.is_dir() else []:
            leftover.unlink(missing_ok=True)
        if old is not None and old.exists() and not final.exists():
            try:
                os.replace(old, final)  # the new copy never arrived: put the old one back
            except OSError:
                pass  # remove_leftovers puts it back at the next save
        if isinstance(e, (OSError, RuntimeError, SafetensorError)):  # torch and safetensors wrap I/O errors
            raise CheckpointWriteError(
                f"could not write a checkpoint into {directory} (at {writing}): {e}. Earlier checkpoints there are "
                "untouched and the partial one was removed. Check that the folder is writable and the "
                "disk has free space, or pick another checkpoint_dir."
            ) from e
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    # prune: keep the new checkpoint and the newest keep - 1 others
    others = [p for p in list_checkpoints(directory) if p != final]
    for p in others[: max(0, len(others) - (keep - 1))]:
        _delete_checkpoint(p)
    return final


# ----------------------------------------------------------------------------------------------------
# loading


def _resolve(path_or_dir: str | os.PathLike) -> Path:
    path = Path(path_or_dir)
    if _is_complete(path):
        return path
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is not None:
            return found
        raise CheckpointError(
            f"no complete checkpoint in {path} (expected a folder step-XXXXXX with {STATE_FILE} and "
            f"{MODEL_FILE}, or a 'latest' file naming one)"
        )
    raise CheckpointError(f"{path} does not exist or is not a checkpoint folder")


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

    A name the checkpoint lacks is fine when it is tied to (shares memory with) a saved tensor.
    """
    current = model.state_dict()
    out = []
    for name, shape in saved.items():
        if name not in current:
            out.append(f"{name}: in the checkpoint {list(shape)}, not in the model")
        elif tuple(current[name].shape) != tuple(shape):
            out.append(f"{name}: checkpoint {list(shape)}, model {list(current[name].shape)}")
    saved_ptrs = {current[n].data_ptr() for n in saved if n in current and current[n].numel() > 0}
    for name, t in current.items():
        if name not in saved and not (t.numel() > 0 and t.data_ptr() in saved_ptrs):
            out.append(f"{name}: in the model {list(t.shape)}, not in the checkpoint")
    return out


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The ``state.json`` of the checkpoint folder ``path``, checked: a JSON object with this lmlab's
    format version, a step (int >= 0) and a model spec (``None`` or ``{"kind": str, "config": dict}``).

    Raises:
        CheckpointError: the file is missing, not UTF-8 JSON, or lacks those fields (the message says which),
            or was written with another checkpoint format version (the message names both versions).
    """
    import lmlab

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
        optimizer: loaded from ``optimizer.pt`` when given.
        map_location: where tensors are read to before being copied into the model/optimizer.

    Returns:
        A ``Checkpoint`` (path, step, state, model).

    Raises:
        CheckpointError: nothing to load, another format version, damaged files (state.json that is not
            a JSON object with a step, weights or optimizer state that cannot be read), or a model whose
            tensor names or shapes differ from the checkpoint's (the message lists the config and tensor
            differences; nothing is loaded). A config that differs only in settings without weights
            (dropout) warns, and so does a checkpoint written by another lmlab version of the same format.
        UnsafeCheckpointError: ``optimizer.pt`` holds pickled objects that are not tensors or plain
            containers (loading them could run code, so they are not loaded).
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    path = _resolve(path_or_dir)
    state = read_state(path)
    spec = state.get("model_spec")

    if model is None:
        if spec is None:
            raise CheckpointError(
                f"{path} does not say how to build its model (no model spec: the model class is not one of "
                "lmlab.models); build the model yourself and pass it as model=..."
            )
        from lmlab.models import build_model

        try:
            model = build_model(spec["kind"], spec["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(
                f"cannot rebuild the model of {path} from its model spec ({e}); the checkpoint was written by "
                "another lmlab version or edited by hand: build the model yourself and pass it as model=..."
            ) from e
    model = unwrap_model(model)

    current = model_spec_or_none(model)
    config_diffs = _config_differences(spec, current) if spec is not None and current is not None else []
    try:
        with safe_open(str(path / MODEL_FILE), framework="pt") as f:
            saved_shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{path / MODEL_FILE} cannot be read ({e}); the checkpoint is damaged: use an earlier one"
        ) from e
    tensor_diffs = _shape_differences(saved_shapes, model)
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
            f"loading {path} into a model with a different config: " + "; ".join(config_diffs), stacklevel=2
        )
    try:
        load_model(model, str(path / MODEL_FILE), strict=True, device=str(map_location))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{path / MODEL_FILE} cannot be read ({e}); the checkpoint is damaged: use an earlier one"
        ) from e

    if optimizer is not None:
        opt_file = path / OPTIMIZER_FILE
        if not opt_file.is_file():
            raise CheckpointError(f"{path} holds no optimizer state ({OPTIMIZER_FILE}); load it without optimizer=")
        if not zipfile.is_zipfile(opt_file):  # torch.save writes a zip archive
            raise CheckpointError(f"{opt_file} is not a file written by torch.save; the checkpoint is damaged")
        try:
            opt_state = torch.load(opt_file, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpointError(
                f"refused to load {opt_file}: it contains pickled objects other than tensors and plain "
                "containers (or is damaged), and unpickling them could run arbitrary code. Do not load files "
                f"from sources you do not trust. (torch said: {str(e).splitlines()[0]})"
            ) from e
        except (RuntimeError, EOFError, OSError) as e:
            raise CheckpointError(f"{opt_file} cannot be read ({e}); the checkpoint is damaged") from e
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise CheckpointError(
                f"the optimizer does not match {opt_file}: {e}. Create the optimizer with the same parameter "
                "groups as the run that saved it"
            ) from e
    return Checkpoint(path=path, step=int(state["step"]), state=state, model=model)
