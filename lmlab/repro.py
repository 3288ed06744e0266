"""Reproducibility: seeds, threads, random-number-generator states and run records.

A CPU run of lmlab is bit-for-bit reproducible when three things are fixed:

1. the seeds of every random number generator (Python's ``random``, NumPy, PyTorch's CPU and CUDA
   generators) -- ``seed_everything``;
2. the number of CPU threads: a matrix product split over 4 threads adds its partial sums in a
   different order than over 1 thread, and floating-point addition is not associative, so the last bits
   of a result depend on the thread count -- ``seed_everything(threads=...)``;
3. the algorithms: some GPU kernels (atomic adds, cuDNN autotuning) are not deterministic unless asked --
   ``torch.use_deterministic_algorithms``.

Even then, different hardware, PyTorch versions or BLAS libraries may round differently. A ``RunRecord``
writes down what a run depended on (versions, platform, device, threads, seed, config, a hash of the
data, the git commit) so two runs can be compared field by field with ``compare``.

``get_rng_state`` / ``set_rng_state`` turn every generator's state into JSON and back; checkpoints use
them so that a resumed run draws the same dropout masks as one that never stopped.

Left out: determinism across different machines or library versions (not achievable in general), and
data-loader worker seeding (lmlab's batch sources are stateless functions of the step).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform as _platform
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lmlab.device import pick_device
from lmlab.files import atomic_write_json

__all__ = [
    "seed_everything",
    "seed_rngs",
    "setup",
    "get_rng_state",
    "set_rng_state",
    "sha256_of",
    "git_commit",
    "RunRecord",
    "compare",
]


def seed_rngs(seed: int) -> None:
    """Seed Python's ``random``, NumPy (when installed) and PyTorch (CPU and every CUDA device).

    Only the generators: unlike ``seed_everything`` it changes no global switches.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)  # NumPy's legacy seeding only takes 32-bit seeds
    except ImportError:  # NumPy is optional for lmlab itself
        pass
    torch.manual_seed(seed)  # also seeds every CUDA device


