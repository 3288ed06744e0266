"""The package stays readable module by module: no import circle, small modules and functions, no private
name taken from another module. Measured by scripts/check_layout.py (which prints the sizes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_layout", ROOT / "scripts" / "check_layout.py")
layout = importlib.util.module_from_spec(_spec)
sys.modules["check_layout"] = layout
_spec.loader.exec_module(layout)

FILES = layout.package_files()
TESTS = sorted((ROOT / "tests").glob("*.py")) + [ROOT / "conftest.py"]

DATA_TABLES: set[str] = set()  # functions that are mostly a table of data may be longer


def test_the_checker_sees_what_it_checks(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import _helper\n\ndef f():\n    from pkg import c\n")
    (pkg / "b.py").write_text("def _helper():\n    import pkg.a\n")
    (pkg / "c.py").write_text("x = 1\n" * 5)
    files = sorted(pkg.glob("*.py"))
    graph = {layout.module_name(p, tmp_path): set() for p in files}
    for p in files:
        m = layout.module_name(p, tmp_path)
        for target, _ in layout.imports_of(p, m, set(graph)):
            graph[m].add(target)
    assert layout.import_cycles(graph) == [["pkg.a", "pkg.b"]]  # through an import inside a function too
    assert layout.module_sizes(files, tmp_path)["pkg.c"] == 5
    assert layout.function_sizes(files, tmp_path) == {"pkg.a:f": 2, "pkg.b:_helper": 2}


def test_no_import_circle():
    assert layout.import_cycles(layout.import_graph(FILES)) == []


def test_no_module_over_450_lines():
    big = {m: n for m, n in layout.module_sizes(FILES).items() if n > layout.MAX_MODULE_LINES}
    assert big == {}


def test_no_function_over_80_lines():
    long = {f: n for f, n in layout.function_sizes(FILES).items() if n > layout.MAX_FUNCTION_LINES}
    assert set(long) <= DATA_TABLES, long


def test_no_private_name_imported_across_modules():
    found = layout.private_imports(FILES + TESTS, FILES + TESTS)
    assert found == []
