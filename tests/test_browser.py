"""End to end in a real browser: JupyterLab runs the attention explorer and Chromium drives it as a learner.

Starts JupyterLab on 127.0.0.1 (own port, token, root, config and runtime folders) with a small notebook
made here (a 2-layer GPT built from a config, two explorers and an export; no training, so it runs in
seconds and does not change when the course's notebooks do), opens it in headless Chromium through
Playwright, runs all cells and then does what a learner does, checking what a learner relies on:

1. the head view is drawn, at least 500 px wide for 32 tokens, with a colour bar (found in the picture);
2. a click on a row of the heatmap makes it the query (the query menu and the readout follow);
3. the pointer on a cell shows its weight;
4. a click on a thumbnail in "All heads" opens that head;
5. the generation tab shows a hint and no broken image before the first generation, and the steps after;
6. on an explorer whose text fills the context, Generate is off and says why;
7. the exported HTML page, opened from disk, answers a click on a row and on a thumbnail the same way,
   and loads nothing from the network.

A screenshot of every step lands in test-artifacts/browser/ (CI keeps the folder as an artifact).
Every process it starts is stopped at the end. Needs /usr/bin/chromium (Debian's ``chromium``);
skipped without it.
"""

from __future__ import annotations

import io
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
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

pytestmark = pytest.mark.browser

SETUP = '''\
import torch
from lmlab.models import GPT, GPTConfig
from lmlab.tokenizers import CharTokenizer
from lmlab.viz import AttentionExplorer

torch.manual_seed(0)
TEXT = "the cat sat on the mat. the cat "  # 32 characters
tok = CharTokenizer.from_text(TEXT + "abcdefghijklmnopqrstuvwxyz.")
model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32))
with torch.no_grad():  # sharper attention than the initial weights give
    for block in model.transformer.h:
        block.attn.c_attn.weight.mul_(25.0)
model.eval()


def pixel(explorer, view, query, key):
    """Where cell (query, key) of a view's image is, in the image's pixels (origin top left)."""
    ax = explorer.live[view].ax
    x, y = ax.transData.transform((key, query))
    return round(x), round(ax.figure.canvas.get_width_height()[1] - y)
'''
EXPLORER = '''\
explorer = AttentionExplorer(model, tok, TEXT)
print("cell 5 2 at", *pixel(explorer, "head", 5, 2))
print("cell 9 4 at", *pixel(explorer, "head", 9, 4))
explorer
'''
FULL = '''\
full = AttentionExplorer(model, tok, (TEXT * 2)[:64])  # fills the 64-token context: nothing to generate
full.view = "generation"
full
'''
EXPORT = '''\
page = explorer.export("exports/heads.html", view="grid")
print("written:", page)
'''


