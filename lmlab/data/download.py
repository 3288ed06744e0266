"""Downloading one file with limits: a size cap, an overall deadline, capped zip extraction, atomic saves.

A mirror is someone else's server, and it may misbehave: stream forever, send one byte every few seconds,
announce a wrong length, or serve a small zip that expands to gigabytes. So every download here is
bounded three ways:

- size: at most ``max_bytes`` (the file's expected size; for a zip, its expected size plus ``ZIP_MARGIN``).
  A larger ``Content-Length`` is refused before the body is read; a body that runs past the cap is cut off.
- time: ``timeout`` seconds for the connection and for each read, and ``deadline`` seconds for the whole
  download: a watchdog timer shuts the socket down when the deadline passes, which ends a mirror that
  sends one byte every few seconds (each byte in time for the socket timeout) in the headers or the body.
- zip members: the uncompressed size the archive declares and the bytes actually read are both capped.

Downloads are held in memory (the course's corpora are a few MB), so the bytes that are hashed are the
bytes that are saved and returned. ``save_atomically`` writes a uniquely named ``.part`` file beside the
target and renames it into place; ``remove_stale_parts`` deletes the ones a killed process left behind.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import socket
import tempfile
import threading
import time
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_DEADLINE", "ZIP_MARGIN", "STALE_AFTER", "download", "read_member",
           "check_member_name", "save_atomically", "remove_stale_parts", "check_limits"]

DEFAULT_TIMEOUT = 30.0  # seconds to connect, and for each read
DEFAULT_DEADLINE = 300.0  # seconds for one whole download from one mirror (Tiny Shakespeare needs >= 4 KB/s)
ZIP_MARGIN = 10 * 2**20  # bytes a zip may exceed its recorded size by (10 MiB): archives are re-packed
STALE_AFTER = 60.0  # seconds after which a .part file is a leftover: writing one takes well under a second
MAX_SECONDS = 86_400  # a day: the longest timeout or deadline accepted
BLOCK = 1 << 16


def check_limits(timeout: float, deadline: float, max_bytes: int | None = None) -> None:
    """``TypeError``/``ValueError`` unless timeout and deadline are seconds in (0, MAX_SECONDS] and max_bytes
    a positive int (or None)."""
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
        if not 0 < value <= MAX_SECONDS:  # also False for NaN
            raise ValueError(f"{name}={value!r} must be a positive number of seconds, at most {MAX_SECONDS:,} "
                             f"(e.g. {name}=60)")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)):
        raise TypeError(f"max_bytes must be an int (bytes) or None for the expected size, got "
                        f"{type(max_bytes).__name__}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes={max_bytes!r} must be a positive int (bytes), or None for the expected size")


class _Watchdog:
    """Shuts a connection's socket down when the deadline passes: any read waiting on it ends at once,
    whether the server is dripping the headers or the body."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.expired = False
        self.timers: list[threading.Timer] = []

    def watch(self, sock: socket.socket) -> None:
        def fire() -> None:
            self.expired = True
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP socket, also under TLS
            except OSError:
                pass  # closed already

        timer = threading.Timer(max(0.0, self.end - time.monotonic()), fire)
        timer.daemon = True
        timer.start()
        self.timers.append(timer)

    def cancel(self) -> None:
        for timer in self.timers:
            timer.cancel()


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib's usual opener (proxies from the environment, redirects, HTTPS), with every connection it
    opens handed to ``watchdog``."""

    class Watched:
        def do_open(self, http_class, req, **kw):  # urllib calls this with the connection class to use
            class Connection(http_class):
                def connect(self) -> None:
                    super().connect()
                    watchdog.watch(self.sock)

            return super().do_open(Connection, req, **kw)  # type: ignore[misc]

    class HTTP(Watched, urllib.request.HTTPHandler):
        pass

    class HTTPS(Watched, urllib.request.HTTPSHandler):
        pass

    return urllib.request.build_opener(HTTP, HTTPS)


def download(url: str, *, max_bytes: int, timeout: float = DEFAULT_TIMEOUT,
             deadline: float = DEFAULT_DEADLINE) -> bytes:
    """The body at ``url``: at most ``max_bytes`` bytes, received within ``deadline`` seconds.

    Raises ``OSError`` (the mirror failed: too big, too slow, truncated, HTTP error, no connection);
    ``TimeoutError`` (an ``OSError``) when the deadline passed.

    Example: download("https://example.org/input.txt", max_bytes=1_115_394) -> b"First Citizen:..."
    """
    watchdog = _Watchdog(deadline)
    too_slow = (f"gave up after the {deadline:g} s deadline; the mirror is too slow "
                "(pass a larger deadline= to wait longer)")
    try:
        with _opener(watchdog).open(url, timeout=min(timeout, deadline)) as resp:
            body = _read_body(resp, max_bytes, watchdog)
    except (OSError, ValueError, http.client.HTTPException) as e:  # a shut socket fails in many ways
        if watchdog.expired:
            raise TimeoutError(too_slow) from e
        if isinstance(e, OSError):
            raise
        raise OSError(f"bad HTTP response ({type(e).__name__}: {e})") from e
    finally:
        watchdog.cancel()
    if watchdog.expired:
        raise TimeoutError(too_slow)
    return body


def _read_body(resp, max_bytes: int, watchdog: _Watchdog) -> bytes:
    """Read a response body, refusing it unread when it announces more than ``max_bytes``."""
    announced = resp.headers.get("Content-Length")
    announced = int(announced) if announced is not None and re.fullmatch(r"\s*[0-9]+\s*", announced) else None
    if announced is not None and announced > max_bytes:
        raise OSError(f"the server announces {announced:,} bytes, more than the {max_bytes:,} expected; "
                      "not downloaded (a wrong file or a broken mirror)")
    read = getattr(resp, "read1", resp.read)  # read1: returns as soon as some bytes arrive
    chunks: list[bytes] = []
    n = 0
    while time.monotonic() < watchdog.end:  # also for file:// URLs, which have no socket to watch
        block = read(min(BLOCK, max_bytes + 1 - n))  # one byte past the cap is enough to know
        if not block:
            break
        n += len(block)
        if n > max_bytes:
            raise OSError(f"stopped after {n:,} bytes: more than the {max_bytes:,} expected (the mirror sends "
                          "a wrong file, or never stops)")
        chunks.append(block)
    else:
        watchdog.expired = True
    if announced is not None and n != announced and not watchdog.expired:
        raise OSError(f"truncated download: got {n:,} of {announced:,} bytes")
    return b"".join(chunks)


def check_member_name(member: str) -> None:
    """Refuse zip member names that would escape a folder (absolute paths, drives, ``..``)."""
    posix, win = PurePosixPath(member), PureWindowsPath(member)
    if posix.is_absolute() or win.is_absolute() or win.drive or ".." in posix.parts or ".." in win.parts:
        raise ValueError(
            f"refusing zip member {member!r}: its path escapes the target folder (absolute path or '..'); "
            "the archive is malformed or malicious - get the file from another mirror"
        )


def _find_member(zf: zipfile.ZipFile, member: str) -> zipfile.ZipInfo:
    """The member named exactly ``member`` or else the only one with its base name."""
    names = zf.namelist()
    if member in names:
        return zf.getinfo(member)
    base = PurePosixPath(member).name
    candidates = [n for n in names if PurePosixPath(n.replace("\\", "/")).name == base]
    if len(candidates) != 1:
        raise ValueError(f"the zip has no single member named {member!r}; it holds: {names[:10]}")
    return zf.getinfo(candidates[0])


def read_member(archive: bytes, member: str, *, max_bytes: int) -> bytes:
    """The uncompressed bytes of one member of a zip archive held in memory, at most ``max_bytes``.

    The member is found by its exact name or else as the only member with that base name. Refused with
    ``ValueError``: names that are absolute or contain ``..``, a member that declares more than
    ``max_bytes`` uncompressed (a zip bomb: nothing is decompressed), and one that yields more than
    it declared. ``zipfile.BadZipFile`` for a damaged archive (wrong CRC, bad compressed data, unknown
    format version or compression, encryption).

    Example: read_member(zip_bytes, "SMSSpamCollection", max_bytes=477_907) -> b"ham\tGo until jurong..."
    """
    check_member_name(member)
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            info = _find_member(zf, member)
            check_member_name(info.filename)
            if info.file_size > max_bytes:
                raise ValueError(f"zip member {info.filename!r} declares {info.file_size:,} bytes uncompressed, "
                                 f"more than the {max_bytes:,} expected; not extracted (a zip bomb or the wrong "
                                 "archive)")
            out = io.BytesIO()
            with zf.open(info) as src:
                for block in iter(lambda: src.read(BLOCK), b""):
                    if out.tell() + len(block) > max_bytes:  # stop before writing past the cap
                        raise ValueError(f"zip member {info.filename!r} expands past {max_bytes:,} bytes; "
                                         "extraction stopped (the archive is damaged or malicious)")
                    out.write(block)
    except (NotImplementedError, RuntimeError, EOFError, OverflowError, zlib.error) as e:
        raise zipfile.BadZipFile(f"cannot read zip member {member!r} ({type(e).__name__}: {e})") from e
    return out.getvalue()


def save_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a uniquely named ``.part`` file renamed into place, so readers see
    the old file or the new one, never half of one, and parallel writers do not clobber each other."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_parts(folder: Path, filename: str, older_than: float = STALE_AFTER) -> list[Path]:
    """Delete ``.<filename>.*.part`` (and older versions' ``.member``) files in ``folder`` not modified for
    ``older_than`` seconds: leftovers of a process killed while downloading. Younger ones may belong to a
    download running now and stay. Returns what was deleted."""
    removed = []
    now = time.time()
    for pattern in (f".{filename}.*.part", f".{filename}.*.member"):
        for p in folder.glob(pattern):
            try:
                if now - p.lstat().st_mtime > older_than:
                    p.unlink()
                    removed.append(p)
            except OSError:  # gone already, or a read-only folder: nothing to do
                pass
    return removed
