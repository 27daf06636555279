"""The run cache: every finished training run, keyed by what decides its numbers.

DVC caches stages, not runs: it deletes a stage's outputs before rerunning it, so a sweep that
reruns because one value changed would otherwise train every value again. This cache lives
outside DVC's outputs and out of git (default `.scratchnet/runs/`, `SCRATCHNET_CACHE`
overrides), one JSON file per run, `<key>.json`, holding `{"record": ..., "facts": ...}`
(classifier.py says which is which).

A run's key is the sha256 of:
- its full config (every hyper-parameter, epochs included) and its seed;
- the data it saw (`data_identity`: the raw arrays' checksum, the preprocessing params and the
  normalisation statistics);
- the code and numerical environment that decide its numbers (`code_hash`): the source of every
  scratchnet module in the run function's import closure, computed from its imports (a module
  it starts importing is covered with no list to edit), NumPy's version and the BLAS library
  threadpoolctl finds (its internal API, version and CPU architecture: float32 kernels differ
  between them).
Anything that does not change a number (the executor, the worker, MLflow, the report, the stage
scripts) is not in the key, so switching the engine or the store reuses every run.

Entries are written atomically (scratchnet.files.atomic_paths); an entry that does not parse,
or whose key or fields do not match, is treated as missing and trained again.
`SCRATCHNET_RETRAIN=1` ignores every entry (and overwrites it); deleting the folder clears it.

Concurrency: `train_once` trains a key under an exclusive `flock` of `<key>.lock`, so two
processes on one machine (two `dvc exp` runs in a queue, two sweeps' workers) never train the
same key at once: the second waits, then reads the first's entry. The kernel releases a flock
when its holder exits however it exits (a crash, SIGKILL), so a dead holder never blocks a key.
Lock files stay (a few bytes each): removing one while another process waits on it would let a
third train beside it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no lock, two processes may train the same key (as before)
    fcntl = None  # type: ignore[assignment]  # mypy types the name as the module; None here means no lock

import numpy as np
from threadpoolctl import threadpool_info

import scratchnet
from scratchnet.files import atomic_paths, json_text, read_json
from scratchnet.study import layout
from scratchnet.study.classifier import FACT_FIELDS, RECORD_FIELDS

DEFAULT_ROOT = Path(".scratchnet/runs")
PACKAGE = Path(scratchnet.__file__).parent  # scratchnet's own source folder


def cache_root() -> Path:
    """Where entries live: $SCRATCHNET_CACHE, else .scratchnet/runs under the working directory."""
    return Path(os.environ.get("SCRATCHNET_CACHE") or DEFAULT_ROOT)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------- the code's part


def _module_file(name: str, package: Path) -> Path | None:
    """The source file of scratchnet module `name` under `package` (scratchnet's folder), or
    None if there is none (a name imported from a module, not a module)."""
    parts = name.split(".")[1:]
    base = package.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py") if parts else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imported(name: str, file: Path, package: Path) -> set[str]:
    """The scratchnet modules `file` (module `name`) imports anywhere in its body, and the
    packages above each of them (importing a.b.c runs a/__init__.py and a/b/__init__.py)."""
    is_package = file.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_bytes(), filename=str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # `from pkg import sub` imports the module pkg.sub when there is one
            found.update(f"{module}.{alias.name}" for alias in node.names)
    modules: set[str] = set()
    for module in found:
        if module == "scratchnet" or module.startswith("scratchnet."):
            parts = module.split(".")
            modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in modules if _module_file(m, package) is not None}


def import_closure(module: str, package: Path = PACKAGE) -> dict[str, Path]:
    """Every scratchnet module that importing `module` runs, by name -> source file: `module`,
    the packages above it, and, transitively, every scratchnet module their source imports
    (at the top or inside a function: read from the source, not from sys.modules).

    package: scratchnet's source folder (a copy of it in tests)."""
    closure: dict[str, Path] = {}
    parts = module.split(".")
    todo = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        file = _module_file(name, package)
        assert file is not None  # `module`, its packages, then only names _imported found a file for
        closure[name] = file
        todo.extend(_imported(name, file, package) - closure.keys())
    return dict(sorted(closure.items()))


def blas_identity() -> list[dict]:
    """The BLAS libraries this process has loaded (threadpoolctl): internal API (openblas, mkl,
    blis), version and the CPU architecture its kernels were chosen for; not the path, which
    differs between two installs of the same library."""
    libraries = [
        {k: lib.get(k) for k in ("internal_api", "version", "architecture")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    return sorted(libraries, key=_canonical)


def numeric_environment() -> dict:
    """NumPy's version and the BLAS identity: what can change float32 results with the same code."""
    return {"numpy": np.__version__, "blas": blas_identity()}


def code_hash(run_function: Callable | None = None, *, package: Path = PACKAGE, environment: dict | None = None) -> str:
    """sha256 over the source of `run_function`'s module's import closure (sorted by module
    name; default: classifier.train_run, what the sweep's workers run) and the numerical
    environment (numeric_environment() unless given)."""
    if run_function is None:
        from scratchnet.study.classifier import train_run as run_function
    digest = hashlib.sha256()
    for name, file in import_closure(run_function.__module__, package).items():
        digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    digest.update(_canonical(environment if environment is not None else numeric_environment()))
    return digest.hexdigest()


# ---------------------------------------------------------------------------- the data's part


def data_identity(arrays_sha256: str, preprocess: dict, stats_path: Path | str | None) -> str:
    """What the training arrays are: the raw arrays' checksum (provenance.json arrays_sha256),
    the preprocess params and the sha256 of the normalisation statistics file."""
    stats = _sha256(Path(stats_path).read_bytes()) if stats_path is not None else None
    return _sha256(_canonical({"arrays_sha256": arrays_sha256, "preprocess": preprocess, "stats": stats}))


def project_data_identity(params: dict, root: Path | str = ".") -> str:
    """data_identity of the project's processed arrays (provenance.json, params `preprocess`,
    data/processed/stats.npz)."""
    root = Path(root)
    provenance = read_json(root / layout.PROVENANCE)
    return data_identity(provenance["arrays_sha256"], params["preprocess"], root / layout.STATS)


def run_key(model: str, config: dict, seed: int, data: str, code: str, robustness: dict | None = None) -> str:
    """64 hex digits naming one run's numbers: model, full config (epochs included), seed,
    data_identity, code_hash, and robustness (classifier.robustness_key) only when measured."""
    measured = {} if robustness is None else {"robustness": robustness}
    return _sha256(_canonical({"model": model, "config": config, "seed": seed, "data": data, "code": code, **measured}))


# ---------------------------------------------------------------------------- the cache


class RunCache:
    """Finished runs, one file per key. `get` never raises on a bad entry.

    root is kept absolute, so a worker process in another working directory (a Dask worker on
    this machine) finds the same folder."""

    def __init__(self, root: Path | str | None = None, *, retrain: bool | None = None):
        self.root = Path(root if root is not None else cache_root()).absolute()
        self.retrain = os.environ.get("SCRATCHNET_RETRAIN", "") not in ("", "0") if retrain is None else retrain

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> tuple[dict, dict] | None:
        """(record, facts) of `key`, or None if absent, unreadable, not this key's, or if
        retraining is forced. A half-written or corrupt entry is reported as missing, not
        trusted: the run is trained again and the entry overwritten."""
        if self.retrain:
            return None
        try:
            entry = json.loads(self.path(key).read_text())
            record, facts = entry["record"], entry["facts"]
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if (
            not isinstance(record, dict)
            or not isinstance(facts, dict)
            or record.get("key") != key
            or any(f not in record for f in RECORD_FIELDS)
            or any(f not in facts for f in FACT_FIELDS)
        ):
            return None
        return record, facts

    def put(self, record: dict, facts: dict) -> None:
        """Stores a finished run under record['key'], all or nothing."""
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_paths({"entry": self.path(record["key"])}) as tmp:
            tmp["entry"].write_text(json_text({"record": record, "facts": facts}))

    def train_once(self, key: str, train: Callable[[], tuple[dict, dict]]) -> tuple[dict, dict, bool]:
        """(record, facts, cached): the entry of `key`, trained by `train()` unless another
        process has it, holding `<key>.lock` meanwhile (see the module docstring).

        Called where the run trains (a sweep's worker). A process that waits for the lock
        reuses the holder's entry (cached=True). Where the cache folder does not exist (a Dask
        worker on another machine), nothing can be locked: it trains, and the caller stores."""
        if fcntl is None:
            return (*train(), False)
        try:
            fd = os.open(self.root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return (*train(), False)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another process trains this key
            entry = self.get(key)
            if entry is not None:
                return (*entry, True)
            record, facts = train()
            self.put(record, facts)
            return record, facts, False
        finally:
            os.close(fd)  # and with it the lock
