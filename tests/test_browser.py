"""End to end in a real browser: JupyterLab runs the explorer notebook and Chromium drives its widgets.

Starts JupyterLab on 127.0.0.1 (own port, token, root, config and runtime folders) with a copy of the
notebook, opens it in headless Chromium through Playwright, runs all cells, waits for the explorer's
image, changes the head and the query token through the widgets and checks that the picture changed.
A screenshot lands in test-artifacts/. Every process it starts is stopped at the end.

Needs /usr/bin/chromium (Debian's ``chromium`` package); skipped without it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The notebook under test. Switch to ROOT / "notebooks" / "08_attention_explorer.ipynb" once it exists.
NOTEBOOK = ROOT / "tests" / "fixtures" / "explorer_demo.ipynb"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Opt-in for now: under a full test run the explorer image sometimes never appears (not yet understood;
# it passes when run alone). Run it with LMLAB_BROWSER_TESTS=1.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("LMLAB_BROWSER_TESTS") != "1", reason="set LMLAB_BROWSER_TESTS=1 to run the browser test"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"JupyterLab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _pids_mentioning(marker: str) -> list[int]:
    """Processes whose command line contains ``marker`` (our private runtime folder): our kernels."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _stop(proc: subprocess.Popen, runtime_dir: Path) -> None:
    """Stop the server's process group, then any kernel it started (they run in their own sessions)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while (left := _pids_mentioning(str(runtime_dir))) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_explorer_in_jupyterlab(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    if not NOTEBOOK.is_file():
        pytest.fail(f"the notebook under test is missing: {NOTEBOOK}")
    started = time.monotonic()

    work = tmp_path / "root"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)  # JupyterLab may mark it modified and autosave: use a copy
    runtime_dir = tmp_path / "runtime"
    labconfig = tmp_path / "config" / "labconfig"
    labconfig.mkdir(parents=True)  # no "would you like news?" pop-up over the widgets
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(runtime_dir),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), LMLAB_PROGRESS="0",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    log = tmp_path / "jupyter.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
             "--allow-root", "--ServerApp.port_retries=0", "--LabApp.news_url=None"],
            cwd=work, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    context = None
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 1400},
            )
            try:
                _drive(context.new_page(), f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", log)
            finally:
                context.close()
    finally:
        _stop(proc, runtime_dir)
    assert not _pids_mentioning(str(runtime_dir)), "a kernel outlived the test"
    assert proc.poll() is not None
    elapsed = time.monotonic() - started
    assert elapsed < 120, f"the browser test took {elapsed:.0f} s"


def _drive(page, url: str, log: Path) -> None:
    timeout = 60_000  # ms; generous: the machine may be busy
    page.set_default_timeout(timeout)
    page.goto(url)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    # the kernel must be up before "Run All" (otherwise the cells queue behind its start, which is fine too)
    page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName").first.wait_for()

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    head_image = page.locator("img.lmlab-head-image")
    try:
        try:
            head_image.wait_for(state="visible", timeout=90_000)
        except Exception:  # on a busy machine "Run All" can reach the kernel before it is ready: once more
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            head_image.wait_for(state="visible", timeout=120_000)
        page.wait_for_function("() => { const im = document.querySelector('img.lmlab-head-image');"
                               " return im && im.complete && im.naturalWidth > 100; }")
    except Exception:
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        raise AssertionError(f"the explorer's image did not appear; cell errors: {errors}\n"
                             f"server log: {log.read_text()[-2000:]}") from None

    def src() -> str:
        return head_image.get_attribute("src") or ""

    def wait_for_new_image(old_src: str) -> None:
        page.wait_for_function(
            "old => { const im = document.querySelector('img.lmlab-head-image');"
            " return im && im.src !== old && im.complete && im.naturalWidth > 100; }", arg=old_src)

    first_src, first_shot = src(), head_image.screenshot()

    page.locator(".lmlab-head select").select_option(label="2")  # head 0 -> head 2
    wait_for_new_image(first_src)
    second_src, second_shot = src(), head_image.screenshot()
    assert second_shot != first_shot, "changing the head did not change the heatmap"

    query = page.locator(".lmlab-query select")
    assert query.locator("option").count() == 44  # one per character of the notebook's text
    query.select_option(index=3)
    wait_for_new_image(second_src)
    third_shot = head_image.screenshot()
    assert third_shot not in (first_shot, second_shot), "changing the query token did not move its outline"

    # the thumbnail grid: a click on a head's button opens it in the head view
    third_src = src()
    page.get_by_role("tab", name="All heads").click()
    page.locator(".lmlab-grid button", has_text="L1 H3").click()
    head_image.wait_for(state="visible")  # back on the head view
    wait_for_new_image(third_src)
    assert page.locator(".lmlab-layer select").evaluate("s => s.selectedOptions[0].text") == "1"
    assert page.locator(".lmlab-head select").evaluate("s => s.selectedOptions[0].text") == "3"

    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert not errors, f"cells wrote to stderr: {errors}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".lmlab-attention-explorer").screenshot(path=str(ARTIFACTS / "browser_explorer.png"))
    page.screenshot(path=str(ARTIFACTS / "browser_page.png"), full_page=False)
