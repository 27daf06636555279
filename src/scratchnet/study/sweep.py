"""A sweep: many independent training runs dispatched at once to local workers or a Dask cluster.

    executor = executor_from_env(splits)          # SCRATCHNET_EXECUTOR: local (default) | dask
    with executor:
        records = run_sweep(specs, executor, cache=RunCache(), data=data_id, on_record=log)

The driver (the stage's process) submits every run the run cache does not hold, longest first so
the last runs to finish are short ones. Each worker trains and measures its run and stores both
itself (RunCache.train_once, under the key's lock: a second process training the same key waits
and reuses its entry), so a crash, a killed worker or Ctrl-C loses no finished run; a Dask worker
that cannot reach the cache folder leaves the storing to the driver. The driver prints one line
per run under one progress bar and hands the record and its facts to `on_record` (the stage logs
them to MLflow: the driver is the only writer to the store).

Both executors offer the same small interface, `submit(spec, key, cache) -> future` and
`wait_any(futures) -> done futures`, on `concurrent.futures` (local) and `distributed.Client`
(Dask) public APIs. The executor never changes a number (tests/test_dask_cluster.py checks
bit-identical accuracies), which is why it is chosen by the environment and not by params:
switching it must not invalidate DVC's cache or the run cache.
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
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from scratchnet.errors import UserError
from scratchnet.study.cache import Outcome, RunCache, code_hash, run_key
from scratchnet.study.classifier import RunSpec, here, measure_run, robustness_key, train_run
from scratchnet.study.params import REGISTRY

if TYPE_CHECKING:
    from distributed import Client


class ExecutorError(UserError, RuntimeError):
    """The sweep's executor cannot run it: an unreachable scheduler, a run whose worker died
    again after its retry. The message names the address or the run."""


# ---------------------------------------------------------------------------- cost estimate


def cost(spec: RunSpec, train_size: int) -> float:
    """A run's relative cost, only to order the sweep (longest first), never reported.

        epochs x N x (width + 40 + 1000 / batch_size)

    width: multiply-adds per example per input feature, from the model's registry entry
    (params.REGISTRY: 10 classes for softmax; hidden_dim + 10 for the two-layer net). The constant
    40 is the per-example work that does not grow with the width (gathering the batch, softmax,
    accuracy); 1000 / batch_size the per-step overhead
    spread over the batch. Calibrated so the two baselines' measured epochs (softmax 0.27 s,
    two-layer 0.80 s, single-threaded) come out about 1 : 3.
    """
    config = spec.config
    width = REGISTRY[spec.model].width(config)
    return config["epochs"] * train_size * (width + 40 + 1000 / config["batch_size"])


# ---------------------------------------------------------------------------- executors

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
    """One worker process per core (SCRATCHNET_WORKERS overrides), each one BLAS thread.

    Built on concurrent.futures.ProcessPoolExecutor's public API; a worker that dies breaks the
    pool, so `restart()` makes a new one for the retried runs. Workers are forked where the
    platform can (they share the training set's pages); elsewhere each worker receives one
    pickled copy at start, still once per worker, not per run.
    """

    lost_errors = (BrokenProcessPool,)
    retries_itself = False  # a dead worker breaks the pool: run_sweep restarts it and retries

    def __init__(self, splits: dict, workers: int | None = None):
        self.splits = splits
        self.workers = workers or int(os.environ.get("SCRATCHNET_WORKERS") or 0) or _cores()
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.where = f"{self.workers} local worker processes"
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._before: set = set()

    def _start(self) -> None:
        self._before = set(multiprocessing.active_children())  # not ours to stop
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=self._context, initializer=_init_local_worker, initargs=(self.splits,)
        )

    def __enter__(self) -> LocalExecutor:
        self._start()
        return self

    def submit(self, spec: RunSpec, key: str, cache: RunCache):
        assert self._pool is not None, "submit outside `with executor:`"
        return self._pool.submit(_local_task, spec, key, cache)

    @staticmethod
    def wait_any(futures: Iterable) -> set:
        done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
        return done

    def restart(self) -> None:
        self.close(stop=True)
        self._start()

    def close(self, stop: bool = False) -> None:
        """Shuts the pool down; with stop=True first kills its workers (an error or Ctrl-C in
        the driver must not wait for runs nobody will collect). Every worker the pool started is
        killed, whether or not it has taken a run yet; a finished run's entry is already in the
        run cache, and an entry being written is written atomically, so nothing is lost."""
        if self._pool is None:
            return
        if stop:
            workers = [p for p in multiprocessing.active_children() if p not in self._before]
            for process in workers:
                process.kill()
            for process in workers:
                process.join()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(stop=exc_type is not None)


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


def scheduler_address() -> str | None:
    """Dask's own convention: DASK_SCHEDULER_ADDRESS, or the config key `scheduler-address`
    (which the variable also sets)."""
    import dask

    return os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)


class DaskExecutor:
    """Runs on an existing Dask cluster through distributed.Client (a futures executor).

    The training set goes to every worker once (`scatter(..., broadcast=True)`) and each task
    receives it by reference (plus one aligned copy per worker, see _DASK_SPLITS: a worker
    holds the training set twice); workers need neither the project folder nor a shared filesystem,
    only scratchnet installed. A task trains with one BLAS thread (start workers with
    `--nthreads 1`, or as many threads as cores: each task still uses one). A run whose worker
    dies is rescheduled by Dask itself (its `allowed-failures`, 3 by default) before it fails
    with KilledWorker.
    """

    def __init__(self, splits: dict, address: str, *, timeout: float = 5.0):
        self.splits = splits
        self.address = address
        self.timeout = timeout
        self.where = f"Dask cluster {address}"
        self._client: Client | None = None
        self._data = None
        from distributed import KilledWorker

        self.lost_errors = (KilledWorker,)
        self.retries_itself = True

    def __enter__(self) -> DaskExecutor:
        from distributed import Client

        try:
            self._client = Client(self.address, timeout=self.timeout, set_as_default=False)
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
        return self

    def submit(self, spec: RunSpec, key: str, cache: RunCache):
        # pure=False: the same run submitted twice (a retry) is a new task, not a cached result.
        assert self._client is not None, "submit outside `with executor:`"
        task = f"run-{key[:16]}-{time.monotonic_ns()}"
        return self._client.submit(_dask_task, spec, key, cache, self._data, self._token, pure=False, key=task)

    def wait_any(self, futures: Iterable) -> set:
        from distributed import wait

        assert self._client is not None, "wait_any outside `with executor:`"
        with self._client.as_current():  # wait() finds its client as the current one
            return set(wait(list(futures), return_when="FIRST_COMPLETED").done)

    def close(self, stop: bool = False) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def executor_from_env(splits: dict):
    """The executor SCRATCHNET_EXECUTOR names: 'local' (default) or 'dask'."""
    kind = os.environ.get("SCRATCHNET_EXECUTOR", "local").strip().lower() or "local"
    if kind == "local":
        return LocalExecutor(splits)
    if kind == "dask":
        address = scheduler_address()
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
    retries: int = 1,
    label: str = "sweep",
) -> dict[RunSpec, dict]:
    """Every run's record, from the cache or trained on `executor` (entered by the caller).

    data: cache.data_identity of the training arrays; train_size: their row count (for the
    cost order); code: cache.code_hash() unless given. on_record(spec, record, facts, cached)
    is called in the driver for every run as it is ready: cached ones first, then each trained
    or measured run once it is in the cache (cached=True when nothing trained: another process
    trained it meanwhile, or only its robustness was measured).
    A run whose worker died is retried `retries` times, then fails the sweep with
    ExecutorError naming it. label: what the progress lines call these runs. Returns
    {spec: record}.
    """
    code = code if code is not None else code_hash()
    keys = {spec: run_key(spec.model, spec.config, spec.seed, data, code) for spec in specs}
    records: dict[RunSpec, dict] = {}
    facts: dict[RunSpec, dict] = {}
    measure_only = set()  # their training is cached, their robustness is not
    for spec in specs:
        training = cache.get(keys[spec])
        entry = None if training is None else cache.joined(training, robustness_key(spec.robustness))
        if entry is not None:
            records[spec], facts[spec] = entry
        elif training is not None:
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
            for future in executor.wait_any(pending):
                spec = pending.pop(future)
                try:
                    outcome = future.result()
                except executor.lost_errors as err:
                    if executor.retries_itself:
                        raise _lost(spec, "on every try", executor, err) from None
                    lost.append((spec, err))
                    continue
                record, run_facts, cached, measured, unsaved = outcome
                if unsaved is not None:  # its worker could not store (no cache folder there)
                    cache.store(outcome, robustness_key(spec.robustness))
                records[spec] = record
                bar.update(1)
                bar.write(f"{spec.name}: test accuracy {_acc(record)}, " + _how(run_facts, cached, measured))
                if on_record is not None:
                    on_record(spec, record, run_facts, cached)
            if lost:
                # One dead local worker breaks the whole pool: every run in flight comes back
                # here at once, and all of them are resubmitted to a fresh pool.
                for spec, lost_err in lost:
                    attempts[spec] += 1
                    if attempts[spec] > retries:
                        raise _lost(spec, f"{attempts[spec]} times", executor, lost_err) from None
                bar.write(f"{label}: a worker died; retrying {', '.join(s.name for s, _ in lost)}")
                executor.restart()
                pending = submit([s for s, _ in lost] + list(pending.values()))
    finally:
        bar.close()
    return records


def _lost(spec: RunSpec, tries: str, executor, err: BaseException) -> ExecutorError:
    return ExecutorError(
        f"run {spec.name} lost its worker {tries} on {executor.where} ({type(err).__name__}: {err}); "
        "every finished run is in the run cache, rerun to train only what is missing"
    )


def _acc(record: dict) -> str:
    return "diverged" if record["test_acc"] is None else f"{record['test_acc']:.4f}"


def _how(facts: dict, cached: bool, measured: dict | None) -> str:
    """Where and how long a run took: trained, or measured only (its training cached)."""
    took = lambda f: f"{f['ended'] - f['started']:.1f} s on {f['worker']}"
    if not cached:
        return took(facts)
    if measured is not None:
        return f"trained before; robustness measured in {took(measured)}"
    return f"{took(facts)} (trained meanwhile by another process)"
