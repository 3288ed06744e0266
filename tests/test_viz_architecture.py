"""The architecture diagrams draw without pyplot, at a readable size, and refuse what they cannot draw."""

from __future__ import annotations

import pytest

from lmlab.viz.architecture import causal_mask_diagram, gpt_block_diagram, lstm_cell_diagram, multi_head_diagram
from lmlab.viz.plots import figure_bytes


@pytest.mark.parametrize("draw", [lstm_cell_diagram, causal_mask_diagram, multi_head_diagram, gpt_block_diagram])
def test_diagram_draws_a_picture_with_readable_text(draw):
    fig = draw()
    assert figure_bytes(fig, "png", 100).startswith(b"\x89PNG")
    width, height = fig.get_size_inches()
    assert 5 <= width <= 9 and height <= 8
    sizes = [t.get_fontsize() for ax in fig.axes for t in ax.texts]
    assert sizes and min(sizes) >= 8


def test_causal_mask_diagram_marks_the_allowed_pairs():
    fig = causal_mask_diagram("abc")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("T") == 6 and texts.count("F") == 3  # j <= i: 1 + 2 + 3 allowed


def test_multi_head_diagram_checks_n_head():
    with pytest.raises(ValueError, match="n_head"):
        multi_head_diagram(0)
