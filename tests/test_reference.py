"""Reference loss bands: built from runs, and the verdict a learner reads."""

import math

import pytest

from lmlab.reference import compare_to_reference, load_band, make_band, save_band


@pytest.fixture
def band_dir(tmp_path, monkeypatch):
    import lmlab.reference as ref

    monkeypatch.setattr(ref, "BAND_DIR", tmp_path)
    steps = [0, 100, 200, 300]
    runs = [(steps, [4.0, 3.0, 2.5, 2.2]), (steps, [4.1, 3.2, 2.6, 2.3]), (steps, [3.9, 3.1, 2.55, 2.25])]
    save_band(make_band("toy", runs, margin=0.0), tmp_path)
    return tmp_path


def test_band_is_min_and_max_across_runs_widened_by_margin():
    steps = [0, 10]
    band = make_band("b", [(steps, [2.0, 1.0]), (steps, [3.0, 1.5])], margin=0.1)
    assert band.low == [pytest.approx(1.8), pytest.approx(0.9)]
    assert band.high == [pytest.approx(3.3), pytest.approx(1.65)]
    assert band.median == [2.5, 1.25]
    assert band.runs == 2


def test_band_needs_two_runs_on_the_same_steps():
    with pytest.raises(ValueError, match="at least 2 runs"):
        make_band("b", [([0], [1.0])])
    with pytest.raises(ValueError, match="same steps"):
        make_band("b", [([0, 1], [1.0, 1.0]), ([0, 2], [1.0, 1.0])])


def test_verdicts(band_dir):
    steps = [0, 100, 200, 300]
    assert compare_to_reference((steps, [4.0, 3.1, 2.55, 2.25]), "toy").ok
    slow = compare_to_reference((steps, [4.0, 3.6, 3.2, 3.0]), "toy")
    assert not slow.ok and "above" in slow.message and slow.above == 3
    fast = compare_to_reference((steps, [3.0, 2.0, 1.5, 1.2]), "toy")
    assert not fast.ok and "below" in fast.message
    nan = compare_to_reference((steps, [4.0, math.nan, math.nan, math.nan]), "toy")
    assert "NaN" in nan.message
    outside = compare_to_reference(([1000, 2000], [1.0, 1.0]), "toy")
    assert outside.total == 0 and "no evaluated step" in outside.message


def test_unknown_band_names_the_known_ones(band_dir):
    assert load_band("toy").steps == [0, 100, 200, 300]
    with pytest.raises(ValueError, match="known bands: toy"):
        load_band("nope")
