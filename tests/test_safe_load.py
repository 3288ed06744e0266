"""lmlab.safe_load: pickled torch files are loaded with weights_only=True, and only on torch 2.6 or later."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch

import lmlab
from lmlab.safe_load import safe_torch_load, torch_loads_pickles_safely

LMLAB = Path(lmlab.__file__).resolve().parent


class _RunsCode:
    """Pickles to a call of Path.write_text: loading the file would write the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the pickle's code ran"))


@pytest.mark.parametrize("version, safe", [("2.5.1+cu121", False), ("2.6.0", True), ("2.10.0", True),
                                           ("1.13.1", False), ("3.0.0a0", True), ("nightly", False)])
def test_torch_version_floor(version, safe):
    assert torch_loads_pickles_safely(version) is safe


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    with open(tmp_path / "optimizer.pt", "wb") as f:
        pickle.dump({"state": _RunsCode(marker)}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        safe_torch_load(tmp_path / "optimizer.pt")
    assert not marker.exists()
    torch.save({"step": torch.tensor(3)}, tmp_path / "plain.pt")
    assert safe_torch_load(tmp_path / "plain.pt")["step"].item() == 3


def test_old_torch_refuses_before_reading(tmp_path, monkeypatch):
    torch.save({"step": torch.tensor(3)}, tmp_path / "optimizer.pt")
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(ValueError, match=r"optimizer\.pt.*torch 2\.5\.1.*CVE-2025-32434.*torch 2\.6 or later"):
        safe_torch_load(tmp_path / "optimizer.pt")


def test_every_torch_load_in_lmlab_passes_weights_only_true():
    calls = []
    for path in sorted(LMLAB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                flags = {k.arg: k.value for k in node.keywords}
                ok = isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True
                calls.append((f"{path.relative_to(LMLAB)}:{node.lineno}", ok))
    assert calls, "no torch.load call found: the scan is broken"
    assert [c for c, ok in calls if not ok] == []
