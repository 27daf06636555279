"""Atomic outputs: a stage that fails part-way leaves the previous outputs untouched.

Each output is written to a temporary file in its own folder (so the final rename stays on one
file system, where `os.replace` is atomic) and renamed into place only once every output of
the stage is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping


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
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            tmps[key] = Path(tmp)
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


def write_json(path: Path, obj: Any) -> None:
    """Writes `obj` as indented JSON (normally to a temporary path from `atomic_paths`)."""
    path.write_text(json.dumps(obj, indent=2) + "\n")
