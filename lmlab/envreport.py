"""The environment report behind `lmlab env` and notebook 00: versions, device, threads, data, drift.

Version drift is the most common reason a course notebook stops working. The tool that executes the
notebooks (`python dev.py execute-notebooks`) records the versions it ran with in
`lmlab/reference/notebook_versions.json`; `report()` compares them with what is installed here and
says what a difference may change. A version below the supported range (the floors of lmlab's
dependencies in pyproject.toml, tested with `python dev.py test-floors`) is reported first.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

# The packages whose versions change what the notebooks print or how they run.
TRACKED = ["torch", "numpy", "transformers", "tokenizers", "safetensors", "matplotlib", "ipywidgets", "tqdm"]
VERSIONS_FILE = Path(__file__).parent / "reference" / "notebook_versions.json"

# Why a floor is where it is, when the reason is more than "older versions were not tested".
_FLOOR_REASONS = {
    "torch": "versions before 2.6 let torch.load(weights_only=True) run code from a malicious file (CVE-2025-32434)",
}

# What a version change of each package may mean for a learner.
_EFFECTS = {
    "torch": "trained losses may differ in the last digits; new releases can change defaults or deprecate APIs",
    "numpy": "random numbers from NumPy and printed array formats may differ",
    "transformers": "the Hugging Face notebooks (10, 12) use its model classes and generate(); APIs move between major versions",
    "tokenizers": "the exported fast tokenizers are built with it; file formats can change between versions",
    "safetensors": "checkpoint files are written with it",
    "matplotlib": "figures may look slightly different",
    "ipywidgets": "the attention explorer needs ipywidgets 8; other major versions may not render",
    "tqdm": "progress bars may look different",
}


def installed_version(name: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_versions() -> dict[str, str | None]:
    versions = {"python": platform.python_version()}
    versions.update({name: installed_version(name) for name in TRACKED})
    return versions


def _release(v: str | None) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13, 0); unknown parts are dropped."""
    if not v:
        return ()
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def supported_floors() -> dict[str, str]:
    """The lowest supported version of each of lmlab's dependencies, from the installed package's metadata
    (the ``>=`` floors of pyproject.toml's ``dependencies``), e.g. ``{"torch": "2.6", ...}``.

    Optional extras (``lab``, ``test``) are left out; ``{}`` when lmlab is not installed as a package.
    """
    try:
        requires = importlib.metadata.requires("lmlab") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    floors = {}
    for req in requires:
        if ";" in req:  # 'peft>=0.10; extra == "lab"': an optional extra
            continue
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9.]*)", req)
        if m:
            floors[m.group(1).lower()] = m.group(2)
    return floors


@dataclass
class Drift:
    package: str
    recorded: str | None
    installed: str | None
    level: str  # "below range", "major", "minor", "patch", "missing"
    effect: str

    def __str__(self) -> str:
        if self.level == "below range":
            return f"{self.package}: installed {self.installed} is below the supported range: {self.effect}"
        return f"{self.package}: notebooks ran with {self.recorded}, installed {self.installed} ({self.level}): {self.effect}"


def _below_floor(name: str, have: str | None, floors: dict[str, str]) -> Drift | None:
    floor = floors.get(name)
    if not have or not floor or _release(have) >= _release(floor):
        return None
    reason = _FLOOR_REASONS.get(name, "the course is tested from this version on")
    return Drift(name, None, have, "below range", f"lmlab needs {name}>={floor} ({reason}): "
                                                  f"`pip install -U \"{name}>={floor}\"`")


def version_drift(recorded: dict[str, str | None] | None = None, installed: dict[str, str | None] | None = None,
                  floors: dict[str, str] | None = None) -> list[Drift]:
    """Compare installed versions with the supported range and with the recorded notebook versions.

    One `Drift` per package that is below its floor (level "below range") or differs from the version the
    notebooks were executed with. ``floors`` defaults to `supported_floors()`.

    Example:
        >>> version_drift({"torch": "2.13.0"}, {"torch": "2.14.1"}, floors={})[0].level
        'minor'
        >>> version_drift({"torch": "2.13.0"}, {"torch": "2.5.1"}, floors={"torch": "2.6"})[0].level
        'below range'
    """
    if recorded is None:
        recorded = load_recorded_versions().get("versions", {})
    installed = installed_versions() if installed is None else installed
    floors = supported_floors() if floors is None else floors
    drifts = []
    for name in dict.fromkeys([*recorded, *(n for n in floors if n in installed)]):  # recorded first, in order
        rec, have = recorded.get(name), installed.get(name)
        below = _below_floor(name, have, floors)
        if below is not None:
            drifts.append(below)
            continue
        if name not in recorded or rec == have:
            continue
        r, h = _release(rec), _release(have)
        if have is None:
            level = "missing"
        elif r[:1] != h[:1]:
            level = "major"
        elif r[:2] != h[:2]:
            level = "minor"
        else:
            level = "patch"
        if level == "patch" and rec and have and rec.split("+")[0] == have.split("+")[0]:
            continue  # same release, another build tag (e.g. +cpu vs +cu124): nothing changes
        effect = _EFFECTS.get(name, "outputs may differ slightly")
        if level == "missing":
            effect = f"not installed: `pip install {name}`"
        elif level == "patch":
            effect = "bug fixes only; outputs should match"
        drifts.append(Drift(name, rec, have, level, effect))
    return drifts


