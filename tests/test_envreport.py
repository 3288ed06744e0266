"""The environment report and version drift."""

import json

from lmlab.envreport import installed_versions, load_recorded_versions, record_notebook_versions, version_drift


def test_drift_levels_and_build_tags():
    rec = {"torch": "2.13.0", "numpy": "1.26.4", "tqdm": "4.66.1", "matplotlib": "3.9.0", "ipywidgets": "8.1.0"}
    have = {"torch": "2.13.0+cu124", "numpy": "2.1.0", "tqdm": "4.66.2", "matplotlib": "3.10.0", "ipywidgets": None}
    drift = {d.package: d for d in version_drift(rec, have)}
    assert "torch" not in drift  # same release, another build: nothing changes
    assert drift["numpy"].level == "major"
    assert drift["tqdm"].level == "patch"
    assert drift["matplotlib"].level == "minor"
    assert drift["ipywidgets"].level == "missing" and "pip install ipywidgets" in drift["ipywidgets"].effect
    assert "numpy: notebooks ran with 1.26.4, installed 2.1.0" in str(drift["numpy"])


def test_no_drift_against_itself():
    v = installed_versions()
    assert version_drift(v, v) == []


def test_record_and_reload(tmp_path):
    path = tmp_path / "versions.json"
    data = record_notebook_versions(["01_x.ipynb"], path)
    assert json.loads(path.read_text()) == data == load_recorded_versions(path)
    assert data["notebooks"]["01_x.ipynb"]["torch"] == installed_versions()["torch"]
    assert load_recorded_versions(tmp_path / "missing.json") == {}
