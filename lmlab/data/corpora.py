"""Real text corpora: a small registry, a downloader that checks SHA-256, a cache, and loaders.

Files live in ``<data_dir>/<corpus>/<filename>``, for example ``<data_dir>/tinyshakespeare/input.txt``.
``data_dir()`` is the ``LMLAB_DATA_DIR`` environment variable when it is set, else a per-user cache folder.

``fetch(name)`` returns the cached file when its SHA-256 matches the registry, without touching the
network. Otherwise it tries each mirror in order: it downloads into memory (at most the expected size,
within a deadline: ``lmlab.data.download``), checks the SHA-256 (for a zip: of the one member it needs,
extracted with a cap) and only then saves the file (a ``.part`` file renamed into place), so a
half-written or wrong file is never served. ``read_corpus(name)`` returns the bytes themselves: the very
bytes that were hashed, so a file replaced after the check cannot slip through; the loaders use it.

Offline machines: run ``lmlab data download --all --to DIR`` on a machine with internet, copy DIR over
and set ``LMLAB_DATA_DIR=DIR``. ``verify(DIR)`` checks such a folder.

What this module does not do: resume partial downloads, use proxies beyond what ``urllib`` picks up from
the environment (``https_proxy``), or decompress anything other than a plain zip member.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from collections.abc import MutableMapping
from pathlib import Path
from typing import NamedTuple

from lmlab.data.download import (
    DEFAULT_DEADLINE,
    DEFAULT_TIMEOUT,
    ZIP_MARGIN,
    check_limits,
    download,
    read_member,
    remove_stale_parts,
    save_atomically,
)

ENV_VAR = "LMLAB_DATA_DIR"


@dataclass(frozen=True)
class Corpus:
    """One entry of the registry: where a corpus file comes from and how to recognise it."""

    name: str  # folder name under data_dir(), and the name fetch() takes
    filename: str  # file name inside that folder
    sha256: str  # of the final file (for zips: of the extracted member)
    size: int  # bytes of the final file
    urls: tuple[str, ...]  # mirrors, tried in order
    description: str
    licence: str
    citation: str
    zip_member: str | None = None  # when the download is a zip: the member to extract
    download_size: int | None = None  # bytes of the download: the file itself, or the zip (not pinned)


CORPORA: dict[str, Corpus] = {
    "tinyshakespeare": Corpus(
        name="tinyshakespeare",
        filename="input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1_115_394,
        urls=(
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            # The TensorFlow text-generation tutorial's copy (same text); the hash check decides.
            "https://storage.googleapis.com/download.tensorflow.org/data/shakespeare.txt",
        ),
        description="Tiny Shakespeare: 40,000 lines of Shakespeare's plays (ASCII), as used by char-rnn and nanoGPT",
        licence="public domain text",
        citation="Andrej Karpathy, char-rnn (2015), data/tinyshakespeare/input.txt",
        download_size=1_115_394,
    ),
    "sms_spam": Corpus(
        name="sms_spam",
        filename="SMSSpamCollection",
        sha256="7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
        size=477_907,
        urls=("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",),
        description="UCI SMS Spam Collection v.1: 5,574 SMS messages, 'label<TAB>text', 4,827 ham and 747 spam",
        licence="CC BY 4.0",
        citation=(
            "T. A. Almeida, J. M. Gómez Hidalgo and A. Yamakami, "
            '"Contributions to the Study of SMS Spam Filtering: New Collection and Results", DocEng 2011'
        ),
        zip_member="SMSSpamCollection",
        # about 0.2 MB: the member deflates to ~207 KB, plus a readme. Mirrors may re-pack the zip (only the
        # member's SHA-256 is pinned), so a zip may be up to ZIP_MARGIN larger.
        download_size=210_000,
    ),
}


class DownloadError(OSError):
    """No mirror gave a file with the expected SHA-256. ``failures`` lists (url, reason) pairs."""

    def __init__(self, message: str, failures: list[tuple[str, str]]):
        super().__init__(message)
        self.failures = failures


class VerifyResult(NamedTuple):
    """Outcome of checking one corpus file in a data folder."""

    name: str
    path: Path
    ok: bool
    reason: str  # "ok", "missing", or what was wrong


def data_dir() -> Path:
    """The folder that holds corpora: ``$LMLAB_DATA_DIR`` if set, else the user cache dir (``.../lmlab``).

    Example:
        >>> os.environ["LMLAB_DATA_DIR"] = "/data/lmlab"; data_dir()
        PosixPath('/data/lmlab')
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("lmlab"))


