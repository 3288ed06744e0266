"""The explorers of notebooks 04-07 in a real browser: JupyterLab runs them and Chromium moves their controls.

A small notebook made here (no training: a next-token distribution from fixed logits) shows the gradient-reach
explorer of notebook 04, the score explorer of notebook 05, the size explorer of notebook 06 and the next-token
explorer of notebook 07. The test then does what a learner does and checks that the picture and the readout
follow:

0. 04: moving the LSTM's forget-bias slider to +4 with the keyboard lets its gradient reach all 60 steps;
1. 05: typing other keys into the text box changes the weights in the readout and the picture;
2. 06: choosing GPT-2's vocabulary in the menu changes the parameter count;
3. 07: moving the top-k slider with the keyboard leaves 3 tokens to draw from.

Screenshots of every step land in test-artifacts/browser/widgets-04-07/. Needs /usr/bin/chromium; skipped
without it.
"""

from __future__ import annotations

import re

import pytest

from browser_lab import ARTIFACTS, Shots, lab_session, notebook, stderr_outputs

pytestmark = pytest.mark.browser

REACH = '''\
from lmlab.widgets.gradient_reach import GradientReach
reach = GradientReach()
reach
'''
SCORES = '''\
from lmlab.widgets.attention_scores import ScoreExplorer
scores = ScoreExplorer()
scores
'''
SIZES = '''\
from lmlab.widgets.model_size import SizeExplorer
sizes = SizeExplorer()
sizes
'''
NEXT = '''\
import torch
from lmlab.widgets.next_token import NextTokenExplorer
logits = torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5, -2.0, -3.0])
next_token = NextTokenExplorer(logits, list("etaoinshrdlu"), title="fixed logits")
next_token
'''


def _image_changes(page, image, action) -> None:
    """Run `action` and wait until the image shows a new picture."""
    old = image.get_attribute("src")
    action()
    page.wait_for_function("([im, old]) => im.src !== old && im.complete && im.naturalWidth > 100",
                           arg=[image.element_handle(), old])


def test_widgets_04_07_in_jupyterlab(tmp_path):
    with lab_session(tmp_path, notebook(REACH, SCORES, SIZES, NEXT), "widgets.ipynb") as lab:
        shot = Shots(ARTIFACTS / "widgets-04-07")
        page = lab.open_and_run(".lmlab-next-token-explorer")
        shot(page, "after-run-all")

        grad = page.locator(".lmlab-gradient-reach")
        assert re.search(r"the LSTM's for \d+ steps", grad.locator(".widget-html-content").inner_text())
        bias = grad.locator(".noUi-handle").nth(1)  # the sliders: RNN scale, LSTM forget bias

        def eight_steps():  # 0.5 per step: 0 -> +4
            bias.focus()
            for _ in range(8):
                page.keyboard.press("ArrowRight")

        _image_changes(page, grad.locator("img"), eight_steps)
        grad.locator(".widget-html-content", has_text="the LSTM's for all 60 steps").wait_for()
        shot(grad, "04-gradient-reach-forget-bias-4")

        scores = page.locator(".lmlab-score-explorer")
        readout = scores.locator(".widget-html-content")
        before = readout.inner_text()
        assert "goes to k1" in before, before  # query (0, 2): keys 1 and 2 tie, the first wins
        box = scores.locator("input[type='text']")
        _image_changes(page, scores.locator("img"), lambda: (box.fill("3, 0; 0, 1"), box.press("Enter")))
        readout.filter(has_text="scores q·k = [0.00, 2.00]").wait_for()
        shot(scores, "05-score-explorer-new-keys")

        sizes = page.locator(".lmlab-size-explorer")
        total = sizes.locator(".widget-html-content b").first
        assert total.inner_text() == "108,352", total.inner_text()
        menu = sizes.locator("select")
        _image_changes(page, sizes.locator("img"), lambda: menu.select_option(label="GPT-2 BPE (50,257)"))
        sizes.locator(".widget-html-content", has_text="3,320,640").wait_for()  # 50,257 x 64 embedding weights
        shot(sizes, "06-size-explorer-gpt2-vocabulary")

        nxt = page.locator(".lmlab-next-token-explorer")
        assert "12 of 12 tokens can be drawn" in nxt.locator(".widget-html-content").inner_text()
        handle = nxt.locator(".noUi-handle").nth(1)  # the top-k slider: temperature, top-k, top-p

        def three_steps():
            handle.focus()
            for _ in range(3):
                page.keyboard.press("ArrowRight")

        _image_changes(page, nxt.locator("img"), three_steps)
        nxt.locator(".widget-html-content", has_text=re.compile(r"^3 of 12 tokens can be drawn")).wait_for()
        shot(nxt, "07-next-token-top-k-3")
        errors = stderr_outputs(page)
        assert not errors, f"cells wrote to stderr: {errors}"
