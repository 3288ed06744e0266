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


def test_below_the_supported_range_is_reported_first_with_the_fix():
    rec = {"torch": "2.13.0", "numpy": "2.4.6"}
    have = {"torch": "2.5.1", "numpy": "2.4.6", "tqdm": "4.60.0"}
    drift = version_drift(rec, have, floors={"torch": "2.6", "numpy": "1.24", "tqdm": "4.66"})
    assert [(d.package, d.level) for d in drift] == [("torch", "below range"), ("tqdm", "below range")]
    assert "CVE-2025-32434" in drift[0].effect and 'pip install -U "torch>=2.6"' in drift[0].effect
    assert str(drift[1]).startswith("tqdm: installed 4.60.0 is below the supported range")
    # at the floor, or a package with no recorded version and no floor problem: nothing to say
    assert version_drift({"torch": "2.6.0"}, {"torch": "2.6.0", "tqdm": "4.66.0"}, {"torch": "2.6", "tqdm": "4.66"}) == []


def test_floors_come_from_the_installed_package_metadata():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from conftest import ROOT
    from lmlab.envreport import supported_floors

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = supported_floors()
    assert floors == {d.split(">=")[0].strip().lower(): d.split(">=")[1].strip() for d in deps}
    assert tuple(int(x) for x in floors["torch"].split(".")[:2]) >= (2, 6)  # CVE-2025-32434
