"""The widgets of notebooks 01-03 in a real browser: JupyterLab in headless Chromium, driven as a learner does.

A small notebook made here holds one widget of each notebook, on small data so that it runs in seconds and does
not change when the course's notebooks do: the add-k smoothing explorer (01), the optimizer explorer (02) and
the BPE merge stepper (03). After "Run All", Chromium

1. drags the smoothing explorer's k slider to the right: the picture and the readout change, and the readout
   reads a larger k;
2. clicks "Adam" on the optimizer explorer: the picture changes and the title of the readout follows;
3. drags the BPE stepper's slider to the end: more merges, fewer tokens, the newest token marked.

Screenshots of every step land in test-artifacts/browser/widgets-00-03/. Skipped without /usr/bin/chromium.
"""

from __future__ import annotations

import re
import time

import pytest

from browser_lab import ARTIFACTS, Shots, lab_session, notebook, stderr_outputs

pytestmark = pytest.mark.browser

SMOOTHING = '''\
from lmlab.data import MarkovSource
from lmlab.widgets.smoothing import SmoothingExplorer

src = MarkovSource("abcd", order=2, seed=0)
smoothing = SmoothingExplorer(src.sample_ids(4000, seed=0), src.sample_ids(2000, seed=1), 4, n=3,
                              sizes=[200, 4000], n_train=200, k=0.01, alphabet="abcd", floor=src.entropy_rate())
smoothing
'''
OPTIMIZER = '''\
import torch
from lmlab.widgets.optimizers import OptimizerExplorer

g = torch.Generator().manual_seed(0)
C = torch.randint(0, 30, (10, 10), generator=g).float()
OptimizerExplorer(C, "SGD", lr=1.0, steps=50)
'''
BPE = '''\
from lmlab.widgets.bpe_stepper import BPEStepper

TEXT = "the cat sat on the mat. the cat ate the hat. then the cat sat on the rat.\\n" * 4
BPEStepper(TEXT, n_merges=15, show=TEXT[:74])
'''


def widgets_notebook() -> dict:
    return notebook(SMOOTHING, OPTIMIZER, BPE)


def drag_slider(page, root, fraction: float, index: int = 0) -> None:
    """Drag the handle of the root's index-th slider to ``fraction`` of its track, as a learner's mouse does."""
    track = root.locator(".noUi-base").nth(index)
    handle = root.locator(".noUi-handle").nth(index)
    tb, hb = track.bounding_box(), handle.bounding_box()
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    page.mouse.down()
    page.mouse.move(tb["x"] + fraction * tb["width"], hb["y"] + hb["height"] / 2, steps=8)
    page.mouse.up()


def image_src(root) -> str:
    return root.locator("img").first.get_attribute("src") or ""


def test_widgets_of_notebooks_01_to_03_in_jupyterlab(tmp_path):
    started = time.monotonic()
    with lab_session(tmp_path, widgets_notebook(), "widgets.ipynb") as lab:
        shots = Shots(ARTIFACTS / "widgets-00-03")
        page = lab.open_and_run(".lmlab-bpe-stepper")
        smoothing = page.locator(".lmlab-smoothing-explorer")
        optimizer = page.locator(".lmlab-optimizer-explorer")
        stepper = page.locator(".lmlab-bpe-stepper")
        for root in (smoothing, optimizer):
            page.wait_for_function("im => im.complete && im.naturalWidth > 100",
                                   arg=root.locator("img").first.element_handle())
        shots(page, "after-run-all")
        _drive_smoothing(page, smoothing, shots)
        _drive_optimizer(page, optimizer, shots)
        _drive_stepper(page, stepper, shots)
        errors = stderr_outputs(page)
        assert not errors, f"cells wrote to stderr: {errors}"
    elapsed = time.monotonic() - started
    assert elapsed < 300, f"the browser test took {elapsed:.0f} s"


def _k_of(readout: str) -> float:
    match = re.search(r"k = ([0-9.e+-]+):", readout)
    assert match, readout
    return float(match.group(1))


def _drive_smoothing(page, root, shots: Shots) -> None:
    """01: the k slider moves the marker; the readout reads the new k and its loss."""
    readout = root.locator(".widget-html-content").last
    before_src, before = image_src(root), readout.inner_text()
    assert _k_of(before) == pytest.approx(0.01, rel=0.05)
    shots(root, "smoothing-before")
    root.locator(".noUi-handle").first.scroll_into_view_if_needed()
    drag_slider(page, root, 0.8)
    page.wait_for_function("([im, old]) => im.src !== old && im.complete", arg=[root.locator("img").first
                                                                                .element_handle(), before_src])
    # the slider updates while it is dragged: wait for the value where the drag ended
    page.wait_for_function("el => { const m = el.innerText.match(/k = ([0-9.e+-]+):/);"
                           " return m !== null && parseFloat(m[1]) > 1; }", arg=readout.element_handle())
    after = readout.inner_text()
    assert _k_of(after) > 1.0 and after != before, after  # 80% of a log scale from 0.001 to 100
    assert "Too much smoothing" in after or "Near the best" in after
    shots(root, "smoothing-k-dragged-right")


def _drive_optimizer(page, root, shots: Shots) -> None:
    """02: the Adam button retrains; picture and readout change."""
    root.scroll_into_view_if_needed()
    readout = root.locator(".widget-html-content").last
    before_src, before = image_src(root), readout.inner_text()
    shots(root, "optimizer-before")
    root.get_by_role("button", name="Adam", exact=True).click()
    page.wait_for_function("([im, old]) => im.src !== old && im.complete", arg=[root.locator("img").first
                                                                                .element_handle(), before_src])
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[readout.element_handle(), before])
    assert "above the minimum" in readout.inner_text() or "overshoot" in readout.inner_text()
    shots(root, "optimizer-adam")


def _drive_stepper(page, root, shots: Shots) -> None:
    """03: dragging the merge slider to the end: more merges, fewer tokens, the newest token highlighted."""
    root.scroll_into_view_if_needed()
    readout = root.locator(".lmlab-bpe-readout")
    tokens = root.locator(".lmlab-bpe-tokens span")
    start = tokens.count()
    assert "one token per byte" in readout.inner_text() and start == 74
    shots(root, "bpe-start")
    drag_slider(page, root, 1.0)
    readout.filter(has_text=re.compile(r"Merge 15 ")).wait_for()
    assert 0 < tokens.count() < start
    n = int(re.search(r"now (\d+) tokens", readout.inner_text()).group(1))
    assert n == tokens.count()
    assert root.locator(".lmlab-bpe-tokens span[style*='#f4b6b6']").count() >= 1
    shots(root, "bpe-15-merges")