def explorer_notebook() -> dict:
    """The notebook the browser runs: setup, an explorer, an explorer whose text fills the context, an export."""
    cells = [{"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
             for src in (SETUP, EXPLORER, FULL, EXPORT)]
    return {"cells": cells, "metadata": {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


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




def _viridis(value: float) -> tuple[int, int, int]:
    from matplotlib import colormaps

    r, g, b, _ = colormaps["viridis"](value)
    return round(r * 255), round(g * 255), round(b * 255)


def has_colour_bar(png: bytes) -> bool:
    """True if the picture holds a vertical viridis scale: a pixel column, right of the middle, that runs
    from the top colour (1.0) through the middle one to the bottom one (0.0) in 100+ distinct shades
    (a column of the heatmap itself holds at most one shade per token)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    ends = [_viridis(v) for v in (1.0, 0.5, 0.0)]
    near = lambda c, ref: all(abs(a - b) <= 12 for a, b in zip(c, ref))  # noqa: E731
    for x in range(image.width // 2, image.width):
        column = [image.getpixel((x, y)) for y in range(image.height)]
        rows = [[y for y, c in enumerate(column) if near(c, ref)] for ref in ends]
        if all(rows) and max(rows[0]) < min(rows[1]) and max(rows[1]) < min(rows[2]) and len(set(column)) > 100:
            return True
    return False


class Shots:
    """Numbered screenshots of the steps, in ARTIFACTS (emptied first)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        self.folder, self.n = folder, 0

    def __call__(self, target, name: str) -> bytes:
        self.n += 1
        return target.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"))


def test_colour_bar_detector_tells_a_colour_bar_from_a_heatmap():
    from lmlab.viz.plots import figure_bytes, new_figure

    import torch

    w = torch.softmax(torch.randn(32, 32) * 3, dim=-1)
    with_bar, without = new_figure(6, 5), new_figure(6, 5)
    im = with_bar.add_subplot().imshow(w.numpy(), cmap="viridis", vmin=0, vmax=1)
    with_bar.colorbar(im)
    without.add_subplot().imshow(w.numpy(), cmap="viridis", vmin=0, vmax=1)
    assert has_colour_bar(figure_bytes(with_bar)) and not has_colour_bar(figure_bytes(without))


def test_explorer_in_jupyterlab(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    pytest.importorskip("ipyevents", reason="ipyevents is not installed")
    started = time.monotonic()
    work = tmp_path / "root"
    work.mkdir()
    name = "explorer.ipynb"
    (work / name).write_text(json.dumps(explorer_notebook()))
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
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1440, "height": 900},
            )
            try:
                shots = Shots(ARTIFACTS)
                api = f"{base}/api/kernels?token={token}"
                _drive_lab(context.new_page(), f"{base}/lab/tree/{name}?token={token}", api, log, shots)
                _drive_export(context.new_page(), work / "exports" / "heads.html", shots)
            finally:
                context.close()
    finally:
        _stop(proc, runtime_dir)
    assert not _pids_mentioning(str(runtime_dir)), "a kernel outlived the test"
    assert proc.poll() is not None
    elapsed = time.monotonic() - started
    assert elapsed < 300, f"the browser test took {elapsed:.0f} s"


_BROKEN = ("root => [...root.querySelectorAll('img')].filter(im => im.offsetParent !== null"
           " && (!im.complete || im.naturalWidth === 0)).length")


def _click_image_pixel(page, image, x: float, y: float, move_only: bool = False) -> None:
    """Click (or point) at pixel (x, y) of an image as it is shown (it may be scaled)."""
    box = image.bounding_box()
    natural = image.evaluate("im => [im.naturalWidth, im.naturalHeight]")
    px, py = box["x"] + x * box["width"] / natural[0], box["y"] + y * box["height"] / natural[1]
    page.mouse.move(px, py)
    if not move_only:
        page.mouse.click(px, py)


def _open_and_run(page, url: str, api: str, log: Path) -> None:
    page.set_default_timeout(60_000)  # ms, for single widget updates; generous: the machine may be busy
    page.goto(url)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
    # the notebook's session must be connected to a started kernel before "Run All"
    page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName", has_text="Python 3").first.wait_for(
        timeout=120_000)
    _wait_for_idle_kernel(api, 120)
    _run_all(page)
    try:
        page.locator(".lmlab-attention-explorer").nth(1).wait_for(state="visible", timeout=180_000)
        page.wait_for_function("() => { const im = document.querySelector('img.lmlab-head-image');"
                               " return im && im.complete && im.naturalWidth > 100; }")
        _wait_for_idle_kernel(api, 120)  # every cell done: widget messages are answered at once
    except Exception:
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        raise AssertionError(f"the explorers did not appear; kernel states {_kernel_states(api)}; cell errors: "
                             f"{errors}\nserver log: {log.read_text()[-2000:]}") from None


def _drive_lab(page, url: str, api: str, log: Path, shot: Shots) -> None:
    _open_and_run(page, url, api, log)
    root, full = page.locator(".lmlab-attention-explorer").nth(0), page.locator(".lmlab-attention-explorer").nth(1)
    head = root.locator("img.lmlab-head-image")
    outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    cells = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"cell (\d+ \d+) at (\d+) (\d+)", outputs)}
    assert set(cells) == {"5 2", "9 4"}, outputs

    def selected(control: str) -> str:
        return root.locator(f".lmlab-{control} select").evaluate("s => s.selectedOptions[0].text")

    # 1. drawn, wide enough, with a colour bar
    shot(page, "after-run-all")
    picture = shot(head, "head-view")
    assert head.evaluate("im => im.naturalWidth") >= 500
    assert has_colour_bar(picture), "no colour bar in the head view"
    assert selected("query").startswith("31:")

    # 2. a click on row 5 makes it the query
    old = head.get_attribute("src")
    _click_image_pixel(page, head, *cells["5 2"])
    page.wait_for_function("q => q.selectedOptions[0].text.startsWith('5:')",
                           arg=root.locator(".lmlab-query select").element_handle())
    page.wait_for_function("([im, old]) => im.src !== old && im.complete", arg=[head.element_handle(), old])
    readout = root.locator(".lmlab-readout")
    # the pointer's move before the click may be answered first ("under the pointer"): wait for the click's answer
    readout.filter(has_text=re.compile(r"selected: query 5 .* key 2 ")).wait_for()
    shot(root, "clicked-row-5")

    # 3. the pointer on cell (9, 4) shows its weight
    _click_image_pixel(page, head, *cells["9 4"], move_only=True)
    readout.filter(has_text="under the pointer").wait_for()
    assert re.search(r"query 9 .* key 4 .*: \d\.\d{3}", readout.inner_text()), readout.inner_text()
    assert selected("query").startswith("5:"), "pointing does not change the query"
    shot(root, "pointer-on-cell-9-4")

    # 4. a thumbnail opens its head
    root.get_by_role("tab", name="All heads").click()
    root.locator(".lmlab-thumb img").nth(3).click()  # layer 1, head 1 (2 heads per layer)
    head.wait_for(state="visible")
    page.wait_for_function("s => s.selectedOptions[0].text === '1'", arg=root.locator(".lmlab-layer select")
                           .element_handle())
    assert (selected("layer"), selected("head")) == ("1", "1")
    shot(root, "thumbnail-opened-layer-1-head-1")

    # 5. the generation tab: a hint, no broken image; then the steps
    root.get_by_role("tab", name="Generation").click()
    root.locator(".lmlab-generated", has_text="Press Generate").wait_for()
    assert root.evaluate(_BROKEN) == 0, "a broken image in the generation tab"
    assert not root.locator("img.lmlab-generation-image").is_visible()
    shot(root, "generation-before")
    root.locator("button.lmlab-generate").click()
    page.wait_for_function("im => im.offsetParent !== null && im.complete && im.naturalWidth > 100",
                           arg=root.locator("img.lmlab-generation-image").element_handle())
    assert root.locator(".lmlab-generated mark").count() == 1 and root.evaluate(_BROKEN) == 0
    shot(root, "generation-after")

    # 6. the context is full: Generate is off and says why
    assert full.locator("button.lmlab-generate").is_disabled()
    assert "fills the model's context" in full.locator(".lmlab-generated").inner_text()
    assert full.evaluate(_BROKEN) == 0
    shot(full, "generate-off-context-full")
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert not errors, f"cells wrote to stderr: {errors}"


