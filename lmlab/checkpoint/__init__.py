"""Checkpoints: plain, inspectable folders, written atomically.

A checkpoint is a folder ``step-000123/`` holding

- ``model.safetensors``: the weights (safetensors: raw tensors plus a JSON header, nothing executable).
  Tied weights (GPT's ``lm_head.weight`` is ``transformer.wte.weight``) are stored once.
- ``optimizer.pt``: the optimizer's ``state_dict`` (AdamW moments), read back with
  ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers and refuses
  any other pickled object -- a pickle can run arbitrary code when it is loaded -- and only on torch
  2.6 or later (``lmlab.safe_load``: older versions could be tricked, CVE-2025-32434).
- ``state.json``: the step, the format version, the lmlab version, the model spec (``kind`` + config,
  enough to rebuild the model with ``lmlab.models.build_model``), the SHA-256 of the other two files, and
  whatever the caller adds (the training loop adds its history, its config, the random-number-generator
  states and fingerprints of its data and tokenizer).

Loading checks everything before it loads anything: the files' SHA-256 (bit rot), finite values, tensor
names and shapes (a model rebuilt from the spec is checked on the ``meta`` device first, so nothing is
allocated for a spec that does not match), and an optimizer state that fits its optimizer.

Writing is atomic: everything goes into a temporary folder next to the final one, is flushed to disk
(fsync), and only then renamed to ``step-000123`` (a rename within one file system is atomic). A file
``latest`` names the newest checkpoint; it is replaced atomically too. Older checkpoints are deleted only
after the new one is complete (renamed to a hidden ``.del-*`` name first, so a half-deleted folder is never
taken for a checkpoint). So a crash or a full disk at any moment leaves the previous checkpoint loadable.
A process killed while saving leaves hidden leftovers (``.tmp-step-*``...); the next save into the folder
removes them (``remove_leftovers``).

A run folder holds one run: ``runfolder`` refuses to start a new run over another one's checkpoints unless
asked (``overwrite=True``), and its lock file stops a second trainer in the same folder.

Where to read: ``layout`` (names, finding checkpoints, the ``latest`` pointer, tidying leftovers), ``save``
(the atomic write), ``verify`` (hashes, values, optimizer fit), ``load`` (checks, then weights and optimizer
state), ``trainstate`` (what the training loop adds, checked field by field), ``resume`` (how a run continues),
``runfolder`` (one run per folder, one trainer at a time).

Left out: sharded checkpoints of models that do not fit in one process, and asynchronous saving.
"""

from lmlab.checkpoint.layout import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    CheckpointWriteError,
    UnsafeCheckpointError,
    latest_checkpoint,
    list_checkpoints,
    model_spec_or_none,
    remove_leftovers,
    resolve_checkpoint,
    unwrap_model,
)
from lmlab.checkpoint.load import load_checkpoint, read_state, restore
from lmlab.checkpoint.resume import Resumed, resume_training
from lmlab.checkpoint.runfolder import RunLock, RunLockedError, claim_run_folder, holds_run
from lmlab.checkpoint.save import save_checkpoint
from lmlab.checkpoint.trainstate import run_fingerprints, training_state

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
    "resolve_checkpoint",
    "restore",
    "Resumed",
    "resume_training",
    "training_state",
    "run_fingerprints",
    "RunLock",
    "RunLockedError",
    "claim_run_folder",
    "holds_run",
]
