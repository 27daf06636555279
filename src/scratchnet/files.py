"""Atomic file writes: a stage that fails midway never leaves a half-written artifact.

Every output is written to a temporary file beside its target and renamed over the target
only once complete (os.replace is atomic on one filesystem), so readers see the old file or
the new one. `atomic_paths` does this for a group of files at once: all are renamed, or none.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_paths(paths: Mapping[str, str | Path]) -> Iterator[dict[str, Path]]:
    """Yields {key: temporary path} for outputs {key: path}; renames them all into place only
    if the block succeeds.

    On an exception every temporary file is deleted and no output is touched. Write to the
    temporary paths through file objects: np.save/np.savez given a name append a suffix.
    """
    tmps: dict[str, Path] = {}
    try:
        for key, path in paths.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            tmps[key] = Path(tmp_name)
        yield dict(tmps)
        mode = 0o666 & ~_umask()  # mkstemp makes files private (0600); outputs are ordinary files
        for key, tmp in tmps.items():
            os.chmod(tmp, mode)
            os.replace(tmp, paths[key])
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)  # already renamed on success


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_paths({"out": path}) as tmp:
        tmp["out"].write_bytes(data)


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_csv(path: Path | str, records: list[dict], columns: tuple[str, ...] | list[str]) -> None:
    """One row per record, the given columns in order (numbers written with repr: no rounding;
    None and NaN as empty cells, which pandas and `dvc plots` read as missing)."""

    def cell(value) -> str:
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)

    lines = [",".join(columns)] + [",".join(cell(r[c]) for c in columns) for r in records]
    write_text(path, "\n".join(lines) + "\n")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_text(data: Any) -> str:
    """Indented JSON with NumPy scalars/arrays and paths converted, newline-terminated."""
    return json.dumps(data, indent=2, default=_jsonable) + "\n"


def write_json(path: Path | str, data: Any) -> None:
    write_text(path, json_text(data))


def read_json(path: Path | str) -> dict:
    return json.loads(Path(path).read_text())
