"""A real JupyterLab in a real headless Chromium, for the browser tests.

``lab_session(tmp_path, notebook)`` starts JupyterLab on 127.0.0.1 (its own port, token, root, config and
runtime folders) holding one notebook, opens Chromium through Playwright at 1440x900 and yields a
``Lab`` (the browser context, the notebook's URL, the kernels' REST address, the server log, its root
folder); at the end it stops the server and every kernel it started. ``open_and_run`` opens the notebook and
runs all its cells, ``Shots`` numbers screenshots into ``test-artifacts/browser/`` (kept by CI).

Needs /usr/bin/chromium (Debian's ``chromium``), the playwright package and jupyterlab; ``require_browser()``
skips the calling test when one is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def notebook(*sources: str) -> dict:
    """An nbformat-4 notebook (as a dict) with one code cell per source string."""
    cells = [{"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
             for src in sources]
    return {"cells": cells, "metadata": {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def require_browser() -> Any:
    """Skip the calling test unless Chromium, playwright and jupyterlab are here; returns playwright.sync_api."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    pytest.importorskip("ipyevents", reason="ipyevents is not installed")
    return sync_api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
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


def pids_mentioning(marker: str) -> list[int]:
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


def stop_server(proc: subprocess.Popen, runtime_dir: Path) -> None:
    """Stop the server's process group, then any kernel it started (they run in their own sessions)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while (left := pids_mentioning(str(runtime_dir))) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kernel_states(api: str) -> list[str]:
    """Execution states of the server's kernels ("starting", "idle", "busy"), from its REST API."""
    with urllib.request.urlopen(api, timeout=5) as r:
        return [k.get("execution_state", "?") for k in json.loads(r.read())]


def wait_for_idle_kernel(api: str, timeout: float) -> None:
    """Wait until the notebook's kernel exists and is idle (started, or done with every queued cell)."""
    deadline, states = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            states = kernel_states(api)
        except OSError:
            states = ["?"]
        if states and all(s == "idle" for s in states):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the kernel was not idle within {timeout:.0f} s (states {states})")


RUNNING_OR_RAN = ("() => [...document.querySelectorAll('.jp-NotebookPanel .jp-InputArea-prompt')]"
                   ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))")


def run_all(page) -> None:
    """Run > Run All Cells, until a cell is queued or ran: a click that lands while the frontend is still
    connecting to the kernel is dropped without a trace (no cell gets a [*] prompt); it is then safe to
    click again."""
    for _ in range(4):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(RUNNING_OR_RAN, timeout=20_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: the click was dropped, click again
            continue
    raise AssertionError("Run All Cells did not start any cell after 4 tries")


def click_image_pixel(page, image, x: float, y: float, move_only: bool = False) -> None:
    """Click (or point) at pixel (x, y) of an image as it is shown (it may be scaled)."""
    box = image.bounding_box()
    natural = image.evaluate("im => [im.naturalWidth, im.naturalHeight]")
    px, py = box["x"] + x * box["width"] / natural[0], box["y"] + y * box["height"] / natural[1]
    page.mouse.move(px, py)
    if not move_only:
        page.mouse.click(px, py)


def stderr_outputs(page) -> list[str]:
    """What the notebook's cells wrote to stderr, as shown in the page."""
    return page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()


class Shots:
    """Numbered screenshots of the steps, in a folder (its old PNGs removed first)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        self.folder, self.n = folder, 0

    def __call__(self, target, name: str) -> bytes:
        self.n += 1
        return target.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"))


@dataclass
class Lab:
    context: Any  # the Playwright browser context
    url: str  # the notebook's page
    api: str  # the kernels' REST address
    log: Path  # the server's output
    root: Path  # the server's root folder (holds the notebook)

    def open_and_run(self, ready: str, timeout_ms: int = 180_000) -> Any:
        """A new page with the notebook, Run All, wait for the CSS selector ``ready`` and an idle kernel."""
        page = self.context.new_page()
        page.set_default_timeout(60_000)  # ms, for single widget updates; generous: the machine may be busy
        page.goto(self.url)
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
        # the notebook's session must be connected to a started kernel before "Run All"
        page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName", has_text="Python 3").first.wait_for(
            timeout=120_000)
        wait_for_idle_kernel(self.api, 120)
        run_all(page)
        try:
            page.locator(ready).last.wait_for(state="visible", timeout=timeout_ms)
            wait_for_idle_kernel(self.api, 120)  # every cell done: widget messages are answered at once
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: say what the notebook printed
            raise AssertionError(f"{ready} did not appear; kernel states {kernel_states(self.api)}; cell errors: "
                                 f"{stderr_outputs(page)}\nserver log: {self.log.read_text()[-2000:]}") from None
        return page


@contextlib.contextmanager
def lab_session(tmp_path: Path, nb: dict, name: str = "test.ipynb") -> Iterator[Lab]:
    """JupyterLab serving ``nb`` and a headless Chromium; everything started is stopped at the end."""
    sync_api = require_browser()
    work = tmp_path / "root"
    work.mkdir()
    (work / name).write_text(json.dumps(nb))
    runtime_dir = tmp_path / "runtime"
    labconfig = tmp_path / "config" / "labconfig"
    labconfig.mkdir(parents=True)  # no "would you like news?" pop-up over the widgets
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    port, token = free_port(), secrets.token_hex(16)
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
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(f"{base}/api/status?token={token}", proc, log)
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1440, "height": 900},
            )
            try:
                yield Lab(context, f"{base}/lab/tree/{name}?token={token}", f"{base}/api/kernels?token={token}",
                          log, work)
            finally:
                context.close()
    finally:
        stop_server(proc, runtime_dir)
    assert not pids_mentioning(str(runtime_dir)), "a kernel outlived the test"
    assert proc.poll() is not None
