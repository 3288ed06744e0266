"""Corpora: download from a real local HTTP server, SHA-256 checks, cache reuse, zips, loaders."""

from __future__ import annotations

import http.server
import io
import os
import re
import struct
import threading
import time
import zipfile
from pathlib import Path

import pytest

from lmlab.data import (
    CORPORA,
    DownloadError,
    data_dir,
    download_all,
    fetch,
    load_sms_spam,
    load_text,
    read_corpus,
    verify,
)
from lmlab.data.corpora import default_max_bytes, sha256_file
from lmlab.data.download import ZIP_MARGIN, read_member

SHAKESPEARE_BYTES = 1_115_394
ENDLESS_STOP = 60 * 2**20  # an "endless" stream stops here, so that a download without a cap cannot hang a test
DRIP_EVERY = 0.05  # seconds between the bytes of a dripping mirror
DRIP_FOR = 8.0  # a dripping mirror gives up after this long


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> (body, how)). ``how`` is how the server misbehaves:

    - "ok": the body with its Content-Length;
    - "endless": the body, then zeros without end (stops at ENDLESS_STOP bytes so a test cannot hang);
    - "drip": no Content-Length, one byte of the body every DRIP_EVERY seconds (for at most DRIP_FOR);
    - "lying-length": announces a Content-Length of a terabyte, then drips;
    - "drip-headers": the status line, then a header one byte at a time (for at most DRIP_FOR);
    - "raw": ``body`` is the whole HTTP response, sent as it is.

    Paths under /truncated/ announce the full length but send only half the body, like a dropped connection."""

    def do_GET(self):
        files = self.server.files
        key = self.path.removeprefix("/truncated")
        if key not in files:
            self.send_error(404, "File not found")
            return
        body, how = files[key]
        self.server.requests.append(self.path)
        if how == "raw":
            self.wfile.write(body)
            self.close_connection = True
            return
        if how == "drip-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._drip(b"X-Slow: " + b"a" * 10_000)
            self.close_connection = True
            return
        self.send_response(200)
        if how == "lying-length":
            self.send_header("Content-Length", str(10**12))
        elif how == "ok":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if how == "endless":
                self._endless(body)
            elif how in ("drip", "lying-length"):
                self._drip(body)
            elif self.path.startswith("/truncated/"):
                self.wfile.write(body[: len(body) // 2])
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what a capped download should do
        self.close_connection = True

    def _endless(self, body):
        self.wfile.write(body)
        zeros, sent = bytes(1 << 16), len(body)
        while sent < ENDLESS_STOP:
            self.wfile.write(zeros)
            sent += len(zeros)

    def _drip(self, body):
        end = time.monotonic() + DRIP_FOR
        for i in range(len(body)):
            if time.monotonic() > end:
                return
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()
            time.sleep(DRIP_EVERY)

    def log_message(self, *args):  # keep test output clean
        pass


class LocalServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.files = {}
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.stopped = False

    def add(self, path: str, body: bytes, how: str = "ok") -> str:
        self.httpd.files[path] = (body, how)
        return self.base + path

    def stop(self):
        if not self.stopped:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.stopped = True


@pytest.fixture
def server():
    s = LocalServer()
    yield s
    s.stop()


@pytest.fixture
def shakespeare(data_dir) -> bytes:
    return (data_dir / "tinyshakespeare" / "input.txt").read_bytes()


@pytest.fixture
def sms_bytes(data_dir) -> bytes:
    return (data_dir / "sms_spam" / "SMSSpamCollection").read_bytes()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_download_verify_and_cache_reuse(server, shakespeare, tmp_path):
    url = server.add("/input.txt", shakespeare)
    path = fetch("tinyshakespeare", data_dir=tmp_path, urls=[url])
    assert path == tmp_path / "tinyshakespeare" / "input.txt"
    assert path.stat().st_size == SHAKESPEARE_BYTES
    assert sha256_file(path) == CORPORA["tinyshakespeare"].sha256
    assert _leftovers(tmp_path) == ["input.txt"]  # no temp files left behind
    server.stop()
    # second call: served from the cache, the (stopped) server is never contacted
    assert fetch("tinyshakespeare", data_dir=tmp_path, urls=[url]) == path
    assert [(r.name, r.ok, r.reason) for r in verify(tmp_path)] == [
        ("tinyshakespeare", True, "ok"),
        ("sms_spam", False, "missing"),
    ]


def test_mirror_fallback_after_404(server, shakespeare, tmp_path):
    missing = server.base + "/nothing-here.txt"
    good = server.add("/mirror2/input.txt", shakespeare)
    path = fetch("tinyshakespeare", data_dir=tmp_path, urls=[missing, good])
    assert sha256_file(path) == CORPORA["tinyshakespeare"].sha256


def test_wrong_hash_is_an_error_and_not_kept(server, shakespeare, tmp_path):
    tampered = shakespeare.replace(b"ROMEO", b"ROMEX", 1)
    url = server.add("/input.txt", tampered)
    with pytest.raises(DownloadError) as e:
        fetch("tinyshakespeare", data_dir=tmp_path, urls=[url])
    msg = str(e.value)
    assert "sha256 mismatch for input.txt" in msg
    assert CORPORA["tinyshakespeare"].sha256 in msg
    import hashlib

    assert hashlib.sha256(tampered).hexdigest() in msg
    assert e.value.failures[0][0] == url
    assert _leftovers(tmp_path) == []  # the bad download was deleted


def test_truncated_download_is_refused(server, shakespeare, tmp_path):
    url = server.add("/input.txt", shakespeare)
    with pytest.raises(DownloadError, match="truncated|IncompleteRead|mismatch"):
        fetch("tinyshakespeare", data_dir=tmp_path, urls=[server.base + "/truncated/input.txt"])
    assert _leftovers(tmp_path) == []
    # the next attempt with a good mirror succeeds
    assert fetch("tinyshakespeare", data_dir=tmp_path, urls=[url]).stat().st_size == SHAKESPEARE_BYTES


def test_cached_file_with_wrong_hash_is_not_served(server, shakespeare, tmp_path):
    path = tmp_path / "tinyshakespeare" / "input.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(shakespeare[:1000])
    dead = server.base + "/gone.txt"
    with pytest.raises(DownloadError, match="cached file .* has sha256"):
        fetch("tinyshakespeare", data_dir=tmp_path, urls=[dead])
    url = server.add("/input.txt", shakespeare)
    assert fetch("tinyshakespeare", data_dir=tmp_path, urls=[url]).read_bytes() == shakespeare


def test_offline_error_explains_what_to_do(server, tmp_path):
    urls = [server.base + "/a.txt", server.base + "/b.txt"]
    server.stop()  # connection refused
    with pytest.raises(DownloadError) as e:
        fetch("tinyshakespeare", data_dir=tmp_path, urls=urls)
    msg = str(e.value)
    for needed in [*urls, "LMLAB_DATA_DIR", str(tmp_path / "tinyshakespeare" / "input.txt"), "'input.txt'",
                   "lmlab data download --all --to DIR"]:
        assert needed in msg, needed
    assert len(e.value.failures) == 2 and all("refused" in r.lower() or "error" in r.lower() for _, r in e.value.failures)


def test_unusable_data_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot create the data folder"):
        fetch("tinyshakespeare", data_dir=blocker / "sub", urls=[])


def test_sms_spam_zip_download_extracts_the_member(server, sms_bytes, tmp_path):
    url = server.add("/sms.zip", _zip({"SMSSpamCollection": sms_bytes, "readme": b"UCI readme"}))
    path = fetch("sms_spam", data_dir=tmp_path, urls=[url])
    assert path == tmp_path / "sms_spam" / "SMSSpamCollection"
    assert path.read_bytes() == sms_bytes
    assert _leftovers(tmp_path) == ["SMSSpamCollection"]  # the zip and the readme are not kept
    ds = load_sms_spam(data_dir=tmp_path)
    assert len(ds.texts) == 5574


def test_zip_member_escaping_the_folder_is_refused(server, sms_bytes, tmp_path):
    url = server.add("/evil.zip", _zip({"../SMSSpamCollection": sms_bytes}))
    with pytest.raises(DownloadError, match="escapes the target folder"):
        fetch("sms_spam", data_dir=tmp_path / "d", urls=[url])
    assert not (tmp_path / "SMSSpamCollection").exists() and _leftovers(tmp_path) == []

    archive = _zip({"../evil": b"x", "/abs/evil": b"y"})
    for member in ("../evil", "/abs/evil", "a/../../evil"):
        with pytest.raises(ValueError, match="escapes the target folder"):
            read_member(archive, member, max_bytes=10)
    assert not (tmp_path.parent / "evil").exists()


def test_not_a_zip_is_an_error(server, tmp_path):
    url = server.add("/sms.zip", b"<html>maintenance</html>")
    with pytest.raises(DownloadError, match="not a valid zip"):
        fetch("sms_spam", data_dir=tmp_path, urls=[url])
    assert _leftovers(tmp_path) == []


def test_download_all_then_verify(server, shakespeare, sms_bytes, tmp_path):
    mirrors = {
        "tinyshakespeare": [server.add("/input.txt", shakespeare)],
        "sms_spam": [server.add("/sms.zip", _zip({"SMSSpamCollection": sms_bytes}))],
    }
    paths = download_all(tmp_path, mirrors=mirrors)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["tinyshakespeare/input.txt", "sms_spam/SMSSpamCollection"]
    assert all(r.ok for r in verify(tmp_path))
    paths[0].write_bytes(b"changed")
    bad = {r.name: r for r in verify(tmp_path)}["tinyshakespeare"]
    assert not bad.ok and "sha256 mismatch" in bad.reason


def test_data_dir_env_var_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("LMLAB_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("LMLAB_DATA_DIR")
    assert data_dir().name == "lmlab"


def test_load_text_tinyshakespeare(data_dir):
    text = load_text("tinyshakespeare")  # from LMLAB_DATA_DIR, no network
    assert len(text) == SHAKESPEARE_BYTES  # ASCII: one character per byte
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")


def test_load_text_unknown_name_lists_known():
    with pytest.raises(ValueError, match="known corpora: sms_spam, tinyshakespeare"):
        load_text("shakespeare")
    with pytest.raises(ValueError, match="load_sms_spam"):
        load_text("sms_spam")


def test_load_sms_spam_counts(data_dir):
    ds = load_sms_spam()
    assert len(ds.texts) == len(ds.labels) == 5574
    assert ds.labels.count(0) == 4827 and ds.labels.count(1) == 747
    assert ds.texts[0].startswith("Go until jurong point")
    assert ds.label_names[ds.labels[2]] == "spam"
    assert os.environ["LMLAB_DATA_DIR"] == str(data_dir)


# ---------------------------------------------------------------------------------------------------- hostile mirrors


def test_endless_stream_is_cut_at_the_expected_size(server, shakespeare, tmp_path):
    url = server.add("/input.txt", shakespeare, how="endless")
    with pytest.raises(DownloadError, match=f"stopped after {SHAKESPEARE_BYTES + 1:,} bytes: more than the "
                                            f"{SHAKESPEARE_BYTES:,} expected"):
        fetch("tinyshakespeare", data_dir=tmp_path, urls=[url])
    assert _leftovers(tmp_path) == []


def test_larger_content_length_is_refused_before_reading(server, shakespeare, tmp_path):
    url = server.add("/input.txt", shakespeare, how="lying-length")  # announces 1 TB, then drips
    start = time.monotonic()
    with pytest.raises(DownloadError, match=f"announces 1,000,000,000,000 bytes, more than the {SHAKESPEARE_BYTES:,}"):
        fetch("tinyshakespeare", data_dir=tmp_path, urls=[url], timeout=5)
    assert time.monotonic() - start < DRIP_FOR / 2  # it did not sit reading the drip
    assert _leftovers(tmp_path) == []


def test_slow_drip_fails_at_the_deadline_then_the_next_mirror_is_tried(server, shakespeare, tmp_path):
    drip = server.add("/drip/input.txt", shakespeare, how="drip")  # each byte well within the socket timeout
    good = server.add("/input.txt", shakespeare)
    start = time.monotonic()
    path = fetch("tinyshakespeare", data_dir=tmp_path, urls=[drip, good], timeout=2, deadline=1.0)
    assert time.monotonic() - start < DRIP_FOR / 2  # gave up on the drip at the deadline, long before it ended
    assert path.read_bytes() == shakespeare and server.httpd.requests == ["/drip/input.txt", "/input.txt"]
    with pytest.raises(DownloadError, match=r"gave up after the 1 s deadline") as e:
        fetch("tinyshakespeare", data_dir=tmp_path / "again", urls=[drip], timeout=2, deadline=1.0)
    assert e.value.failures[0][0] == drip


def test_headers_dripped_byte_by_byte_fail_at_the_deadline_too(server, shakespeare, tmp_path):
    drip = server.add("/slow-headers/input.txt", shakespeare, how="drip-headers")
    good = server.add("/input.txt", shakespeare)
    start = time.monotonic()
    path = fetch("tinyshakespeare", data_dir=tmp_path, urls=[drip, good], timeout=2, deadline=1.0)
    assert time.monotonic() - start < DRIP_FOR / 2
    assert path.read_bytes() == shakespeare
    with pytest.raises(DownloadError, match=r"gave up after the 1 s deadline"):
        fetch("tinyshakespeare", data_dir=tmp_path / "again", urls=[drip], timeout=2, deadline=1.0)


def test_zip_bomb_is_refused_without_extracting(server, tmp_path):
    bomb = _zip({"SMSSpamCollection": bytes(200 * 2**20)})  # 200 MiB of zeros deflate to about 200 KB
    assert len(bomb) < 300_000
    url = server.add("/sms.zip", bomb)
    with pytest.raises(DownloadError, match=r"declares 209,715,200 bytes uncompressed, more than the 477,907 "
                                            r"expected; not extracted"):
        fetch("sms_spam", data_dir=tmp_path, urls=[url])
    assert _leftovers(tmp_path) == []


def _with_declared_size(archive: bytes, size: int) -> bytes:
    """The zip with its (only) member's uncompressed size rewritten in both headers: a lying archive."""
    raw = bytearray(archive)
    raw[22:26] = struct.pack("<I", size)  # local file header
    central = raw.find(b"PK\x01\x02")
    raw[central + 24:central + 28] = struct.pack("<I", size)  # central directory
    return bytes(raw)


