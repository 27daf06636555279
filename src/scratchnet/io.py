"""Atomic file writes: a stage that fails midway never leaves a half-written artifact.

Each writer puts the bytes in a temporary file beside the target and renames it over the
target (os.replace is atomic on one filesystem), so readers see the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


_UMASK = os.umask(0)
os.umask(_UMASK)


def write_bytes(path: Path | str, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: Path | str, data) -> None:
    write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def read_json(path: Path | str) -> dict:
    return json.loads(Path(path).read_text())
