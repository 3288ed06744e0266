"""Corpora: download from a real local HTTP server, SHA-256 checks, cache reuse, zips, loaders."""

from __future__ import annotations

import http.server
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from lmlab.data import CORPORA, DownloadError, data_dir, download_all, fetch, load_sms_spam, load_text, verify
from lmlab.data.corpora import extract_member, sha256_file

SHAKESPEARE_BYTES = 1_115_394


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes). Paths under /truncated/ announce the full length but
    send only half the body, like a dropped connection."""

    def do_GET(self):
        files = self.server.files
        key = self.path.removeprefix("/truncated")
        if key not in files:
            self.send_error(404, "File not found")
            return
        body = files[key]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/truncated/"):
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


class LocalServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.files = {}
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.stopped = False

    def add(self, path: str, body: bytes) -> str:
        self.httpd.files[path] = body
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

    zpath = tmp_path / "evil.zip"
    zpath.write_bytes(_zip({"../evil": b"x", "/abs/evil": b"y"}))
    for member in ("../evil", "/abs/evil", "a/../../evil"):
        with pytest.raises(ValueError, match="escapes the target folder"):
            extract_member(zpath, member, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil").exists()


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


def test_offline_env_points_at_a_local_folder_and_keeps_what_is_set(tmp_path):
    from lmlab.data import offline_env

    assert offline_env(tmp_path, {}) == {"LMLAB_DATA_DIR": str(tmp_path), "LMLAB_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    assert "LMLAB_DATA_DIR" not in offline_env(tmp_path / "absent", {})  # only a folder that exists
    kept = offline_env(tmp_path, {"LMLAB_DATA_DIR": "/elsewhere", "LMLAB_PROGRESS": "1"})
    assert kept["LMLAB_DATA_DIR"] == "/elsewhere" and kept["LMLAB_PROGRESS"] == "1"