def test_zip_member_that_expands_past_its_declared_size_is_stopped(sms_bytes):
    liar = _with_declared_size(_zip({"SMSSpamCollection": sms_bytes + bytes(2**20)}), 1000)
    with pytest.raises((ValueError, zipfile.BadZipFile), match="expands past|Bad CRC"):
        read_member(liar, "SMSSpamCollection", max_bytes=len(sms_bytes))
    assert read_member(_zip({"SMSSpamCollection": sms_bytes}), "SMSSpamCollection", max_bytes=len(sms_bytes)) \
        == sms_bytes


@pytest.mark.parametrize("damage, says", [("data", "zlib|error: Error -3 while decompressing"),
                                          ("version", "NotImplementedError: zip file version 9.9")])
def test_damaged_zip_is_a_download_error(server, tmp_path, damage, says):
    raw = bytearray(_zip({"SMSSpamCollection": b"ham\tsee you\n" * 500}))
    if damage == "data":
        start = 30 + len("SMSSpamCollection")
        raw[start:start + 20] = b"\xff" * 20  # not a valid deflate block
    else:
        raw[raw.find(b"PK\x01\x02") + 6] = 99  # needs zip version 9.9 to extract
    url = server.add("/sms.zip", bytes(raw))
    with pytest.raises(DownloadError, match=f"not a valid zip archive.*({says})"):
        fetch("sms_spam", data_dir=tmp_path, urls=[url])
    assert _leftovers(tmp_path) == []


