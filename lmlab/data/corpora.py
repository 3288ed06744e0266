"""Real text corpora: a small registry, a downloader that checks SHA-256, a cache, and loaders.

Files live in ``<data_dir>/<corpus>/<filename>``, for example ``<data_dir>/tinyshakespeare/input.txt``.
``data_dir()`` is the ``LMLAB_DATA_DIR`` environment variable when it is set, else a per-user cache folder.

``fetch(name)`` returns the cached file when its SHA-256 matches the registry, without touching the
network. Otherwise it tries each mirror in order: it downloads into a temporary file in the same folder,
checks the size and SHA-256 (for a zip: of the one member it needs, extracted), and only then moves the
file into place with ``os.replace``, so a half-written or wrong file is never served.

Offline machines: run ``lmlab data download --all --to DIR`` on a machine with internet, copy DIR over
and set ``LMLAB_DATA_DIR=DIR``. ``verify(DIR)`` checks such a folder.

What this module does not do: resume partial downloads, use proxies beyond what ``urllib`` picks up from
the environment (``https_proxy``), or decompress anything other than a plain zip member.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from collections.abc import MutableMapping
from typing import NamedTuple

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


def _check_member_name(member: str) -> None:
    """Refuse zip member names that would escape the target folder (absolute paths, drives, ``..``)."""
    posix, win = PurePosixPath(member), PureWindowsPath(member)
    if posix.is_absolute() or win.is_absolute() or win.drive or ".." in posix.parts or ".." in win.parts:
        raise ValueError(
            f"refusing zip member {member!r}: its path escapes the target folder (absolute path or '..'); "
            "the archive is malformed or malicious - get the file from another mirror"
        )


def extract_member(zip_path: str | os.PathLike, member: str, dest: str | os.PathLike) -> Path:
    """Extract one member of a zip archive to the file ``dest`` (only that member, nothing else).

    The member is found by its exact name or, if that is absent, by being the only member whose
    base name equals ``member``'s. Names that are absolute or contain ``..`` are refused with a
    ``ValueError`` even though the bytes are written to ``dest`` and never to the member's own path.

    Example: extract_member("sms.zip", "SMSSpamCollection", "data/sms_spam/SMSSpamCollection.part")
    """
    _check_member_name(member)
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        if member in names:
            found = member
        else:
            base = PurePosixPath(member).name
            candidates = [n for n in names if PurePosixPath(n.replace("\\", "/")).name == base]
            if len(candidates) != 1:
                raise ValueError(
                    f"zip {os.fspath(zip_path)!r} has no single member named {member!r}; it holds: {names[:10]}"
                )
            found = candidates[0]
        _check_member_name(found)
        with zf.open(found) as src, open(dest, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)
    return Path(dest)


def _download(url: str, dest: Path, timeout: float) -> None:
    """Download ``url`` to ``dest``; raise OSError if the body is shorter than Content-Length."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
        expected = resp.headers.get("Content-Length")
        n = 0
        for block in iter(lambda: resp.read(1 << 16), b""):
            out.write(block)
            n += len(block)
    if expected is not None and n != int(expected):
        raise OSError(f"truncated download: got {n} of {int(expected)} bytes")


def _offline_help(c: Corpus, path: Path) -> str:
    return (
        f"The file is expected at {path} (file name {c.filename!r} in folder {c.name!r} of the data folder; "
        f"the data folder is ${ENV_VAR} when set, else the user cache). To work offline: on a machine with "
        "internet run `lmlab data download --all --to DIR`, copy DIR to this machine and set "
        f"{ENV_VAR}=DIR (check it with `lmlab data verify DIR`)."
    )


