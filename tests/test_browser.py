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
import re
import time
from pathlib import Path

import pytest

from browser_lab import ARTIFACTS, Shots, click_image_pixel, lab_session, notebook, stderr_outputs

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
    return notebook(SETUP, EXPLORER, FULL, EXPORT)


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
    started = time.monotonic()
    with lab_session(tmp_path, explorer_notebook(), "explorer.ipynb") as lab:
        shots = Shots(ARTIFACTS)
        page = lab.open_and_run(".lmlab-attention-explorer")  # the last one: both explorers are there
        page.wait_for_function("() => { const im = document.querySelector('img.lmlab-head-image');"
                               " return im && im.complete && im.naturalWidth > 100; }")
        _drive_lab(page, shots)
        _drive_export(lab.context.new_page(), lab.root / "exports" / "heads.html", shots)
    elapsed = time.monotonic() - started
    assert elapsed < 300, f"the browser test took {elapsed:.0f} s"


_BROKEN = ("root => [...root.querySelectorAll('img')].filter(im => im.offsetParent !== null"
           " && (!im.complete || im.naturalWidth === 0)).length")


def _drive_lab(page, shot: Shots) -> None:
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
    click_image_pixel(page, head, *cells["5 2"])
    page.wait_for_function("q => q.selectedOptions[0].text.startsWith('5:')",
                           arg=root.locator(".lmlab-query select").element_handle())
    page.wait_for_function("([im, old]) => im.src !== old && im.complete", arg=[head.element_handle(), old])
    readout = root.locator(".lmlab-readout")
    # the pointer's move before the click may be answered first ("under the pointer"): wait for the click's answer
    readout.filter(has_text=re.compile(r"selected: query 5 .* key 2 ")).wait_for()
    shot(root, "clicked-row-5")

    # 3. the pointer on cell (9, 4) shows its weight
    click_image_pixel(page, head, *cells["9 4"], move_only=True)
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
    errors = stderr_outputs(page)
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
    click_image_pixel(page, image, x0 + 2.5 * cell, y0 + 5.5 * cell)  # query 5, key 2
    assert page.locator("#query").inner_text().startswith("query 5 ")
    assert page.locator("#row").evaluate("r => r.style.top") != before, "the outline moved to row 5"
    assert re.search(r"query 5 .* key 2 .*: \d\.\d{3}", page.locator("#readout").inner_text())
    assert has_colour_bar(shot(image, "export-clicked-row-5"))
    src = image.get_attribute("src")
    page.locator(".thumb[data-key='0-1']").click()
    assert image.get_attribute("src") != src and "layer 0, head 1" in page.locator("#readout").inner_text()
    shot(page, "export-thumbnail-opened")
    assert all(u.startswith(("file://", "data:")) for u in requests), f"the page fetched {requests}"
