"""Measure how readable the package's layout is: module sizes, function sizes, import circles and private
names taken across modules. ``tests/test_layout.py`` holds lmlab to the targets below.

    python scripts/check_layout.py            the largest modules, the longest functions, every problem
    python scripts/check_layout.py --all      every module and every function over 40 lines

Targets (DEVELOPERS.md): no module in lmlab/ over 450 lines, no function over 80 lines except data tables,
no import circle among lmlab's modules, no name starting with ``_`` imported from another module.

Sizes are counted from the source with ``ast``: a module's size is its number of lines; a function's is
from its ``def`` line to its last line (a nested function counts in its own size and in its parent's).
Imports are counted wherever they stand, inside functions too (a circle through an import inside a
function is still a circle a reader has to follow).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def module_name(path: Path, root: Path = ROOT) -> str:
    """lmlab/models/gpt.py -> "lmlab.models.gpt"; lmlab/data/__init__.py -> "lmlab.data"; a test file (its
    folder is on sys.path) -> its stem: tests/ddp_worker.py -> "ddp_worker"."""
    if path.parent.name == "tests" or path.parent == root:
        return path.stem
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_files(package: str = "lmlab", root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def module_sizes(files: list[Path], root: Path = ROOT) -> dict[str, int]:
    """{module: lines}."""
    return {module_name(p, root): len(p.read_text(encoding="utf-8").splitlines()) for p in files}


def function_sizes(files: list[Path], root: Path = ROOT) -> dict[str, int]:
    """{"module:Class.function": lines} for every function and method, nested ones too."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str, module: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out[f"{module}:{name}"] = child.end_lineno - child.lineno + 1
                visit(child, name + ".", module)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", module)
            else:
                visit(child, prefix, module)

    for p in files:
        visit(ast.parse(p.read_text(encoding="utf-8")), "", module_name(p, root))
    return out


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in ``path`` that names a module of ``known``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                here = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            names = [a.name for a in node.names]
            # "from lmlab import models" imports the module lmlab.models
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
            out += [(s, []) for s in subs]
            out.append((base, [n for n in names if f"{base}.{n}" not in known]))
    return [(m, names) for m, names in out if m in known]


def import_graph(files: list[Path]) -> dict[str, set[str]]:
    """{module: the lmlab modules it imports}. Importing ``a.b.c`` also runs ``a.b``'s __init__, so it counts."""
    known = {module_name(p) for p in files}
    graph: dict[str, set[str]] = {m: set() for m in known}
    for p in files:
        m = module_name(p)
        for target, _ in imports_of(p, m, known):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # the packages on the way are imported too
                parent = ".".join(parts[:i])
                if parent in known and parent != m and not m.startswith(parent + "."):
                    graph[m].add(parent)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def private_imports(files: list[Path], known_files: list[Path]) -> list[str]:
    """'file: from module import _name' for every private name (or private module) ``files`` take from another
    module of ``known_files``; a package's own __init__ importing from its modules is counted too."""
    known = {module_name(p) for p in known_files}
    out = []
    for p in files:
        m = module_name(p)
        for target, names in imports_of(p, m, known):
            private_module = any(part.startswith("_") and part != "__init__" for part in target.split("."))
            bad = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private_module or bad:
                out.append(f"{p.relative_to(ROOT).as_posix()}: from {target} import {', '.join(bad or names)}")
        text = p.read_text(encoding="utf-8")
        for target in known:  # attribute access such as lmlab.checkpoint._fsync_file
            if f"{target}._" in text:
                for line in text.splitlines():
                    code = line.strip()
                    if code.startswith(("from ", "import ")) or code.startswith("#"):
                        continue
                    if f"{target}._" in line and f"{target}.__" not in line:
                        out.append(f"{p.relative_to(ROOT).as_posix()}: {line.strip()}")
                        break
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every module and every function over 40 lines")
    args = parser.parse_args(argv)
    files = package_files()
    sizes = module_sizes(files)
    funcs = function_sizes(files)
    top_modules = sorted(sizes.items(), key=lambda kv: -kv[1])
    top_funcs = sorted(funcs.items(), key=lambda kv: -kv[1])
    if not args.all:
        top_modules, top_funcs = top_modules[:12], top_funcs[:12]
    else:
        top_funcs = [kv for kv in top_funcs if kv[1] > 40]
    print("| module | lines |\n|---|---:|")
    for m, n in top_modules:
        print(f"| {m} | {n} |")
    print("\n| function | lines |\n|---|---:|")
    for f, n in top_funcs:
        print(f"| {f} | {n} |")
    cycles = import_cycles(import_graph(files))
    tests = sorted((ROOT / "tests").glob("*.py")) + [ROOT / "conftest.py"]
    private = private_imports(files + tests, files + tests)
    print(f"\nimport circles: {cycles or 'none'}")
    print("private names imported across modules:" + ("".join(f"\n  {x}" for x in private) or " none"))
    big = [m for m, n in sizes.items() if n > MAX_MODULE_LINES]
    long = [f for f, n in funcs.items() if n > MAX_FUNCTION_LINES]
    print(f"modules over {MAX_MODULE_LINES} lines: {big or 'none'}")
    print(f"functions over {MAX_FUNCTION_LINES} lines: {long or 'none'}")
    return 1 if (cycles or private or big or long) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
