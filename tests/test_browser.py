"""End to end in a real browser: JupyterLab runs notebook 08's explorer and Chromium drives its widgets.

Starts JupyterLab on 127.0.0.1 (own port, token, root, config and runtime folders) with a copy of the
first part of notebooks/08_attention_explorer.ipynb (its cells up to the first explorer: the copying task,
its training and the explorer, outputs cleared), opens it in headless Chromium through Playwright, waits
for the kernel, runs all cells, waits for the explorer's image, changes the head and the query token
through the widgets and checks that the picture changed, then opens the notebook's induction head from
the thumbnail grid. What to expect (tokens, heads, the induction head) is read from the notebook's stored
outputs. A screenshot lands in test-artifacts/. Every process it starts is stopped at the end.

Waiting: the kernel must be idle before "Run All" (a run sent while it starts can be lost or queue behind
its start), and the cells get four times what they took when the notebook was executed, plus a minute,
because a busy machine (the rest of the test suite, other processes) slows the training cell down.

Needs /usr/bin/chromium (Debian's ``chromium`` package); skipped without it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "08_attention_explorer.ipynb"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

pytestmark = pytest.mark.browser


@dataclass
class Expected:
    """What the notebook's first explorer shows, read from the notebook's stored outputs."""

    layers: int
    heads: int
    tokens: int
    layer: int  # the induction head the notebook found and selected
    head: int
    run_seconds: float  # how long the kept cells took when the notebook was executed


def _seconds(cell) -> float:
    meta = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(meta["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(meta["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return max(0.0, (end - start).total_seconds())


def explorer_notebook(path: Path = NOTEBOOK) -> tuple[dict, Expected]:
    """Notebook 08 up to and including its first explorer cell, outputs cleared, and what that explorer shows.

    The browser runs the notebook's own cells (the copying task, its training and the explorer), not a
    stand-in; the cells after the first explorer (the Shakespeare model, exports, timing) are left out to keep
    the run short. The expectations come from the stored outputs of a clean run (dev.py execute-notebooks).
    """
    nb = json.loads(path.read_text())
    kept, text = [], ""
    for cell in nb["cells"]:
        kept.append(cell)
        if cell["cell_type"] != "code":
            continue
        for out in cell.get("outputs", []):
            text += "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", "")) + "\n"
        if "AttentionExplorer(" in "".join(cell["source"]):
            break
    else:
        raise AssertionError(f"{path.name} has no cell that makes an AttentionExplorer")
    shape = re.search(r"AttentionExplorer\(\w+, (\d+) layers x (\d+) heads, (\d+) tokens\)", text)
    head = re.search(r"induction head: layer (\d+), head (\d+)", text)
    assert shape and head, f"{path.name} has no stored outputs for its first explorer: run dev.py execute-notebooks"
    expected = Expected(int(shape[1]), int(shape[2]), int(shape[3]), int(head[1]), int(head[2]),
                        sum(_seconds(c) for c in kept if c["cell_type"] == "code"))
    for cell in kept:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["cells"] = kept
    nb["metadata"]["kernelspec"] = KERNELSPEC  # no "select a kernel" dialog in front of the notebook
    return nb, expected


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


def test_explorer_notebook_part_is_derived_from_notebook_08():
    nb, expected = explorer_notebook()
    assert nb["cells"][-1]["cell_type"] == "code" and "AttentionExplorer(" in "".join(nb["cells"][-1]["source"])
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    assert expected.tokens > 3 and 0 <= expected.layer < expected.layers and 0 <= expected.head < expected.heads
    assert expected.heads > 1  # the test switches to another head


def test_explorer_in_jupyterlab(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    if not NOTEBOOK.is_file():
        pytest.fail(f"the notebook under test is missing: {NOTEBOOK}")
    nb, expected = explorer_notebook()
    # Time for the notebook's cells in the browser's kernel: what they took when the notebook was executed,
    # times 4 for a busy machine (other tests, other processes), plus the kernel's start.
    run_budget = 60.0 + 4.0 * expected.run_seconds
    started = time.monotonic()

    work = tmp_path / "root"
    work.mkdir()
    name = "explorer.ipynb"
    (work / name).write_text(json.dumps(nb))  # a copy: JupyterLab may mark it modified and autosave
    runtime_dir = tmp_path / "runtime"
    labconfig = tmp_path / "config" / "labconfig"
    labconfig.mkdir(parents=True)  # no "would you like news?" pop-up over the widgets
    (labconfig / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(runtime_dir),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), LMLAB_PROGRESS="0",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    if "LMLAB_DATA_DIR" not in env and (ROOT.parent / "shared" / "data").is_dir():
        env["LMLAB_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
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
                _drive(context.new_page(), f"{base}/lab/tree/{name}?token={token}", f"{base}/api/kernels?token={token}",
                       log, expected, run_budget)
            finally:
                context.close()
    finally:
        _stop(proc, runtime_dir)
    assert not _pids_mentioning(str(runtime_dir)), "a kernel outlived the test"
    assert proc.poll() is not None
    elapsed = time.monotonic() - started
    assert elapsed < 120 + run_budget, f"the browser test took {elapsed:.0f} s"


def _kernel_states(api: str) -> list[str]:
    """Execution states of the server's kernels ("starting", "idle", "busy"), from its REST API."""
    with urllib.request.urlopen(api, timeout=5) as r:
        return [k.get("execution_state", "?") for k in json.loads(r.read())]


