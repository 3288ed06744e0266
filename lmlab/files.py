"""Writing files so that a crash never leaves half of one: write a temporary file next to the target, then
rename it over the target (a rename within one file system is atomic, so readers see the old file or the
new one, never a mix).

``fsync=True`` also flushes the file and then the folder's entry to disk, so the new file survives a power
cut, not only a killed process; checkpoints use it. ``fsync_file`` and ``fsync_dir`` are the two flushes.

Example:
    >>> atomic_write_json("runs/demo/history.json", {"steps": [10, 20]})   # doctest: +SKIP

Left out: locking (two processes writing the same file at once both succeed; the last rename wins; a
training run's folder is locked by ``lmlab.checkpoint.RunLock``).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_json", "fsync_file", "fsync_dir", "temporary_name"]


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's contents to disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str | os.PathLike) -> None:
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


def temporary_name(path: Path) -> Path:
    """A hidden, unique name next to ``path`` for writing it. Example: runs/latest -> runs/.latest.tmp-1f2e3d4c"""
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def _create_new(path: Path) -> tuple[int, Path]:
    """Open a new file at a fresh ``temporary_name(path)`` for writing; returns (file descriptor, name).

    ``O_EXCL`` makes the open fail if anything exists at that name -- a file, or a symbolic link someone
    planted there hoping we would write through it -- and then another name is tried. (The mode 0o666 is
    narrowed by the umask, as for any new file.)
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = temporary_name(path)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {path}: every name tried was taken")


def atomic_write(path: str | os.PathLike, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path.

    The temporary file is always a new file (never an existing one, nor the target of a link planted at
    its name). On any error it is removed and the error raised: ``path`` keeps its old contents.
    """
    path = Path(path)
    fd, tmp = _create_new(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        if fsync:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int | None = None,
                      ensure_ascii: bool = True, fsync: bool = False) -> Path:
    """Write ``data`` as JSON (and a final newline) to ``path`` atomically. Raises TypeError, before
    anything is written, when ``data`` is not JSON data."""
    text = json.dumps(data, indent=indent, ensure_ascii=ensure_ascii) + "\n"
    return atomic_write(path, text, fsync=fsync)