def test_stale_part_files_are_removed_and_live_ones_kept(server, shakespeare, tmp_path):
    folder = tmp_path / "tinyshakespeare"
    folder.mkdir()
    killed = folder / ".input.txt.k1ll3d.part"  # what a download killed an hour ago left
    killed.write_bytes(shakespeare[:5000])
    old_member = folder / ".input.txt.0ld.member"
    old_member.write_bytes(b"x")
    hour_ago = time.time() - 3600
    for p in (killed, old_member):
        os.utime(p, (hour_ago, hour_ago))
    running = folder / ".input.txt.runn1ng.part"  # another download writing right now
    running.write_bytes(b"y")
    url = server.add("/input.txt", shakespeare)
    fetch("tinyshakespeare", data_dir=tmp_path, urls=[url])
    assert _leftovers(tmp_path) == sorted([".input.txt.runn1ng.part", "input.txt"])
    os.utime(running, (hour_ago, hour_ago))
    load_text("tinyshakespeare", data_dir=tmp_path)  # a cache hit cleans up too
    assert _leftovers(tmp_path) == ["input.txt"]


def test_parallel_downloads_of_one_corpus_do_not_clobber_each_other(server, shakespeare, tmp_path):
    url = server.add("/input.txt", shakespeare)
    results, errors = [], []

    def one():
        try:
            results.append(fetch("tinyshakespeare", data_dir=tmp_path, urls=[url]).read_bytes())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [shakespeare] * 6
    assert _leftovers(tmp_path) == ["input.txt"]


