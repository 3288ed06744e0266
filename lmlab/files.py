"""Writing files so that a crash never leaves half of one: write a temporary file next to the target, then
rename it over the target (a rename within one file system is atomic, so readers see the old file or the
new one, never a mix).

``fsync=True`` also flushes the file and then the folder's entry to disk, so the new file survives a power
cut, not only a killed process; checkpoints use it. ``fsync_file`` and ``fsync_dir`` are the two flushes.

Example:
    >>> atomic_write_json("runs/demo/history.json", {"steps": [10, 20]})   # doctest: +SKIP

Left out: locking (two processes writing the same file at once both succeed; the last rename wins).
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


def atomic_write(path: str | os.PathLike, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path.

    On any error the temporary file is removed and the error raised: ``path`` keeps its old contents.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
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
