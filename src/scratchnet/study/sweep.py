"""A sweep: many independent training runs dispatched at once to local workers or a Dask cluster.

    with executor_from_env(splits) as executor:   # SCRATCHNET_EXECUTOR: local (default) | dask
        records = run_sweep(specs, executor, cache=RunCache(), data=data_id, train_size=n, on_record=log)

The driver (the stage's process) submits every run the run cache does not hold, longest first so
the last runs to finish are short ones. Each worker trains and measures its run and stores both
itself (RunCache.train_once, under the key's lock: a second process training the same key waits
and reuses its entry), so a crash, a killed worker or Ctrl-C loses no finished run; a Dask worker
that cannot reach the cache folder leaves the storing to the driver. The driver prints one line
per run under one progress bar and hands the record and its facts to `on_record` (the stage logs
them to MLflow: the driver is the only writer to the store).

Both executors submit to a `concurrent.futures` executor (a process pool, or Dask's
`Client.get_executor`), so the driver waits on their futures alike. The executor never changes a
number (tests/test_dask_cluster.py checks bit-identical accuracies), which is why it is chosen by
the environment and not by params: switching it must not invalidate DVC's cache or the run cache.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from tqdm import tqdm

from scratchnet.errors import UserError
from scratchnet.study.cache import Outcome, RunCache, code_hash, run_key
from scratchnet.study.classifier import RunSpec, here, measure_run, robustness_key, train_run
from scratchnet.study.params import REGISTRY


class ExecutorError(UserError, RuntimeError):
    """The sweep's executor cannot run it: an unreachable scheduler, a run whose worker died
    again after its retry. The message names the address or the run."""


def cost(spec: RunSpec, train_size: int) -> float:
    """A run's relative cost, only to order the sweep (longest first), never reported.

        epochs x N x (width + 40 + 1000 / batch_size)

    width: multiply-adds per example per input feature (params.REGISTRY: 10 classes for softmax;
    hidden_dim + 10 for the two-layer net); 40: the per-example work that does not grow with the
    width (gathering the batch, softmax, accuracy); 1000 / batch_size: the per-step overhead spread
    over the batch. Calibrated so the two baselines' measured epochs (softmax 0.27 s, two-layer
    0.80 s, single-threaded) come out about 1 : 3.
    """
    config = spec.config
    width = REGISTRY[spec.model].width(config)
    return config["epochs"] * train_size * (width + 40 + 1000 / config["batch_size"])


# ---------------------------------------------------------------------------- executors
# Each offers `where` (for messages), `submit(spec, key, cache) -> concurrent.futures.Future`,
# `lost_errors` (a run's worker died) and `retries` (how often run_sweep submits such a run again,
# after `restart()`).

# The training set of a local worker process, set once per worker by the pool's initializer
# (with fork, the arrays, memory maps included, are inherited, not pickled: every worker reads
# the same pages).
_WORKER_SPLITS: dict = {}


def _init_local_worker(splits: dict) -> None:
    _WORKER_SPLITS.update(splits)
    # Ctrl-C reaches the whole process group; the driver decides what stops, and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits the driver's Python handlers: one that turns SIGTERM into an
    # exception (pytest's, a user's) would let the pool's loop catch it and take the next run.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(spec: RunSpec, key: str, cache: RunCache, splits: dict, worker: str) -> Outcome:
    """One run in a worker: trained unless its training is in the cache, then measured unless
    its robustness is (RunCache.train_once)."""
    return cache.train_once(
        key,
        lambda: train_run(spec, splits, key, worker),
        robustness=robustness_key(spec.robustness),
        measure=lambda record, network: measure_run(spec, record, network, splits, worker),
    )


def _local_task(spec: RunSpec, key: str, cache: RunCache) -> Outcome:
    return _run(spec, key, cache, _WORKER_SPLITS, here())


def _cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class LocalExecutor:
    """One worker process per core (SCRATCHNET_WORKERS overrides), each one BLAS thread, on
    concurrent.futures.ProcessPoolExecutor. Workers are forked where the platform can (they share
    the training set's pages); elsewhere each worker receives one pickled copy at start, still
    once per worker, not per run.
    """

    lost_errors = (BrokenProcessPool,)
    retries = 1  # a dead worker breaks the pool: run_sweep restarts it and submits its runs again

    def __init__(self, splits: dict, workers: int | None = None):
        self.splits = splits
        self.workers = workers or int(os.environ.get("SCRATCHNET_WORKERS") or 0) or _cores()
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.where = f"{self.workers} local worker processes"

    def __enter__(self) -> LocalExecutor:
        self._before = set(multiprocessing.active_children())  # not ours to stop
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=self._context, initializer=_init_local_worker, initargs=(self.splits,)
        )
        return self

    def submit(self, spec: RunSpec, key: str, cache: RunCache) -> concurrent.futures.Future:
        return self._pool.submit(_local_task, spec, key, cache)

    def restart(self) -> None:
        self._close(kill=True)
        self.__enter__()

    def _close(self, kill: bool) -> None:
        """Shuts the pool down; with kill=True first kills every worker it started, whether or
        not it has taken a run yet (an error or Ctrl-C in the driver must not wait for runs
        nobody will collect). A finished run's entry is already in the run cache, and an entry
        being written is written atomically, so nothing is lost."""
        if kill:
            workers = [p for p in multiprocessing.active_children() if p not in self._before]
            for process in workers:
                process.kill()
            for process in workers:
                process.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close(kill=exc_type is not None)


# A Dask worker's aligned copy of the current sweep's training set, made at its first run.
# Dask deserialises the scattered arrays into its receive buffers at arbitrary offsets: NumPy
# marks them unaligned, and training on them was measured 11x slower (5.8 s vs 0.5 s an epoch on
# 10,000 rows). Only the latest sweep's copy is kept: workers outlive sweeps.
_DASK_SPLITS: dict = {}
_DASK_LOCK = threading.Lock()


def _dask_task(spec: RunSpec, key: str, cache: RunCache, splits: dict, token: str) -> Outcome:
    from distributed import get_worker

    with _DASK_LOCK:  # a worker with several threads copies once
        if token not in _DASK_SPLITS:
            _DASK_SPLITS.clear()
            _DASK_SPLITS[token] = {
                name: tuple(np.require(a, requirements="A") for a in value) if isinstance(value, tuple) else value
                for name, value in splits.items()
            }  # (X, y) per split; 'stats' as it came
    return _run(spec, key, cache, _DASK_SPLITS[token], get_worker().address)


class DaskExecutor:
    """Runs on an existing Dask cluster through distributed.Client.

    The training set goes to every worker once (`scatter(..., broadcast=True)`) and each task
    receives it by reference (plus one aligned copy per worker, see _DASK_SPLITS: a worker
    holds the training set twice); workers need neither the project folder nor a shared filesystem,
    only scratchnet installed. A task trains with one BLAS thread (start workers with
    `--nthreads 1`, or as many threads as cores: each task still uses one).
    """

    # Dask itself reschedules a run whose worker died (its `allowed-failures`, 3 by default)
    # before it fails with KilledWorker.
    retries = 0

    def __init__(self, splits: dict, address: str):
        from distributed import KilledWorker

        self.splits = splits
        self.address = address
        self.lost_errors = (KilledWorker,)

    def __enter__(self) -> DaskExecutor:
        from distributed import Client

        try:
            self._client = Client(self.address, timeout=5.0, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise ExecutorError(
                f"Dask scheduler {self.address} (SCRATCHNET_EXECUTOR=dask, from "
                f"DASK_SCHEDULER_ADDRESS or Dask's scheduler-address) is unreachable: {err}. "
                "Start it (`dask scheduler`) and its workers, or unset SCRATCHNET_EXECUTOR to "
                "train on this machine."
            ) from None
        workers = len(self._client.scheduler_info()["workers"])
        self.where = f"Dask cluster {self.address} ({workers} worker{'' if workers == 1 else 's'})"
        self._data = self._client.scatter(self.splits, broadcast=True, hash=False)
        self._token = uuid.uuid4().hex  # names this sweep's data in the workers' aligned copy
        # pure=False: the same run submitted twice (a retry) is a new task, not a cached result.
        self._pool = self._client.get_executor(pure=False)
        return self

    def submit(self, spec: RunSpec, key: str, cache: RunCache) -> concurrent.futures.Future:
        task = f"run-{key[:16]}-{time.monotonic_ns()}"
        return self._pool.submit(_dask_task, spec, key, cache, self._data, self._token, key=task)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._client.close()


def executor_from_env(splits: dict) -> LocalExecutor | DaskExecutor:
    """The executor SCRATCHNET_EXECUTOR names: 'local' (default) or 'dask'."""
    kind = os.environ.get("SCRATCHNET_EXECUTOR", "local").strip().lower() or "local"
    if kind == "local":
        return LocalExecutor(splits)
    if kind == "dask":
        import dask

        # Dask's own convention: the variable, or the config key it also sets
        address = os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)
        if not address:
            raise ExecutorError(
                "SCRATCHNET_EXECUTOR=dask needs the scheduler's address: set "
                "DASK_SCHEDULER_ADDRESS=tcp://host:8786 (or Dask's scheduler-address)"
            )
        return DaskExecutor(splits, address)
    raise ExecutorError(f"SCRATCHNET_EXECUTOR={kind!r} is not an executor; use 'local' or 'dask'")


# ---------------------------------------------------------------------------- the driver


def run_sweep(
    specs: list[RunSpec],
    executor,
    *,
    cache: RunCache,
    data: str,
    train_size: int,
    on_record: Callable[[RunSpec, dict, dict, bool], None] | None = None,
    code: str | None = None,
    label: str = "sweep",
) -> dict[RunSpec, dict]:
    """Every run's record, from the cache or trained on `executor` (entered by the caller).

    data: cache.data_identity of the training arrays; train_size: their row count (for the
    cost order); code: cache.code_hash() unless given. on_record(spec, record, facts, cached)
    is called in the driver for every run as it is ready: cached ones first, then each trained
    or measured run once it is in the cache (cached=True when nothing trained: another process
    trained it meanwhile, or only its robustness was measured).
    A run whose worker died is retried `executor.retries` times, then fails the sweep with
    ExecutorError naming it. label: what the progress lines call these runs.
    """
    code = code if code is not None else code_hash()
    keys = {spec: run_key(spec.model, spec.config, spec.seed, data, code) for spec in specs}
    records: dict[RunSpec, dict] = {}
    facts: dict[RunSpec, dict] = {}
    measure_only = set()  # their training is cached, their robustness is not
    for spec in specs:
        entry = cache.record(keys[spec], robustness_key(spec.robustness))
        if entry is not None:
            records[spec], facts[spec] = entry
        elif cache.get(keys[spec]) is not None:
            measure_only.add(spec)
    cache.root.mkdir(parents=True, exist_ok=True)  # where the workers lock and store
    todo = [s for s in specs if s not in records]

    def submit(runs: list[RunSpec]) -> dict:
        """future -> spec of `runs`, submitted longest first."""
        return {executor.submit(s, keys[s], cache): s for s in sorted(runs, key=lambda s: -cost(s, train_size))}

    print(
        f"{label}: {len(specs)} runs, {len(records)} in the run cache ({cache.root}), "
        f"{len(todo) - len(measure_only)} to train"
        + (f" and {len(measure_only)} to measure" if measure_only else "")
        + f" on {executor.where}",
        flush=True,
    )
    attempts: Counter = Counter()
    pending = submit(todo)
    # The cached runs are handed over while the new ones train (logging them opens MLflow,
    # seconds of one core that then overlap the training instead of delaying it).
    for spec in specs:
        if spec in records and on_record is not None:
            on_record(spec, records[spec], facts[spec], True)
    bar = tqdm(total=len(todo), desc=label, unit="run", dynamic_ncols=True, disable=not todo)
    try:
        while pending:
            lost = []
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                spec = pending.pop(future)
                try:
                    outcome = future.result()
                except executor.lost_errors as err:
                    lost.append((spec, err))
                    continue
                if outcome.unsaved is not None:  # its worker could not store (no cache folder there)
                    cache.store(outcome, robustness_key(spec.robustness))
                records[spec] = outcome.record
                bar.update(1)
                bar.write(_line(spec, outcome))
                if on_record is not None:
                    on_record(spec, outcome.record, outcome.facts, outcome.cached)
            for spec, lost_err in lost:
                # One dead local worker breaks the whole pool: every run in flight comes back
                # here at once, and all of them are submitted again to a fresh pool.
                attempts[spec] += 1
                if attempts[spec] > executor.retries:
                    tries = f"{attempts[spec]} times" if executor.retries else "on every try"
                    raise ExecutorError(
                        f"run {spec.name} lost its worker {tries} on {executor.where} ({type(lost_err).__name__}: {lost_err}); "
                        "every finished run is in the run cache, rerun to train only what is missing"
                    ) from None
            if lost:
                bar.write(f"{label}: a worker died; retrying {', '.join(s.name for s, _ in lost)}")
                executor.restart()
                pending = submit([s for s, _ in lost] + list(pending.values()))
    finally:
        bar.close()
    return records


def _line(spec: RunSpec, outcome: Outcome) -> str:
    """A finished run's progress line: its accuracy, and where and how long it took: trained,
    or measured only (its training cached)."""
    acc = outcome.record["test_acc"]
    took = lambda f: f"{f['ended'] - f['started']:.1f} s on {f['worker']}"
    if not outcome.cached:
        how = took(outcome.facts)
    elif outcome.measured is not None:
        how = f"trained before; robustness measured in {took(outcome.measured)}"
    else:
        how = f"{took(outcome.facts)} (trained meanwhile by another process)"
    return f"{spec.name}: test accuracy {'diverged' if acc is None else f'{acc:.4f}'}, {how}"