class _SwapAfterHashing:
    """Instruments hashlib.sha256: as soon as a digest is read (the check), the cache file is replaced with
    other bytes, before anything can read it again. The swap happens at the same point for any
    implementation, so the test is deterministic."""

    def __init__(self, path: Path, other: bytes, real):
        self.path, self.other, self.real, self.swaps = path, other, real, 0

    def __call__(self, *args, **kw):
        h = self.real(*args, **kw)
        swap = self

        class Hash:
            def update(self, data):
                h.update(data)

            def digest(self):
                swap.swap()
                return h.digest()

            def hexdigest(self):
                swap.swap()
                return h.hexdigest()

        return Hash()

    def swap(self):
        tmp = self.path.with_name("swap.tmp")
        tmp.write_bytes(self.other)
        os.replace(tmp, self.path)
        self.swaps += 1


@pytest.mark.parametrize("corpus", ["tinyshakespeare", "sms_spam"])
def test_loaders_return_the_bytes_that_were_hashed(corpus, data_dir, tmp_path, monkeypatch):
    import hashlib

    c = CORPORA[corpus]
    path = tmp_path / c.name / c.filename
    path.parent.mkdir()
    path.write_bytes((data_dir / c.name / c.filename).read_bytes())
    expected = load_text(corpus, data_dir=tmp_path) if corpus == "tinyshakespeare" else load_sms_spam(data_dir=tmp_path)
    swapper = _SwapAfterHashing(path, b"ham\tswapped after the check\n", hashlib.sha256)
    monkeypatch.setattr(hashlib, "sha256", swapper)
    got = load_text(corpus, data_dir=tmp_path) if corpus == "tinyshakespeare" else load_sms_spam(data_dir=tmp_path)
    assert swapper.swaps >= 1  # the file really was replaced after the check
    assert got == expected