def fetch(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    urls: list[str] | tuple[str, ...] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Return the path of corpus ``name``, downloading it first if it is missing or damaged.

    Args:
        name: a key of ``CORPORA``.
        data_dir: the data folder (default: ``lmlab.data.data_dir()``).
        urls: mirrors to try instead of the registry's (for a local copy or a test server).
        timeout: seconds to wait on each connection.

    A cached file is served only when its SHA-256 matches. A download whose SHA-256 (or size) is wrong
    is deleted and the next mirror is tried; if none works, ``DownloadError`` lists each URL with its
    reason and says how to get the file offline.

    Example:
        >>> fetch("tinyshakespeare")
        PosixPath('/home/me/.cache/lmlab/tinyshakespeare/input.txt')
    """
    c = _corpus(name)
    root = Path(data_dir) if data_dir is not None else _default_data_dir()
    path = root / c.name / c.filename
    failures: list[tuple[str, str]] = []
    stale = ""
    if path.is_file():
        actual = sha256_file(path)
        if actual == c.sha256:
            return path
        stale = (
            f"The cached file {path} has sha256 {actual}, expected {c.sha256}; it was not used "
            "(delete it or let a download replace it). "
        )
    created = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(
            f"cannot create the data folder {path.parent} ({e}); point {ENV_VAR} to a writable folder. "
            + _offline_help(c, path)
        ) from e
    mirrors = tuple(urls) if urls is not None else c.urls
    for url in mirrors:
        try:
            _download_verified(c, url, path, timeout)
            return path
        except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors
            failures.append((url, str(e)))
    if created and not any(path.parent.iterdir()):
        path.parent.rmdir()  # leave no empty folder behind after a failed first download
    tried = "\n".join(f"  - {u}: {r}" for u, r in failures) or "  (no URLs given)"
    raise DownloadError(
        f"could not get corpus {name!r}; tried:\n{tried}\n{stale}{_offline_help(c, path)}", failures
    )


def _download_verified(c: Corpus, url: str, path: Path, timeout: float) -> None:
    """Download ``url`` into a temporary file next to ``path`` (for a zip: extract the member), check its
    SHA-256, and only then move it to ``path``. Raises OSError saying what was wrong; leaves no temporary file."""
    tmp_download = tmp_file = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{c.filename}.", suffix=".part")
        os.close(fd)
        tmp_download = Path(tmp)
        _download(url, tmp_download, timeout)
        if c.zip_member is not None:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{c.filename}.", suffix=".member")
            os.close(fd)
            tmp_file = Path(tmp)
            try:
                extract_member(tmp_download, c.zip_member, tmp_file)
            except zipfile.BadZipFile as e:
                raise OSError(f"not a valid zip archive ({e})") from e
        else:
            tmp_file = tmp_download
        actual = sha256_file(tmp_file)
        if actual != c.sha256:
            size = tmp_file.stat().st_size
            raise OSError(
                f"sha256 mismatch for {c.filename}: expected {c.sha256}, got {actual} ({size} bytes, "
                f"expected {c.size}); the download was deleted"
            )
        os.replace(tmp_file, path)
    finally:
        for p in (tmp_download, tmp_file):
            if p is not None and p.exists():
                p.unlink()


def download_all(
    to: str | os.PathLike,
    *,
    names: list[str] | None = None,
    mirrors: dict[str, list[str]] | None = None,
    timeout: float = 30.0,
) -> list[Path]:
    """Fetch every corpus (or those in ``names``) into the folder ``to``; return their paths.

    ``mirrors`` maps a corpus name to URLs used instead of the registry's. This backs
    ``lmlab data download --all --to DIR``: the folder can then be copied to an offline machine and
    used with ``LMLAB_DATA_DIR=DIR``. Files already there with the right SHA-256 are not downloaded.
    """
    names = names if names is not None else list(CORPORA)
    for n in list(names) + list(mirrors or {}):
        _corpus(n)
    return [fetch(n, data_dir=to, urls=(mirrors or {}).get(n), timeout=timeout) for n in names]


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
    return fetch(name, data_dir=data_dir).read_text(encoding="utf-8")


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
    path = fetch("sms_spam", data_dir=data_dir)
    texts, labels = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line:
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in ("ham", "spam"):
            raise ValueError(f"{path}:{lineno}: expected 'ham<TAB>text' or 'spam<TAB>text', got {line[:40]!r}")
        texts.append(text)
        labels.append(1 if label == "spam" else 0)
    return SMSSpam(texts, labels)
