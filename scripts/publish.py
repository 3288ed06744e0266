"""Write where the course is published into the notebooks and README.md, from pyproject.toml.

    python dev.py publish            rewrite what differs, name the files changed
    python dev.py publish --check    change nothing; exit 1 and name the files that differ

The one place to change is `[tool.lmlab.publish]` in pyproject.toml (docs/publishing.md):

    install  what the setup cell of every notebook installs in Colab: a package name ("lmlab") or a pip
             URL ("git+https://github.com/OWNER/NAME@main", or the URL of a wheel)
    github   the GitHub repository "OWNER/NAME" that Colab opens the notebooks from; branch: its branch

From them this script writes, in every notebook: the `%pip install` line of the setup cell, an "Open in
Colab" badge as the first line, a line saying whether the notebook needs a GPU and how to get one in
Colab, and the kernel metadata (kernelspec python3, language python); in README.md: the same install line
and a Colab badge in every row of the notebooks table. Needs only Python 3.10+.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
COLAB_GPU = "In Colab: *Runtime › Change runtime type › T4 GPU* (or any GPU), then *Runtime › Run all*."
# Notebooks that choose a bigger setting when they find a GPU (`if device.type == "cuda"`).
BIGGER_ON_GPU = {"06", "07", "09", "10"}
GPU_LINE_START = "**GPU:**"


def settings(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    publish = tomllib.loads(pyproject.read_text())["tool"]["lmlab"]["publish"]
    for key in ("install", "github", "branch"):
        if not isinstance(publish.get(key), str) or not publish[key].strip():
            raise ValueError(f"pyproject.toml [tool.lmlab.publish] needs a non-empty string {key!r}")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", publish["github"]):
        raise ValueError(f"[tool.lmlab.publish] github must be 'OWNER/NAME', got {publish['github']!r}")
    return publish


def pip_spec(install: str) -> str:
    """The requirement the setup cell installs: lmlab with the notebooks' extras, from a name or a URL.

    Example: "git+https://github.com/o/n@main" -> "lmlab[notebooks] @ git+https://github.com/o/n@main";
    "lmlab" -> "lmlab[notebooks]".
    """
    if "://" in install or install.endswith(".whl"):
        return f"lmlab[notebooks] @ {install}"
    return f"{install}[notebooks]"


def pip_line(publish: dict[str, str]) -> str:
    return f'    %pip install -q "{pip_spec(publish["install"])}"'


def colab_url(publish: dict[str, str], notebook: str) -> str:
    return f"https://colab.research.google.com/github/{publish['github']}/blob/{publish['branch']}/notebooks/{notebook}"


def badge(publish: dict[str, str], notebook: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(publish, notebook)})"


def gpu_line(number: str) -> str:
    if number in BIGGER_ON_GPU:
        return (f"{GPU_LINE_START} optional, and worth it here: on a CPU this notebook runs in minutes; on a GPU "
                f"it trains a bigger model for longer. {COLAB_GPU}")
    return (f"{GPU_LINE_START} not needed: this notebook runs on a CPU in minutes (on a GPU it runs the same "
            "settings, faster). In Colab the default CPU runtime is enough.")


PIP_RE = re.compile(r'^ *%pip install -q "[^"]*"$', re.M)


def _lines(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def _source(text: str) -> list[str]:
    """Cell source as nbformat stores it: a list of lines, each with its newline but the last."""
    return text.splitlines(keepends=True)


def update_notebook(nb: dict, name: str, publish: dict[str, str]) -> dict:
    """The notebook with the publish settings written in (a new dict; the input is not changed)."""
    nb = json.loads(json.dumps(nb))
    cells = nb["cells"]
    first = cells[0]
    if first["cell_type"] != "markdown":
        raise ValueError(f"{name}: the first cell must be the markdown cell with the title")
    text = _lines(first["source"])
    lines = text.split("\n")
    if lines[0].startswith("[![Open In Colab]"):
        lines = lines[2:] if len(lines) > 1 and lines[1] == "" else lines[1:]
    lines = [badge(publish, name), ""] + lines
    gpu = textwrap.wrap(gpu_line(name[:2]), width=112, break_on_hyphens=False)
    idx = [i for i, l in enumerate(lines) if l.startswith(GPU_LINE_START)]
    if idx:
        end = idx[0]
        while end < len(lines) and lines[end] != "":  # the whole paragraph
            end += 1
        lines[idx[0]:end] = gpu
    else:
        title = next(i for i, l in enumerate(lines) if l.startswith("# "))
        end = title + 1  # after the paragraph that follows the title
        while end < len(lines) and lines[end] == "":
            end += 1
        while end < len(lines) and lines[end] != "":
            end += 1
        lines[end:end] = ["", *gpu]
    first["source"] = _source("\n".join(lines))
    setup = next(c for c in cells if c["cell_type"] == "code")
    src = _lines(setup["source"])
    if not PIP_RE.search(src):
        raise ValueError(f"{name}: the setup cell (first code cell) has no '%pip install -q \"...\"' line")
    setup["source"] = _source(PIP_RE.sub(pip_line(publish), src))
    nb["metadata"]["kernelspec"] = dict(KERNELSPEC)
    nb["metadata"].setdefault("language_info", {"name": "python"})
    return nb


def nb_text(nb: dict) -> str:
    """A notebook as nbformat writes it (indent 1, sorted keys, a final newline)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def update_readme(text: str, publish: dict[str, str]) -> str:
    text = PIP_RE.sub(pip_line(publish), text)

    def row(m: re.Match) -> str:
        name = m.group(1)
        return f"| {badge(publish, name + '.ipynb')} `{name}` |"

    # the notebooks table: the first column of each row is `NN_topic`, with or without a badge before it
    return re.sub(r"^\| (?:\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\) )?`(\d\d_\w+)` \|", row, text, flags=re.M)


def planned_changes(publish: dict[str, str]) -> dict[Path, str]:
    """{file: new text} for every file whose text the settings change."""
    changes = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        old = path.read_text(encoding="utf-8")
        new = nb_text(update_notebook(json.loads(old), path.name, publish))
        if new != old:
            changes[path] = new
    old = README.read_text(encoding="utf-8")
    new = update_readme(old, publish)
    if new != old:
        changes[README] = new
    return changes


def main(argv: list[str]) -> int:
    check = "--check" in argv
    publish = settings()
    changes = planned_changes(publish)
    for path, text in changes.items():
        print(("differs: " if check else "updated: ") + str(path.relative_to(ROOT)))
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and changes:
        print("run `python dev.py publish` to write pyproject.toml's [tool.lmlab.publish] into these files")
        return 1
    if not changes:
        print(f"notebooks and README.md install {pip_spec(publish['install'])!r} and open from {publish['github']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