def test_fetched_bytes_are_the_downloaded_bytes_that_were_hashed(server, shakespeare, tmp_path, monkeypatch):
    import hashlib

    url = server.add("/input.txt", shakespeare)
    path = tmp_path / "tinyshakespeare" / "input.txt"
    path.parent.mkdir()
    swapper = _SwapAfterHashing(path, b"swapped", hashlib.sha256)
    monkeypatch.setattr(hashlib, "sha256", swapper)
    assert read_corpus("tinyshakespeare", data_dir=tmp_path, urls=[url]) == shakespeare
    assert swapper.swaps >= 1


@pytest.mark.parametrize("kw, error, says", [
    (dict(timeout=0), ValueError, "timeout=0 must be a positive number of seconds, at most 86,400"),
    (dict(deadline=float("inf")), ValueError, "deadline=inf must be a positive"),
    (dict(deadline=float("nan")), ValueError, "deadline=nan must be a positive"),
    (dict(max_bytes=2.5), TypeError, "max_bytes must be an int"),
    (dict(deadline="60"), TypeError, "deadline must be a number of seconds"),
    (dict(max_bytes=-1), ValueError, "max_bytes=-1 must be a positive int"),
])
def test_download_limits_are_checked(kw, error, says, tmp_path):
    with pytest.raises(error, match=re.escape(says)):
        fetch("tinyshakespeare", data_dir=tmp_path, urls=[], **kw)


def test_the_registry_records_download_sizes():
    for c in CORPORA.values():
        assert isinstance(c.download_size, int) and c.download_size > 0
        assert default_max_bytes(c) == (c.size if c.zip_member is None else c.download_size + ZIP_MARGIN)


def test_offline_env_points_at_a_local_folder_and_keeps_what_is_set(tmp_path):
    from lmlab.data import offline_env

    assert offline_env(tmp_path, {}) == {"LMLAB_DATA_DIR": str(tmp_path), "LMLAB_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    assert "LMLAB_DATA_DIR" not in offline_env(tmp_path / "absent", {})  # only a folder that exists
    kept = offline_env(tmp_path, {"LMLAB_DATA_DIR": "/elsewhere", "LMLAB_PROGRESS": "1"})
    assert kept["LMLAB_DATA_DIR"] == "/elsewhere" and kept["LMLAB_PROGRESS"] == "1"
