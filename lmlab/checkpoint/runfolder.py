"""A run folder belongs to one run: a finished run is never overwritten unless asked, and one trainer at a time
uses the folder.

``claim_run_folder`` is what ``lmlab.train`` does first: it refuses to start a new run (``resume=False``) in a
folder that holds the checkpoints of another one, unless ``overwrite=True`` (which deletes them), and it takes
the folder's lock for as long as the run lasts.

The lock is a file, ``.lock``, holding the process id of the trainer that uses the folder. Two processes
saving into one folder would delete each other's checkpoints, so a second trainer is stopped with a message
that names the first. (The ``lmlab train`` command locks its run folder the same way.)

A process killed with SIGKILL (or a machine that lost power) cannot remove its lock: a lock whose process is
no longer running on this machine is *stale* and is taken over. A lock written on another machine (a shared
network folder) cannot be checked that way; the message then says which machine holds it and that the file
may be deleted by hand once no trainer runs there.

The lock file is created with ``O_EXCL`` (the create fails when it exists), so of two trainers starting at
once exactly one gets it. Left out: a stale lock taken over by two trainers at the same instant (both
removed it before either created a new one) is not detected.

Example:
    >>> with RunLock("runs/demo"):     # doctest: +SKIP
    ...     train_and_save()
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmlab.checkpoint.layout import LATEST_FILE, OLD_DIR, delete_checkpoint, latest_checkpoint, remove_leftovers, step_of

__all__ = ["LOCK_FILE", "RunLock", "RunLockedError", "holds_run", "clear_run", "claim_run_folder"]

LOCK_FILE = ".lock"
YOUNG = 60.0  # seconds: an empty or unreadable lock this young is being written, not stale


class RunLockedError(RuntimeError):
    """Another training process holds the run folder's lock."""


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (POSIX); elsewhere assume it does."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows: never call it there
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


class RunLock:
    """The lock of the run folder ``folder``: ``acquire`` (or ``with RunLock(folder):``) takes it, ``release``
    removes it.

    Raises (from ``acquire``):
        RunLockedError: another process that is still running (or one on another machine) holds it.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        """Create the lock file with this process's id; take over a stale one; refuse a live one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_or_refuse()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise RunLockedError(f"could not take the lock {self.path}: it keeps coming back; is another trainer starting?")

    def release(self) -> None:
        """Remove the lock file if this object took it."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def _take_over_or_refuse(self) -> None:
        """Remove a stale lock (its process has ended); raise RunLockedError for a live one."""
        holder = self._holder()
        if holder is None:  # empty or damaged: being written right now, or left by a crash long ago
            try:
                young = time.time() - self.path.stat().st_mtime < YOUNG
            except FileNotFoundError:
                return  # released meanwhile: try again
            if young:
                raise RunLockedError(f"another training process is starting in {self.folder} (its lock file "
                                     f"{self.path} is being written); wait for it to finish or use another folder")
        elif holder["host"] != socket.gethostname():
            raise RunLockedError(
                f"a training process on the machine {holder['host']!r} (pid {holder['pid']}, started "
                f"{holder.get('started', '?')}) is using {self.folder}; wait for it to finish or use another "
                f"folder. If no trainer runs there any more, delete {self.path}"
            )
        elif _alive(holder["pid"]):
            raise RunLockedError(
                f"another training process (pid {holder['pid']}) is using {self.folder}; wait for it to finish or "
                f"use another checkpoint_dir (--out). It started at {holder.get('started', '?')}; if that process "
                f"is not a trainer (its id was reused), delete {self.path}"
            )
        self.path.unlink(missing_ok=True)  # stale: its process has ended

    def _holder(self) -> dict[str, Any] | None:
        """The lock file's ``{"pid": int, "host": str, ...}``, or None when it is empty, damaged or gone."""
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read(4096).decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        ok = isinstance(data, dict) and type(data.get("pid")) is int and data["pid"] > 0 \
            and isinstance(data.get("host"), str)
        return data if ok else None


def holds_run(directory: str | os.PathLike) -> str | None:
    """The name of the latest checkpoint in ``directory`` (``"step-000300"``), or None when it holds none.
    (A re-save cut short by a kill, ``.old-step-*``, counts: the next save puts it back.)"""
    directory = Path(directory)
    latest = latest_checkpoint(directory)
    if latest is not None:
        return latest.name
    if directory.is_dir():
        for p in directory.iterdir():
            old = OLD_DIR.match(p.name)
            if old:
                return old.group(1)
    return None


def clear_run(directory: str | os.PathLike) -> None:
    """Delete the checkpoints of ``directory`` (every ``step-*`` folder, the ``latest`` file, leftovers)."""
    directory = Path(directory)
    remove_leftovers(directory)
    for p in directory.iterdir():
        if step_of(p) is not None and p.is_dir():
            delete_checkpoint(p)
    (directory / LATEST_FILE).unlink(missing_ok=True)


def _continues_this_folder(resume: Any, directory: Path) -> bool:
    """``resume`` continues the run in ``directory``: True, or a checkpoint inside it (a rewind)."""
    if resume is True:
        return True
    if resume is False or resume is None:
        return False
    path, home = Path(resume).resolve(), directory.resolve()
    return path == home or home in path.parents


@contextmanager
def claim_run_folder(directory: str | None, resume: Any, overwrite: bool, main: bool = True) -> Iterator[None]:
    """Hold the lock of the checkpoint folder ``directory`` while the body runs; before that, refuse to start a
    new run where another one is (unless ``overwrite``, which deletes its checkpoints). ``main``: whether this
    process writes the checkpoints (rank 0); the others only check the arguments.

    Raises:
        ValueError: ``overwrite=True`` together with ``resume``.
        FileExistsError: ``directory`` holds a run and this one neither continues it nor overwrites it.
        RunLockedError: another trainer uses ``directory``.
    """
    if overwrite and resume not in (False, None):
        raise ValueError("overwrite=True starts a new run; it cannot be combined with resume=... (pass resume=True "
                         "alone to continue the run in checkpoint_dir)")
    if directory is None or not main:
        yield
        return
    with RunLock(directory):
        existing = holds_run(directory)
        if existing is not None and not overwrite and not _continues_this_folder(resume, Path(directory)):
            raise FileExistsError(
                f"{directory} already holds a run (latest checkpoint {existing}); pass resume=True to continue it, "
                "overwrite=True to replace it (its checkpoints are deleted), or another checkpoint_dir"
            )
        if existing is not None and overwrite:
            clear_run(directory)
        yield
