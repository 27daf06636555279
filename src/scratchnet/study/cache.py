"""The run cache: every finished training run's record, keyed by what decides its numbers.

DVC caches stages, not runs: it deletes a stage's outputs before rerunning it, so a sweep that
reruns because one value changed would otherwise train every value again. This cache lives
outside DVC's outputs and out of git (default `.scratchnet/runs/`, `SCRATCHNET_CACHE`
overrides), one JSON file per run, `<key>.json`.

A run's key is the sha256 of:
- its full config (every hyper-parameter, epochs included) and its seed;
- the data it saw (`data_identity`: the raw arrays' checksum, the preprocessing params and the
  normalisation statistics);
- the code that decides its numbers (`code_hash`: the numeric library's files and the run
  function's source).
Anything that does not change a number (the executor, the worker, MLflow, the stage scripts)
is not in the key, so switching the engine or the store reuses every run.

Entries are written atomically (scratchnet.files.atomic_paths); an entry that does not parse,
or whose key or fields do not match, is treated as missing and trained again.
`SCRATCHNET_RETRAIN=1` ignores every entry (and overwrites it); deleting the folder clears it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import scratchnet
from scratchnet.files import atomic_paths, json_text, read_json
from scratchnet.study import layout

DEFAULT_ROOT = Path(".scratchnet/runs")

# The numeric library: a change to any of these files may change a trained network's numbers.
_PACKAGE = Path(scratchnet.__file__).parent
CODE_PATHS = ("nn", "training.py", "data/preprocess.py", "attacks.py")


def cache_root() -> Path:
    """Where entries live: $SCRATCHNET_CACHE, else .scratchnet/runs under the working directory."""
    return Path(os.environ.get("SCRATCHNET_CACHE") or DEFAULT_ROOT)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def code_hash(run_function=None) -> str:
    """sha256 over the numeric library's source files (CODE_PATHS, by relative path and content)
    and the run function's source (default: scratchnet.study.runs.fit_seed)."""
    if run_function is None:
        from scratchnet.study.runs import fit_seed as run_function
    digest = hashlib.sha256()
    for rel in CODE_PATHS:
        path = _PACKAGE / rel
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(_PACKAGE).as_posix().encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    digest.update(inspect.getsource(run_function).encode())
    return digest.hexdigest()


def data_identity(arrays_sha256: str, preprocess: dict, stats_path: Path | str | None) -> str:
    """What the training arrays are: the raw arrays' checksum (provenance.json arrays_sha256),
    the preprocess params and the sha256 of the normalisation statistics file."""
    stats = _sha256(Path(stats_path).read_bytes()) if stats_path is not None else None
    return _sha256(_canonical({"arrays_sha256": arrays_sha256, "preprocess": preprocess,
                               "stats": stats}))


def project_data_identity(params: dict, root: Path | str = ".") -> str:
    """data_identity of the project's processed arrays (provenance.json, params `preprocess`,
    data/processed/stats.npz)."""
    root = Path(root)
    provenance = read_json(root / layout.PROVENANCE)
    return data_identity(provenance["arrays_sha256"], params["preprocess"], root / layout.STATS)


def run_key(model: str, config: dict, seed: int, data: str, code: str,
            robustness: dict | None = None) -> str:
    """64 hex digits naming one run's numbers: model, full config (epochs included), seed,
    data_identity, code_hash, and robustness (attack_study.robustness_key) only when measured."""
    measured = {} if robustness is None else {"robustness": robustness}
    return _sha256(_canonical({"model": model, "config": config, "seed": seed, "data": data,
                               "code": code, **measured}))


class RunCache:
    """Records of finished runs, one file per key. `get` never raises on a bad entry."""

    # The fields an entry must carry to be trusted (a record from runs.run_record).
    REQUIRED = ("key", "seed", "test_acc", "final_val_acc", "diverged", "diverged_epoch",
                "history", "seconds", "started", "ended", "worker")

    def __init__(self, root: Path | str | None = None, *, retrain: bool | None = None):
        self.root = Path(root) if root is not None else cache_root()
        self.retrain = (os.environ.get("SCRATCHNET_RETRAIN", "") not in ("", "0")
                        if retrain is None else retrain)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The cached record of `key`, or None if absent, unreadable, not this key's, or if
        retraining is forced. A half-written or corrupt entry is reported as missing, not
        trusted: the run is trained again and the entry overwritten."""
        if self.retrain:
            return None
        try:
            record = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != key \
                or any(field not in record for field in self.REQUIRED):
            return None
        record["mlflow_run_id"] = None  # a store's id is not part of the run: the caller logs it
        return record

    def put(self, record: dict) -> None:
        """Stores a finished run's record under record['key'], all or nothing."""
        record = {**record, "mlflow_run_id": None}
        with atomic_paths({"entry": self.path(record["key"])}) as tmp:
            tmp["entry"].write_text(json_text(record))