def _drive_export(page, path: Path, shot: Shots) -> None:
    """The exported page, opened from disk: the same clicks and readout as the widget, nothing fetched."""
    assert path.is_file(), f"the notebook's export cell did not write {path}"
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    image = page.locator("#map")
    page.wait_for_function("() => { const im = document.getElementById('map');"
                           " return im.complete && im.naturalWidth > 100; }")
    data = json.loads(page.locator("#data").text_content())
    x0, y0, x1, y1 = data["box"]
    T = len(data["tokens"])
    cell = (x1 - x0) / T
    before = page.locator("#row").evaluate("r => r.style.top")
    _click_image_pixel(page, image, x0 + 2.5 * cell, y0 + 5.5 * cell)  # query 5, key 2
    assert page.locator("#query").inner_text().startswith("query 5 ")
    assert page.locator("#row").evaluate("r => r.style.top") != before, "the outline moved to row 5"
    assert re.search(r"query 5 .* key 2 .*: \d\.\d{3}", page.locator("#readout").inner_text())
    assert has_colour_bar(shot(image, "export-clicked-row-5"))
    src = image.get_attribute("src")
    page.locator(".thumb[data-key='0-1']").click()
    assert image.get_attribute("src") != src and "layer 0, head 1" in page.locator("#readout").inner_text()
    shot(page, "export-thumbnail-opened")
    assert all(u.startswith(("file://", "data:")) for u in requests), f"the page fetched {requests}"