def offline_env(data_folder: str | os.PathLike, env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Settings for working offline from a local copy of the corpora (tests, notebook runs, benchmarks):
    ``LMLAB_DATA_DIR=data_folder`` unless it is already set (and only when the folder exists), no progress bars
    (``LMLAB_PROGRESS=0``) and Hugging Face offline (``HF_HUB_OFFLINE=1``) unless set otherwise.

    Changes ``env`` (default ``os.environ``) in place and returns it, so ``offline_env(folder, dict(os.environ))``
    gives the environment of a child process.

    Example: offline_env("/srv/lmlab-data") -> LMLAB_DATA_DIR=/srv/lmlab-data, LMLAB_PROGRESS=0, HF_HUB_OFFLINE=1
    """
    env = os.environ if env is None else env
    if ENV_VAR not in env and Path(data_folder).is_dir():
        env[ENV_VAR] = str(data_folder)
    env.setdefault("LMLAB_PROGRESS", "0")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


_default_data_dir = data_dir  # fetch() and friends take an argument named data_dir that hides this function


def _corpus(name: str) -> Corpus:
    if not isinstance(name, str):
        raise TypeError(f"corpus name must be a string, got {type(name).__name__}")
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file as a hex string, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def corpus_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Where corpus ``name`` lives (or would live) under ``folder`` (default: ``data_dir()``)."""
    c = _corpus(name)
    return Path(folder if folder is not None else data_dir()) / c.name / c.filename


def default_max_bytes(c: Corpus) -> int:
    """The most bytes a download of ``c`` may have: its size, or for a zip its ``download_size`` plus
    ``ZIP_MARGIN``. Example: default_max_bytes(CORPORA["tinyshakespeare"]) -> 1115394"""
    if c.zip_member is None:
        return c.size
    return (c.download_size or c.size) + ZIP_MARGIN


def _cached_bytes(path: Path, c: Corpus) -> tuple[bytes | None, str]:
    """The bytes of the cached file when their SHA-256 matches (read once: the bytes checked are the bytes
    returned), else None and why it was not used."""
    try:
        with open(path, "rb") as f:
            data = f.read(c.size + 1)  # a file larger than expected is wrong: never read all of it
    except FileNotFoundError:
        return None, ""
    except OSError as e:
        return None, f"The cached file {path} could not be read ({e}); it was not used. "
    actual = hashlib.sha256(data).hexdigest()
    if actual == c.sha256:
        return data, ""
    what = f"has sha256 {actual}" if len(data) <= c.size else f"is larger than {c.size:,} bytes"
    return None, (f"The cached file {path} {what}, expected sha256 {c.sha256}; it was not used "
                  "(delete it or let a download replace it). ")


def _download_verified(c: Corpus, url: str, timeout: float, deadline: float, max_bytes: int) -> bytes:
    """The corpus file from one mirror, checked; OSError or ValueError says what was wrong."""
    data = download(url, max_bytes=max_bytes, timeout=timeout, deadline=deadline)
    if c.zip_member is not None:
        try:
            data = read_member(data, c.zip_member, max_bytes=c.size)  # the member is exactly c.size bytes
        except zipfile.BadZipFile as e:
            raise OSError(f"not a valid zip archive ({e})") from e
    actual = hashlib.sha256(data).hexdigest()
    if actual != c.sha256:
        raise OSError(
            f"sha256 mismatch for {c.filename}: expected {c.sha256}, got {actual} ({len(data)} bytes, "
            f"expected {c.size}); the download was not saved"
        )
    return data


def _offline_help(c: Corpus, path: Path) -> str:
    return (
        f"The file is expected at {path} (file name {c.filename!r} in folder {c.name!r} of the data folder; "
        f"the data folder is ${ENV_VAR} when set, else the user cache). To work offline: on a machine with "
        "internet run `lmlab data download --all --to DIR`, copy DIR to this machine and set "
        f"{ENV_VAR}=DIR (check it with `lmlab data verify DIR`)."
    )


def _get(name: str, data_dir: str | os.PathLike | None, urls: list[str] | tuple[str, ...] | None,
         timeout: float, deadline: float, max_bytes: int | None) -> tuple[Path, bytes]:
    """The cached or downloaded corpus file: its path and its verified bytes."""
    c = _corpus(name)
    check_limits(timeout, deadline, max_bytes)
    root = Path(data_dir) if data_dir is not None else _default_data_dir()
    path = root / c.name / c.filename
    if path.parent.is_dir():
        remove_stale_parts(path.parent, c.filename)
    data, stale = _cached_bytes(path, c)
    if data is not None:
        return path, data
    created = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(
            f"cannot create the data folder {path.parent} ({e}); point {ENV_VAR} to a writable folder. "
            + _offline_help(c, path)
        ) from e
    failures: list[tuple[str, str]] = []
    for url in tuple(urls) if urls is not None else c.urls:
        try:
            data = _download_verified(c, url, timeout, deadline, max_bytes or default_max_bytes(c))
        except (OSError, ValueError) as e:  # URLError, HTTPError and TimeoutError are OSErrors
            failures.append((url, str(e)))
            continue
        try:
            save_atomically(path, data)
        except OSError as e:
            raise OSError(f"cannot save the downloaded {c.filename} to {path} ({e}); point {ENV_VAR} to a "
                          "writable folder with free space") from e
        return path, data
    if created and not any(path.parent.iterdir()):
        path.parent.rmdir()  # leave no empty folder behind after a failed first download
    tried = "\n".join(f"  - {u}: {r}" for u, r in failures) or "  (no URLs given)"
    raise DownloadError(
        f"could not get corpus {name!r}; tried:\n{tried}\n{stale}{_offline_help(c, path)}", failures
    )


def fetch(name: str, *, data_dir: str | os.PathLike | None = None, urls: list[str] | tuple[str, ...] | None = None,
          timeout: float = DEFAULT_TIMEOUT, deadline: float = DEFAULT_DEADLINE, max_bytes: int | None = None) -> Path:
    """Return the path of corpus ``name``, downloading it first if it is missing or damaged.

    Args:
        name: a key of ``CORPORA``.
        data_dir: the data folder (default: ``lmlab.data.data_dir()``).
        urls: mirrors to try instead of the registry's (for a local copy or a test server).
        timeout: seconds to wait for the connection and for each read.
        deadline: seconds one mirror may take for the whole download; then the next one is tried.
        max_bytes: the most bytes a download may have (default: the file's size; for a zip, its
            ``download_size`` plus ``ZIP_MARGIN``). A larger ``Content-Length`` is refused unread.

    A cached file is used only when its SHA-256 matches. A download that is too large, too slow, or
    has the wrong SHA-256 is dropped and the next mirror is tried; if none works, ``DownloadError``
    lists each URL with its reason and says how to get the file offline. To read the file, prefer
    ``read_corpus``: a file can be replaced between this check and a later read.

    Example:
        >>> fetch("tinyshakespeare")
        PosixPath('/home/me/.cache/lmlab/tinyshakespeare/input.txt')
    """
    return _get(name, data_dir, urls, timeout, deadline, max_bytes)[0]


def read_corpus(name: str, *, data_dir: str | os.PathLike | None = None,
                urls: list[str] | tuple[str, ...] | None = None, timeout: float = DEFAULT_TIMEOUT,
                deadline: float = DEFAULT_DEADLINE, max_bytes: int | None = None) -> bytes:
    """The bytes of corpus ``name``, fetched as ``fetch`` does (same arguments): the very bytes whose
    SHA-256 was checked, never a second read of the file.

    Example: len(read_corpus("tinyshakespeare")) -> 1115394
    """
    return _get(name, data_dir, urls, timeout, deadline, max_bytes)[1]


def download_all(
    to: str | os.PathLike,
    *,
    names: list[str] | None = None,
    mirrors: dict[str, list[str]] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
) -> list[Path]:
    """Fetch every corpus (or those in ``names``) into the folder ``to``; return their paths.

    ``mirrors`` maps a corpus name to URLs used instead of the registry's. This backs
    ``lmlab data download --all --to DIR``: the folder can then be copied to an offline machine and
    used with ``LMLAB_DATA_DIR=DIR``. Files already there with the right SHA-256 are not downloaded.
    ``timeout`` and ``deadline`` are as in ``fetch``.
    """
    names = names if names is not None else list(CORPORA)
    for n in list(names) + list(mirrors or {}):
        _corpus(n)
    return [fetch(n, data_dir=to, urls=(mirrors or {}).get(n), timeout=timeout, deadline=deadline) for n in names]


def verify(folder: str | os.PathLike | None = None) -> list[VerifyResult]:
    """Check every registered corpus in ``folder`` (default: ``data_dir()``) against its SHA-256.

    Never downloads. Backs ``lmlab data verify [DIR]``.

    Example: [r.ok for r in verify("/data/lmlab")] -> [True, True]
    """
    results = []
    for name in CORPORA:
        c = CORPORA[name]
        path = corpus_path(name, folder)
        if not path.is_file():
            results.append(VerifyResult(name, path, False, "missing"))
            continue
        actual = sha256_file(path)
        if actual == c.sha256:
            results.append(VerifyResult(name, path, True, "ok"))
        else:
            results.append(VerifyResult(name, path, False, f"sha256 mismatch: expected {c.sha256}, got {actual}"))
    return results


def load_text(name: str = "tinyshakespeare", *, data_dir: str | os.PathLike | None = None) -> str:
    """The whole text of a plain-text corpus, fetched (or read from the cache) first.

    Example: len(load_text("tinyshakespeare")) -> 1115394 (the file is ASCII: characters = bytes)
    """
    c = _corpus(name)
    if c.name == "sms_spam":
        raise ValueError("'sms_spam' is a labelled collection, not one text; use load_sms_spam()")
    return read_corpus(name, data_dir=data_dir).decode("utf-8")


class SMSSpam(NamedTuple):
    """The SMS Spam Collection as two parallel lists. ``labels[i]`` is 1 for spam, 0 for ham."""

    texts: list[str]
    labels: list[int]
    label_names: tuple[str, str] = ("ham", "spam")


def load_sms_spam(*, data_dir: str | os.PathLike | None = None) -> SMSSpam:
    """The 5,574 messages of the SMS Spam Collection (4,827 ham, 747 spam), in file order.

    Example:
        >>> ds = load_sms_spam()
        >>> len(ds.texts), sum(ds.labels), ds.label_names[ds.labels[2]]
        (5574, 747, 'spam')
    """
    path, data = _get("sms_spam", data_dir, None, DEFAULT_TIMEOUT, DEFAULT_DEADLINE, None)
    texts, labels = [], []
    for lineno, line in enumerate(data.decode("utf-8").split("\n"), start=1):
        if not line:
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in ("ham", "spam"):
            raise ValueError(f"{path}:{lineno}: expected 'ham<TAB>text' or 'spam<TAB>text', got {line[:40]!r}")
        texts.append(text)
        labels.append(1 if label == "spam" else 0)
    return SMSSpam(texts, labels)
