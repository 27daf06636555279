"""The run cache: every finished training run, keyed by what decides its numbers.

DVC caches stages, not runs: it deletes a stage's outputs before rerunning it, so a sweep that
reruns because one value changed would otherwise train every value again. This cache lives
outside DVC's outputs and out of git (default `.scratchnet/runs/`, `SCRATCHNET_CACHE`
overrides), in two levels:
- the training: `<key>.json`, holding `{"record": ..., "facts": ...}` (the record's
  TRAINING_FIELDS; classifier.py says which is which), and `<key>.npz`, the trained network
  (Network.save: float32 as trained, so the reloaded network predicts the same bits), written
  first: an entry without it (an older cache's) is missing.
- its robustness: `robustness/<robustness_entry_key>.json`, holding
  `{"key", "robustness_args", "robustness", "facts"}` (facts: when and where it was measured).
  Changing params `robustness` measures the kept networks again and trains none.
A run's record is the two joined (`RunCache.record`).

A run's key (record["key"]) is the sha256 of its model, full config and seed, the data it saw
(`data_identity`), and the code and numerical environment that decide its numbers (`code_hash`:
the source of every scratchnet module in the run function's import closure, found from its
imports so that a module it starts importing is covered with no list to edit; NumPy's version
and the BLAS library, whose float32 kernels differ). Anything that does not change a number (the
executor, the worker, MLflow, the report, the stage scripts) is not in the key, so switching the
engine or the store reuses every run; nor are the robustness arguments, which key the
measurement only.

Entries are written atomically; one that does not parse, or whose key or fields do not match,
is treated as missing and trained again. `SCRATCHNET_RETRAIN=1` ignores every entry (and
overwrites it); deleting the folder clears it.

Concurrency: `train_once` trains and measures a key under an exclusive `flock` of `<key>.lock`,
so two processes on one machine (two `dvc exp` runs in a queue, two sweeps' workers) never train
the same key at once: the second waits, then reads the first's entry. The kernel releases a flock
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
from typing import Any, NamedTuple

try:
    import fcntl
except ImportError:  # not POSIX: no lock, two processes may train the same key (as before)
    fcntl = None  # type: ignore[assignment]  # mypy types the name as the module; None here means no lock

import numpy as np
from threadpoolctl import threadpool_info

import scratchnet
from scratchnet.files import atomic_paths, json_text, read_json
from scratchnet.nn import Network, load_model
from scratchnet.study import layout
from scratchnet.study.classifier import FACT_FIELDS, TRAINING_FIELDS

DEFAULT_ROOT = Path(".scratchnet/runs")
PACKAGE = Path(scratchnet.__file__).parent  # scratchnet's own source folder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------- the code's part


def _module_file(name: str, package: Path) -> Path | None:
    """The source file of scratchnet module `name` under `package` (scratchnet's folder), or
    None if there is none (a name imported from a module, not a module)."""
    base = package.joinpath(*name.split(".")[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
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
    """Every scratchnet module that importing `module` runs, by name -> source file under
    `package`: `module`, the packages above it, and, transitively, every scratchnet module their
    source imports (at the top or inside a function: read from the source, not sys.modules)."""
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


def run_key(model: str, config: dict, seed: int, data: str, code: str) -> str:
    """64 hex digits naming one run's training: model, full config (epochs included), seed,
    data_identity and code_hash. Its record's `key`."""
    return _sha256(_canonical({"model": model, "config": config, "seed": seed, "data": data, "code": code}))


def robustness_entry_key(key: str, robustness: dict) -> str:
    """64 hex digits naming one measurement of run `key`'s network: the arguments of its
    robustness (classifier.robustness_key) that decide the numbers."""
    return _sha256(_canonical({"run": key, "robustness": robustness}))


# ---------------------------------------------------------------------------- the cache


class Outcome(NamedTuple):
    """What RunCache.train_once did for one run."""

    record: dict  # the run's record: its training part and robustness (None: not measured)
    facts: dict  # its training's facts
    cached: bool  # nothing was trained by this call: the training was in the cache
    measured: dict | None  # the facts of its robustness measured by this call, else None
    unsaved: Network | None = None  # trained here where nothing could be stored: the caller stores


class RunCache:
    """Finished runs, two files per key and one per measurement. A read never raises on a bad
    entry: it returns None, as for a missing one (and always under SCRATCHNET_RETRAIN).

    root is kept absolute, so a worker process in another working directory (a Dask worker on
    this machine) finds the same folder."""

    def __init__(self, root: Path | str | None = None, *, retrain: bool | None = None):
        self.root = Path(root or os.environ.get("SCRATCHNET_CACHE") or DEFAULT_ROOT).absolute()
        self.retrain = os.environ.get("SCRATCHNET_RETRAIN", "") not in ("", "0") if retrain is None else retrain

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def network_path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def robustness_path(self, key: str, robustness: dict) -> Path:
        return self.root / "robustness" / f"{robustness_entry_key(key, robustness)}.json"

    def _read(self, path: Path, fields: tuple[str, ...]) -> dict | None:
        """The JSON object at `path` if it holds `fields`."""
        if self.retrain:
            return None
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and all(f in entry for f in fields) else None

    def get(self, key: str) -> tuple[dict, dict] | None:
        """(record, facts) of `key`'s training (record: TRAINING_FIELDS), or None: absent, not
        this key's, or without its network file."""
        entry = self._read(self.path(key), ("record", "facts"))
        if entry is None:
            return None
        record, facts = entry["record"], entry["facts"]
        if (
            not isinstance(record, dict)
            or not isinstance(facts, dict)
            or record.get("key") != key
            or any(f not in record for f in TRAINING_FIELDS)
            or any(f not in facts for f in FACT_FIELDS)
            or not self.network_path(key).is_file()
        ):
            return None
        return record, facts

    def put(self, record: dict, facts: dict, network: Network) -> None:
        """Stores a finished training under record['key'] (its TRAINING_FIELDS): its network, then
        its entry."""
        key = record["key"]
        self.root.mkdir(parents=True, exist_ok=True)
        network.save(self.network_path(key), metadata={"run_key": key})
        _write(self.path(key), {"record": {f: record[f] for f in TRAINING_FIELDS}, "facts": facts})

    def network(self, key: str) -> Network | None:
        """`key`'s trained network, or None if its file is absent, unreadable or another run's."""
        try:
            network = load_model(self.network_path(key))
        except (OSError, ValueError):
            return None
        return network if network.metadata.get("run_key") == key else None

    def get_robustness(self, key: str, robustness: dict) -> tuple[dict | None, dict] | None:
        """(numbers, facts) of `key`'s network measured with `robustness` (numbers None: a
        diverged run, nothing to measure), or None."""
        entry = self._read(self.robustness_path(key, robustness), ("key", "robustness_args", "robustness", "facts"))
        if entry is None or entry["key"] != key or entry["robustness_args"] != robustness:
            return None
        numbers, facts = entry["robustness"], entry["facts"]
        if not isinstance(numbers, (dict, type(None))) or not isinstance(facts, dict):
            return None
        return numbers, facts

    def put_robustness(self, key: str, robustness: dict, numbers: dict | None, facts: dict) -> None:
        entry = {"key": key, "robustness_args": robustness, "robustness": numbers, "facts": facts}
        _write(self.robustness_path(key, robustness), entry)

    def record(self, key: str, robustness: dict | None) -> tuple[dict, dict] | None:
        """(record, facts) of a finished run: its training joined with its robustness measured
        with `robustness` (None: not measured, record["robustness"] None); None if either level
        is missing."""
        training = self.get(key)
        if training is None:
            return None
        record, facts = training
        numbers = None
        if robustness is not None:
            measured = self.get_robustness(key, robustness)
            if measured is None:
                return None
            numbers = measured[0]
        return {**record, "robustness": numbers}, facts

    def store(self, outcome: Outcome, robustness: dict | None) -> None:
        """Stores the run train_once could not store where it ran (Outcome.unsaved: a Dask worker
        on another machine), measured with `robustness` (its arguments, or None)."""
        assert outcome.unsaved is not None, "stored where it ran already"
        self.put(outcome.record, outcome.facts, outcome.unsaved)
        if outcome.measured is not None:
            assert robustness is not None, "measured with no arguments"
            self.put_robustness(outcome.record["key"], robustness, outcome.record["robustness"], outcome.measured)

    def train_once(
        self,
        key: str,
        train: Callable[[], tuple[dict, dict, Network]],
        *,
        robustness: dict | None = None,
        measure: Callable[[dict, Network], tuple[dict | None, dict]] | None = None,
    ) -> Outcome:
        """The run of `key`, under `<key>.lock` (module docstring): its training from the cache
        or train() -> (record, facts, network), then, when `robustness` (the measurement's
        arguments) is given, its robustness from the cache or measure(record, network) ->
        (numbers, facts) on the kept network; each level missing is made and stored.

        Called where the run trains (a sweep's worker). Where the cache folder does not exist (a
        Dask worker on another machine), nothing can be locked, read or stored: it trains and
        measures, and the caller stores (Outcome.unsaved)."""
        fd = None
        if fcntl is not None:
            try:
                fd = os.open(self.root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                pass
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another process trains this key
            entry = self.get(key) if fd is not None else None
            found: tuple[dict | None, dict] | None = None
            network: Network | None = None
            if entry is not None and robustness is not None:
                found = self.get_robustness(key, robustness)
                if found is None:
                    network = self.network(key)
                    entry = entry if network is not None else None  # an unreadable network: train again
            if entry is not None:
                record, facts = entry
            else:
                record, facts, network = train()
                if fd is not None:
                    self.put(record, facts, network)
            numbers, measured = None, None
            if found is not None:
                numbers = found[0]
            elif robustness is not None:
                assert measure is not None and network is not None, "measured here: trained or loaded above"
                numbers, measured = measure(record, network)
                if fd is not None:
                    self.put_robustness(key, robustness, numbers, measured)
            training = {f: record[f] for f in TRAINING_FIELDS}
            unsaved = network if fd is None else None
            return Outcome({**training, "robustness": numbers}, facts, entry is not None, measured, unsaved)
        finally:
            if fd is not None:
                os.close(fd)  # and with it the lock


def _write(path: Path, entry: dict) -> None:
    """One entry, all or nothing."""
    with atomic_paths({"entry": path}) as tmp:
        tmp["entry"].write_text(json_text(entry))