def seed_everything(seed: int, threads: int | None = None, deterministic: bool = True) -> dict[str, Any]:
    """Make the following computation reproducible: seed every generator, pin threads, pick
    deterministic algorithms.

    Args:
        seed: seed for ``random``, NumPy and PyTorch (CPU and CUDA).
        threads: if given, ``torch.set_num_threads(threads)``; results on CPU are bit-identical only
            between runs with the same thread count.
        deterministic: ask PyTorch for deterministic algorithms (``warn_only=True``: an operation that
            has no deterministic version warns instead of failing), turn off cuDNN autotuning, and set
            ``CUBLAS_WORKSPACE_CONFIG`` which deterministic cuBLAS needs. ``False`` turns them back off.

    Returns:
        What was set, for the record, e.g.
        ``{"seed": 0, "threads": 1, "deterministic": True, "cudnn_benchmark": False, ...}``.

    Example:
        >>> info = seed_everything(0, threads=1)
        >>> a = torch.rand(2); _ = seed_everything(0, threads=1); bool((a == torch.rand(2)).all())
        True
    """
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        torch.set_num_threads(threads)
    seed_rngs(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; it must be set before the first cuBLAS call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    # Deterministic mode also fills every new tensor's memory with NaN, which makes small operations slow;
    # lmlab never reads uninitialized memory, so results do not depend on it.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic  # autotuning picks kernels by timing: not reproducible
    return {
        "seed": seed,
        "threads": torch.get_num_threads(),
        "deterministic": deterministic,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cuda": torch.cuda.is_available(),
    }


def setup(seed: int = 0, threads: int | None = None, device: str | torch.device | None = None) -> torch.device:
    """The one setup cell of a notebook: seed everything, optionally pin threads, pick a device.

    Args:
        seed: passed to ``seed_everything``.
        threads: CPU threads (``None`` leaves PyTorch's default).
        device: "cpu", "cuda", "mps" or ``None`` for the best available (CUDA, then MPS, then CPU).

    The environment variables ``LMLAB_THREADS`` and ``LMLAB_DEVICE``, when set, replace ``threads`` and
    ``device``: the course's tests use them to run every notebook under other thread counts or devices
    (``python dev.py check-notebooks``, ``python dev.py run-notebooks --device cpu``) without editing it.

    Returns:
        The ``torch.device`` to put models and tensors on (``print(device)`` shows e.g. ``cpu``).

    Example:
        >>> device = setup(seed=0, threads=1, device="cpu")
        >>> str(device)
        'cpu'
    """
    threads = int(os.environ["LMLAB_THREADS"]) if os.environ.get("LMLAB_THREADS") else threads
    device = os.environ.get("LMLAB_DEVICE") or device
    seed_everything(seed, threads=threads)
    return pick_device(device)


# ----------------------------------------------------------------------------------------------------
# Generator states as JSON


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _from_b64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def get_rng_state() -> dict[str, Any]:
    """The state of every random number generator as JSON-able data (for checkpoints).

    PyTorch states (byte tensors) are base64 strings; Python's is a list of ints.
    """
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    try:
        import numpy as np

        name, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    except ImportError:
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generator states saved by ``get_rng_state``. Generators missing from ``state`` are left
    alone; CUDA states are restored only when the same number of devices is present."""
    if "python" in state:
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
    if "torch" in state:
        torch.set_rng_state(_from_b64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_from_b64(s) for s in state["cuda"]])
    if "numpy" in state:
        try:
            import numpy as np

            name, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        except ImportError:
            pass


# ----------------------------------------------------------------------------------------------------
# Hashes and run records


def sha256_of(data: bytes | str | os.PathLike | torch.Tensor) -> str:
    """SHA-256 hex digest of some data, to record exactly which data a run saw.

    Args:
        data: ``bytes``; a ``str`` (hashed as UTF-8 *text*: pass a ``pathlib.Path`` to hash a file);
            a path (``os.PathLike``: the file's bytes, read in chunks); or a tensor (its dtype, shape
            and raw bytes, so ``tensor([1, 2])`` as int64 and as int32 hash differently).

    Example:
        >>> sha256_of(b"abc")[:16]
        'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    if isinstance(data, (bytes, bytearray, memoryview)):
        h.update(bytes(data))
    elif isinstance(data, str):
        h.update(data.encode("utf-8"))
    elif isinstance(data, os.PathLike):
        path = Path(data)
        if not path.is_file():
            raise ValueError(f"cannot hash {path}: it is not a file (to hash a string as text, pass a str)")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    elif isinstance(data, torch.Tensor):
        t = data.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes, whatever the dtype
    else:
        raise TypeError(f"sha256_of takes bytes, str, a path or a tensor, got {type(data).__name__}")
    return h.hexdigest()


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The git commit checked out in ``cwd`` (default: the current folder), or ``None`` when there is
    none (not a repository, no commits yet, git not installed). Never raises."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _jsonable(obj: Any) -> Any:
    """Turn dataclasses, paths, tuples and tensors into plain JSON data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (torch.device, torch.dtype, os.PathLike)):
        return str(obj)
    return obj


@dataclass
class RunRecord:
    """What one training run depended on and what it produced, saved as JSON next to its results.

    Create one with ``RunRecord.start(...)`` before training and call ``finish(metrics)`` after.

    Example:
        >>> rec = RunRecord.start(config={"lr": 1e-3}, seed=0)
        >>> rec.finish({"val_loss": 1.5}).metrics
        {'val_loss': 1.5}
    """

    seed: int | None = None  # the seed the run was started with
    python_version: str = ""  # e.g. "3.11.9"
    torch_version: str = ""  # e.g. "2.13.0+cpu"; kernels change between versions
    lmlab_version: str = ""
    platform: str = ""  # OS and CPU architecture, e.g. "Linux-6.1-x86_64"
    device: str = ""  # "cpu", "cuda:0 (NVIDIA H100 ...)", "mps"
    threads: int = 0  # torch.get_num_threads(): changes the rounding of CPU matrix products
    data_sha256: str | None = None  # hash of the training data (sha256_of), None when not given
    config: dict[str, Any] = field(default_factory=dict)  # hyperparameters (TrainConfig, model config...)
    git_commit: str | None = None  # the code's commit, None outside a git repository
    start_time: str = ""  # ISO 8601, UTC
    end_time: str | None = None  # set by finish()
    metrics: dict[str, Any] = field(default_factory=dict)  # final results, set by finish()
    extra: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping

    @classmethod
    def start(
        cls,
        config: Any = None,
        seed: int | None = None,
        data: bytes | str | os.PathLike | torch.Tensor | None = None,
        device: str | torch.device | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Capture the environment now.

        Args:
            config: a dict or dataclass (or a dict of them, e.g. ``{"train": TrainConfig(), "model": ...}``).
            seed: the run's seed.
            data: the training data to hash (see ``sha256_of``), or ``None``.
            device: where the run trains; ``None`` records the best available device.
            extra: free-form JSON-able notes.
        """
        import lmlab

        device = torch.device(device) if device is not None else pick_device()
        device_text = str(device)
        if device.type == "cuda" and torch.cuda.is_available():
            device_text += f" ({torch.cuda.get_device_name(device)})"
        return cls(
            seed=seed,
            python_version=_platform.python_version(),
            torch_version=torch.__version__,
            lmlab_version=lmlab.__version__,
            platform=_platform.platform(),
            device=device_text,
            threads=torch.get_num_threads(),
            data_sha256=None if data is None else sha256_of(data),
            config=_jsonable(config) if config is not None else {},
            git_commit=git_commit(),
            start_time=_now(),
            extra=_jsonable(extra) if extra else {},
        )

    def finish(self, metrics: dict[str, Any] | None = None) -> RunRecord:
        """Record the end time and the final metrics; returns ``self`` so calls can be chained."""
        self.end_time = _now()
        if metrics:
            self.metrics.update(_jsonable(metrics))
        return self

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the record as indented JSON (atomically: a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(path, self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunRecord:
        """Read a record written by ``save``.

        A record written by another lmlab version loads with a warning that names the version and the
        fields this version does not know (kept in ``extra``) or that the record lacks (left at their
        defaults). A file that is not a run record raises ``ValueError`` saying what is wrong.
        """
        import lmlab

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e}); it is not a run record written by lmlab") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a run record (expected a JSON object)")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        wrong = [f"{k} (a {type(data[k]).__name__}, expected an object)" for k in ("config", "metrics", "extra")
                 if k in data and not isinstance(data[k], dict)]
        if wrong:
            raise ValueError(f"{path} is damaged: {', '.join(wrong)}")
        unknown = {k: v for k, v in data.items() if k not in fields}
        missing = [k for k in fields if k not in data]
        record = cls(**{k: v for k, v in data.items() if k in fields})
        record.extra.update(unknown)
        if unknown or missing or record.lmlab_version != lmlab.__version__:
            import warnings

            parts = [f"{path} was written by lmlab {record.lmlab_version or '?'}; this is lmlab {lmlab.__version__}"]
            if unknown:
                parts.append(f"fields this version does not know (kept in .extra): {sorted(unknown)}")
            if missing:
                parts.append(f"fields the record lacks (left at their defaults): {missing}")
            warnings.warn("; ".join(parts), stacklevel=2)
        return record


def _flatten(d: Any, prefix: str) -> dict[str, Any]:
    """{"config": {"lr": 1}} -> {"config.lr": 1}; non-dicts are leaves, empty dicts vanish."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: d}


def compare(
    a: RunRecord, b: RunRecord, ignore: tuple[str, ...] = ("start_time", "end_time")
) -> dict[str, tuple[Any, Any]]:
    """What differs between two runs: ``{field: (value in a, value in b)}``.

    Nested dicts (config, metrics, extra) are compared key by key and reported with dotted names;
    a key missing on one side shows as ``None``. Times differ for every pair of runs, so they are
    ignored by default.

    Example:
        >>> a, b = RunRecord(seed=0, config={"lr": 1e-3}), RunRecord(seed=1, config={"lr": 1e-3})
        >>> compare(a, b)
        {'seed': (0, 1)}
    """
    fa, fb = {}, {}
    for f in dataclasses.fields(RunRecord):
        if f.name in ignore:
            continue
        fa.update(_flatten(_jsonable(getattr(a, f.name)), f.name))
        fb.update(_flatten(_jsonable(getattr(b, f.name)), f.name))
    diffs = {}
    for key in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(key), fb.get(key)
        if va != vb:
            diffs[key] = (va, vb)
    return diffs
