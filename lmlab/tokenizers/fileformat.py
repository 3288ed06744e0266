"""The tokenizer file format: one readable JSON object with a ``format`` name (``"lmlab.CharTokenizer"``,
``"lmlab.BPETokenizer"``), a ``version`` and the tokenizer's own fields, written atomically.

Every way a file can be wrong (missing, not UTF-8, not JSON, another format or version) is a
``FileNotFoundError`` or ``ValueError`` that says what to do; each tokenizer's ``load`` checks its own fields.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lmlab.files import atomic_write_json

__all__ = ["parse_json_file", "read_tokenizer_json", "write_tokenizer_json"]


def parse_json_file(path: str | os.PathLike) -> Any:
    """The JSON value in the file ``path``; every way it can fail is a FileNotFoundError or ValueError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no tokenizer file at {os.fspath(path)!r}; check the path, or save one with tok.save(path)"
        ) from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{os.fspath(path)!r} is not a UTF-8 text file ({e}); it is not a tokenizer file") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(
            f"{os.fspath(path)!r} is not valid JSON ({str(e)[:200]}); the file is damaged: save the tokenizer again"
        ) from None


def read_tokenizer_json(path: str | os.PathLike, fmt: str, version: int) -> dict[str, Any]:
    """Read a tokenizer file and check its ``format`` and ``version`` fields."""
    data = parse_json_file(path)
    if not isinstance(data, dict) or data.get("format") != fmt:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{os.fspath(path)!r} is not an {fmt} file (its 'format' field is {got!r})")
    if data.get("version") != version:
        raise ValueError(f"{os.fspath(path)!r} has version {data.get('version')!r}; this lmlab reads version {version}")
    return data


def write_tokenizer_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write a tokenizer file atomically (temp file + os.replace) so a crash never leaves half a file."""
    atomic_write_json(path, data, indent=1, ensure_ascii=False)