def load_recorded_versions(path: Path = VERSIONS_FILE) -> dict:
    """The versions the notebooks were last executed with ({} when never recorded)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def record_notebook_versions(notebooks: list[str], path: Path = VERSIONS_FILE) -> dict:
    """Write the installed versions as the ones the given notebooks were executed with."""
    data = load_recorded_versions(path)
    data["versions"] = installed_versions()
    data.setdefault("notebooks", {})
    for nb in notebooks:
        data["notebooks"][Path(nb).name] = data["versions"]
    data["notebooks"] = dict(sorted(data["notebooks"].items()))
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


@dataclass
class EnvReport:
    versions: dict[str, str | None]
    lmlab_version: str
    device: str
    cuda: str | None
    mps: bool
    threads: int
    cpu_count: int | None
    data_dir: str
    corpora: dict[str, bool] = field(default_factory=dict)
    drift: list[Drift] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"lmlab {self.lmlab_version}"]
        lines += [f"{k:<13} {v or 'not installed'}" for k, v in self.versions.items()]
        lines.append(f"{'device':<13} {self.device}")
        lines.append(f"{'CUDA':<13} {self.cuda or 'not available'}")
        lines.append(f"{'MPS':<13} {'available' if self.mps else 'not available'}")
        lines.append(f"{'threads':<13} {self.threads} torch threads on {self.cpu_count} CPUs")
        lines.append(f"{'data cache':<13} {self.data_dir}  (set LMLAB_DATA_DIR to move it)")
        for name, ok in self.corpora.items():
            hint = "cached and verified" if ok else "not cached yet: downloaded on first use, or `lmlab data download --all`"
            lines.append(f"  {name:<16} {hint}")
        if self.drift:
            lines.append("version drift against the versions the notebooks were last executed with:")
            lines += [f"  {d}" for d in self.drift]
        else:
            lines.append("versions match the ones the notebooks were last executed with")
        return "\n".join(lines)


def report() -> EnvReport:
    """Gather the environment report (fast: no model is run)."""
    import torch

    from lmlab import __version__
    from lmlab.data import CORPORA, data_dir, verify

    cuda = None
    if torch.cuda.is_available():
        cuda = f"{torch.version.cuda}, {torch.cuda.get_device_name(0)}"
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    device = "cuda" if cuda else ("mps" if mps else "cpu")
    folder = data_dir()
    corpora = {r.name: r.ok for r in verify(folder)} if folder.is_dir() else {name: False for name in CORPORA}
    return EnvReport(
        versions=installed_versions(),
        lmlab_version=__version__,
        device=device,
        cuda=cuda,
        mps=mps,
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        data_dir=str(folder),
        corpora=corpora,
        drift=version_drift(),
    )


def check_device(device: str | None = None, atol: float = 1e-3) -> dict:
    """Run a small GPT forward and backward on the accelerator and on the CPU and compare.

    Learners on MPS and older GPUs sometimes get NaNs or silently different numbers; this finds out.
    Returns a dict with the device, the max differences of logits and gradients, and `ok`.
    """
    import torch

    from lmlab.models import GPT, GPTConfig
    from lmlab.train import pick_device

    dev = torch.device(device) if device else pick_device()
    cfg = GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2, n_embd=64)
    torch.manual_seed(0)
    cpu_model = GPT(cfg)
    idx = torch.randint(0, 64, (4, 32), generator=torch.Generator().manual_seed(0))

    def run(model, d):
        model = model.to(d)
        model.zero_grad()
        logits, loss = model(idx.to(d), idx.to(d))
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return logits.detach().float().cpu(), grads.detach().float().cpu(), loss.item()

    ref_logits, ref_grads, ref_loss = run(cpu_model, torch.device("cpu"))
    if dev.type == "cpu":
        return {"device": "cpu", "ok": True, "max_logit_diff": 0.0, "max_grad_diff": 0.0, "loss": ref_loss,
                "message": "no accelerator found: only the CPU was checked"}
    import copy

    logits, grads, loss = run(copy.deepcopy(cpu_model), dev)
    finite = bool(torch.isfinite(logits).all() and torch.isfinite(grads).all())
    dl = (logits - ref_logits).abs().max().item()
    dg = (grads - ref_grads).abs().max().item()
    ok = finite and dl < atol and dg < atol
    msg = "accelerator agrees with the CPU" if ok else (
        "accelerator gave NaN/inf" if not finite else f"accelerator differs from the CPU by {max(dl, dg):.2e} (> {atol})"
    )
    if not ok:
        msg += "; try precision='fp32', update torch and drivers, or train on the CPU"
    return {"device": str(dev), "ok": ok, "max_logit_diff": dl, "max_grad_diff": dg, "loss": loss, "message": msg}
