"""Atomic file writes: a temporary file beside the target, renamed over it; never through a planted link."""

from __future__ import annotations

import json
import os

import pytest

from lmlab import files


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "history.json"
    target.write_text("old")
    files.atomic_write_json(target, {"steps": [1, 2]})
    assert json.loads(target.read_text()) == {"steps": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_planted_link_at_the_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "history.json"
    planted = tmp_path / ".history.json.tmp-planted"
    planted.symlink_to(victim)  # someone guessed (or raced for) the temporary name
    real = files.temporary_name
    names = iter([planted])
    monkeypatch.setattr(files, "temporary_name", lambda path: next(names, None) or real(path))
    files.atomic_write_json(target, {"steps": [1]})
    assert victim.read_text() == "precious"  # the link was not followed
    assert json.loads(target.read_text()) == {"steps": [1]} and not target.is_symlink()
    assert planted.is_symlink()  # and not removed either: it is not ours


def test_new_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        files.atomic_write(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # readable by others, as a plain write would be
