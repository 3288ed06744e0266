"""The tools that run the notebooks under other conditions: thread counts and devices reach the kernels."""

import importlib.util
import os

import nbformat
import pytest
import torch

from conftest import ROOT
from lmlab.repro import setup


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_setup_obeys_lmlab_threads_and_lmlab_device(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LMLAB_THREADS", "3")
        monkeypatch.setenv("LMLAB_DEVICE", "cpu")
        assert str(setup(seed=0, threads=2)) == "cpu" and torch.get_num_threads() == 3
        monkeypatch.setenv("LMLAB_THREADS", "0")
        with pytest.raises(ValueError, match="threads must be a positive int"):
            setup(seed=0, threads=2)
        monkeypatch.delenv("LMLAB_THREADS")
        setup(seed=0, threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _tiny_notebook(path, stored_threads: str):
    """A notebook whose stored output is the thread count that setup(threads=2) leaves."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(
        "import torch\nfrom lmlab.repro import setup\ndevice = setup(seed=0, threads=2)\n"
        "print(torch.get_num_threads(), device)")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{stored_threads} cpu\n")]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_check_notebooks_runs_nbval_under_each_condition(tmp_path):
    check = _script("check_notebooks")
    nb = _tiny_notebook(tmp_path / "tiny.ipynb", stored_threads="2")
    assert check.check(nb, "threads=2")[0] == "ok"
    assert check.check(nb, "threads=1")[0] == "cells 0"  # LMLAB_THREADS reached the kernel
    table = check.table({("tiny.ipynb", "threads=2"): "ok", ("tiny.ipynb", "threads=1"): "cells 0"},
                        [nb], ["threads=1", "threads=2"])
    assert table.splitlines()[1].split() == ["tiny.ipynb", "cells", "0", "ok"]


@pytest.mark.slow
def test_run_notebooks_summarises_a_run_on_the_chosen_device(tmp_path, monkeypatch):
    run = _script("run_notebooks")
    monkeypatch.setenv("LMLAB_DEVICE", "cpu")
    monkeypatch.setenv("LMLAB_THREADS", "1")
    nb = _tiny_notebook(tmp_path / "tiny.ipynb", stored_threads="whatever")
    good = run.run_one(str(nb), timeout=120)
    assert good["ok"] and good["notebook"] == "tiny.ipynb" and good["seconds"] > 0
    bad_nb = nbformat.read(nb, as_version=4)
    bad_nb.cells.append(nbformat.v4.new_code_cell("print('validation loss 1.23')\nassert False, 'the claim'"))
    nbformat.write(bad_nb, tmp_path / "bad.ipynb")
    bad = run.run_one(str(tmp_path / "bad.ipynb"), timeout=120)
    assert not bad["ok"] and "AssertionError" in bad["error"] and "the claim" in bad["failing_cell"]
    assert bad["headline"] == ["validation loss 1.23"]
    summary = {"device": "cpu: test", "device_kind": "cpu", "date": "2026-01-01", "jobs": 1, "wall_seconds": 3.0,
               "note": "No GPU.", "versions": {"torch": torch.__version__}, "passed": 1, "notebooks": [good, bad]}
    md = run.markdown(summary)
    assert "| `tiny.ipynb` | passed |" in md and "**failed**: " in md and "1 of 2 notebooks ran to the end" in md
    assert os.environ["LMLAB_DEVICE"] == "cpu"
