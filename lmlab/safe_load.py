"""Loading pickled torch files (``optimizer.pt``, ``pytorch_model.bin``) without running their code.

A ``.pt``/``.bin`` file is a Python pickle: loading one can run any code its author put in it.
``torch.load(path, weights_only=True)`` rebuilds only tensors and plain containers and refuses the rest,
but before torch 2.6 that guard could be bypassed (CVE-2025-32434). So lmlab loads pickled files only
with ``weights_only=True`` and only on torch 2.6 or later; weights themselves travel as safetensors,
which holds no code at all.

Example:
    >>> state = safe_torch_load("run/step-000100/optimizer.pt", map_location="cpu")
"""

from __future__ import annotations

import os
import re
from typing import Any, BinaryIO

import torch

__all__ = ["SAFE_TORCH", "torch_loads_pickles_safely", "require_safe_torch_load", "safe_torch_load"]

SAFE_TORCH = (2, 6)  # first torch whose torch.load(weights_only=True) has no known way to run code


def torch_loads_pickles_safely(version: str | None = None) -> bool:
    """True when torch ``version`` (default: the installed one) is 2.6 or later.

    Example: torch_loads_pickles_safely("2.5.1+cu121") -> False; torch_loads_pickles_safely("2.10.0") -> True
    """
    text = str(torch.__version__ if version is None else version)
    match = re.match(r"(\d+)\.(\d+)", text)
    if match is None:  # a version we cannot read: assume the worst
        return False
    return (int(match.group(1)), int(match.group(2))) >= SAFE_TORCH


def require_safe_torch_load(what: str | os.PathLike | Any) -> None:
    """Raise ``ValueError`` naming ``what`` (a path, or a name) when the installed torch cannot load pickles safely."""
    if not torch_loads_pickles_safely():
        name = os.fspath(what) if isinstance(what, (str, os.PathLike)) else str(what)
        raise ValueError(
            f"refusing to load the pickled file {name!r} with torch {torch.__version__}: before torch 2.6, "
            "torch.load(weights_only=True) can be made to run code hidden in the file (CVE-2025-32434). "
            "Install torch 2.6 or later (pip install -U torch)."
        )


def safe_torch_load(source: str | os.PathLike | BinaryIO, map_location: Any = None, *,
                    name: str | os.PathLike | None = None) -> Any:
    """``torch.load(source, map_location, weights_only=True)`` on torch 2.6 or later, else a ``ValueError``.

    ``source``: a path, or a binary file object (e.g. ``io.BytesIO`` of bytes whose hash was just checked);
    ``name``: what error messages call it (default: the path).
    """
    require_safe_torch_load(name if name is not None else source)
    return torch.load(source, map_location=map_location, weights_only=True)
