"""The install files agree with each other, and the quick start the README promises exists."""

import re
import subprocess
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import yaml  # PyYAML comes with jupyterlab

from conftest import ROOT


def _norm(spec: str) -> str:
    return re.sub(r"\s+", "", spec).lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(s) for s in project["dependencies"] + project["optional-dependencies"]["lab"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_norm(s) for s in pip_list if not s.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    assert any(str(d).startswith("python") for d in env["dependencies"])
    assert "pip" in env["dependencies"]


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README.md needs a '## Quick start' section with a code block"
    commands = [l for l in block.group(1).splitlines() if l.strip() and not l.strip().startswith("#")]
    assert len(commands) == 2, commands
    assert "lab" in commands[0] and "test" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci, ".ci/run must run the README's test command"


def test_console_script_is_declared_and_runs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["lmlab"] == "lmlab.cli:main"
    out = subprocess.run([sys.executable, "-m", "lmlab.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "env" in out.stdout


def test_import_lmlab_is_light():
    code = "import sys, lmlab; print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_lmlab_lets_idle_threads_sleep_unless_the_user_chose():
    code = "import os, lmlab; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                            capture_output=True, text=True, check=True)
    assert default.stdout.strip() == "PASSIVE" and chosen.stdout.strip() == "ACTIVE"


def _floors(specs: list[str]) -> dict[str, str]:
    return {s.split(">=")[0].strip().lower(): s.split(">=")[1].strip() for s in specs}


def test_constraints_floor_pins_the_floor_of_every_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["notebooks"]
    assert all(">=" in s for s in specs), "every dependency needs a floor ('>=')"
    pins = {}
    for line in (ROOT / "constraints-floor.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()

    def release(v):  # "2.6" and "2.6.0" are the same release
        parts = [int(x) for x in v.split(".")]
        while parts and parts[-1] == 0:
            parts.pop()
        return tuple(parts)

    floors = _floors(specs)
    assert set(pins) == set(floors), f"only pinned: {set(pins) - set(floors)}; not pinned: {set(floors) - set(pins)}"
    for name, floor in floors.items():
        assert release(pins[name]) == release(floor), f"{name}: pinned {pins[name]}, floor {floor}"
    assert release(floors["torch"]) >= (2, 6), "torch before 2.6 allows a weights_only bypass (CVE-2025-32434)"


def test_notebooks_and_readme_follow_the_publish_settings():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "publish.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_notebook_has_kernel_metadata_a_colab_badge_and_a_gpu_line():
    import json

    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["lmlab"]["publish"]
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"] == {"display_name": "Python 3 (ipykernel)", "language": "python",
                                                "name": "python3"}, path.name
        assert nb["metadata"]["language_info"]["name"] == "python", path.name
        first = "".join(nb["cells"][0]["source"])
        assert first.startswith("[![Open In Colab]"), path.name
        assert f"github/{settings['github']}/blob/{settings['branch']}/notebooks/{path.name})" in first, path.name
        assert "**GPU:**" in first, path.name
        setup = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
        assert settings["install"] in setup and "lmlab[notebooks]" in setup, path.name


def test_the_wheel_holds_every_file_of_the_package(tmp_path):
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)  # an isolated build, as a release would be
    wheel = next(tmp_path.glob("lmlab-*.whl"))
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    package_files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "lmlab").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    missing = sorted(f for f in package_files if f not in in_wheel)
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data]): {missing}"
    assert "lmlab/reference/notebook_versions.json" in in_wheel and "lmlab/exercises/nb02.py" in in_wheel