def _wait_for_idle_kernel(api: str, timeout: float) -> None:
    """Wait until the notebook's kernel exists and is idle (started, or done with every queued cell)."""
    deadline, states = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            states = _kernel_states(api)
        except OSError:
            states = ["?"]
        if states and all(s == "idle" for s in states):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the kernel was not idle within {timeout:.0f} s (states {states})")


_RUNNING_OR_RAN = ("() => [...document.querySelectorAll('.jp-NotebookPanel .jp-InputArea-prompt')]"
                   ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))")


def _run_all(page) -> None:
    """Run > Run All Cells, until a cell is queued or ran: a click that lands while the frontend is still
    connecting to the kernel is dropped without a trace (no cell gets a [*] prompt); it is then safe to
    click again."""
    for _ in range(4):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(_RUNNING_OR_RAN, timeout=20_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: the click was dropped, click again
            continue
    raise AssertionError("Run All Cells did not start any cell after 4 tries")


def _drive(page, url: str, api: str, log: Path, expected: Expected, run_budget: float) -> None:
    page.set_default_timeout(60_000)  # ms, for single widget updates; generous: the machine may be busy
    page.goto(url)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
    # the notebook's session must be connected to a started kernel before "Run All"
    page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName", has_text="Python 3").first.wait_for(
        timeout=120_000)
    _wait_for_idle_kernel(api, 120)
    _run_all(page)

    head_image = page.locator("img.lmlab-head-image")
    try:
        head_image.wait_for(state="visible", timeout=run_budget * 1000)
        page.wait_for_function("() => { const im = document.querySelector('img.lmlab-head-image');"
                               " return im && im.complete && im.naturalWidth > 100; }")
        _wait_for_idle_kernel(api, 60)  # every cell done: widget messages are answered at once
    except Exception:
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        prompts = page.locator(".jp-InputArea-prompt").all_inner_texts()
        raise AssertionError(f"the explorer's image did not appear within {run_budget:.0f} s; kernel states "
                             f"{_kernel_states(api)}; cell prompts {prompts}; cell errors: {errors}\n"
                             f"server log: {log.read_text()[-2000:]}") from None

    def src() -> str:
        return head_image.get_attribute("src") or ""

    def wait_for_new_image(old_src: str) -> None:
        page.wait_for_function(
            "old => { const im = document.querySelector('img.lmlab-head-image');"
            " return im && im.src !== old && im.complete && im.naturalWidth > 100; }", arg=old_src)

    def selected(control: str) -> str:
        return page.locator(f".lmlab-{control} select").evaluate("s => s.selectedOptions[0].text")

    # the notebook selected the induction head it found
    assert (selected("layer"), selected("head")) == (str(expected.layer), str(expected.head))
    first_src, first_shot = src(), head_image.screenshot()

    other_head = (expected.head + 1) % expected.heads
    page.locator(".lmlab-head select").select_option(label=str(other_head))
    wait_for_new_image(first_src)
    second_src, second_shot = src(), head_image.screenshot()
    assert second_shot != first_shot, "changing the head did not change the heatmap"

    query = page.locator(".lmlab-query select")
    assert query.locator("option").count() == expected.tokens  # one per token of the explorer's text
    query.select_option(index=3)
    wait_for_new_image(second_src)
    third_shot = head_image.screenshot()
    assert third_shot not in (first_shot, second_shot), "changing the query token did not move its outline"

    # the thumbnail grid: a click on a head's button opens it in the head view
    third_src = src()
    page.get_by_role("tab", name="All heads").click()
    page.locator(".lmlab-grid button", has_text=f"L{expected.layer} H{expected.head}").click()
    head_image.wait_for(state="visible")  # back on the head view
    wait_for_new_image(third_src)
    assert (selected("layer"), selected("head")) == (str(expected.layer), str(expected.head))

    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert not errors, f"cells wrote to stderr: {errors}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".lmlab-attention-explorer").screenshot(path=str(ARTIFACTS / "browser_explorer.png"))
    page.screenshot(path=str(ARTIFACTS / "browser_page.png"), full_page=False)
