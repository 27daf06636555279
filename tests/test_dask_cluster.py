"""The sweep on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1, started from the venv's bin in an empty folder, stopped by the test.

The sweep runs through the ablate stage's library function (`run_sweep` with a DaskExecutor) on
tiny arrays, not through `dvc repro` in a project copy: what the cluster changes is where runs
train and how data reaches them, which this exercises in full (pickled run function, scattered
data, worker-side BLAS, a killed worker), in seconds instead of the minutes a DVC study copy
takes on top of the e2e tests; the stage script itself is covered by tests/test_pipeline_e2e.py
with the local executor, and only differs by `executor_from_env`, tested here too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scratchnet.study.cache import RunCache
from scratchnet.study.runs import RunSpec
from scratchnet.study.sweep import DaskExecutor, ExecutorError, LocalExecutor, executor_from_env, run_sweep
from tiny_runs import CONFIG, splits

BIN = Path(sys.executable).parent


def specs(seeds=range(4), epochs=2):
    return [RunSpec("twolayer", "baseline", {**CONFIG, "epochs": epochs}, s) for s in seeds]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and `workers` worker processes (no nanny: the process killed is the worker)."""

    def __init__(self, folder: Path, workers: int = 2):
        self.folder = folder
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.processes: list[subprocess.Popen] = []
        self.scheduler = self._start(["scheduler", "--host", "127.0.0.1",
                                      "--port", self.address.rsplit(":", 1)[1],
                                      "--no-dashboard"])
        self._wait_for_workers(0)
        self.workers = [self._start(["worker", self.address, "--nthreads", "1", "--no-nanny",
                                     "--no-dashboard", "--host", "127.0.0.1"])
                        for _ in range(workers)]
        self._wait_for_workers(workers)

    def _start(self, args: list[str]) -> subprocess.Popen:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen([str(BIN / "dask"), *args], cwd=self.folder, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def _wait_for_workers(self, count: int, seconds: float = 60) -> None:
        from distributed import Client

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with Client(self.address, timeout=2, set_as_default=False) as client:
                    if len(client.scheduler_info()["workers"]) >= count:
                        return
            except (OSError, TimeoutError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"the Dask cluster at {self.address} did not get {count} workers")

    def stop(self) -> None:
        """Workers first, then the scheduler; a process that has not left within 3 s of
        SIGTERM (a worker retrying a gone scheduler) is killed."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("empty")  # workers need no project folder
    started = Cluster(folder)
    try:
        yield started
    finally:
        started.stop()


def without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("seconds", "started", "ended", "worker")}


def test_the_cluster_gives_bit_identical_runs_and_they_run_on_its_workers(cluster, tmp_path):
    data = splits()
    runs = specs()
    with DaskExecutor(data, cluster.address) as executor:
        on_dask = run_sweep(runs, executor, cache=RunCache(tmp_path / "dask"), data="d", train_size=300)
        info = executor._client.scheduler_info()["workers"]
    with LocalExecutor(data, workers=2) as executor:
        local = run_sweep(runs, executor, cache=RunCache(tmp_path / "local"), data="d", train_size=300)

    assert [on_dask[s]["test_acc"] for s in runs] == [local[s]["test_acc"] for s in runs]
    assert [without_timing(on_dask[s]) for s in runs] == [without_timing(local[s]) for s in runs]
    assert len({on_dask[s]["test_acc"] for s in runs}) > 1  # the seeds really differ
    workers = {on_dask[s]["worker"] for s in runs}
    assert workers <= set(info) and len(workers) == 2  # both workers trained, not the driver


def test_executor_from_env_connects_to_dasks_scheduler_address(cluster, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_EXECUTOR", "dask")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
    with executor_from_env(splits()) as executor:
        assert isinstance(executor, DaskExecutor)
        assert executor.where == f"Dask cluster {cluster.address} (2 workers)"


def test_a_worker_killed_mid_sweep_loses_no_finished_run(tmp_path):
    cluster = Cluster(tmp_path, workers=2)
    try:
        data = splits(n=2000)
        runs = specs(seeds=range(8), epochs=15)  # ~0.5 s a run: a sweep of a few seconds
        cache = RunCache(tmp_path / "cache")
        finished = []

        def kill_a_worker_after_the_second_run(spec, record, facts, cached):
            finished.append(record)
            if len(finished) == 2:
                cluster.workers[0].send_signal(signal.SIGKILL)

        with DaskExecutor(data, cluster.address) as executor:
            records = run_sweep(runs, executor, cache=cache, data="d", train_size=2000,
                                on_record=kill_a_worker_after_the_second_run)
        assert cluster.workers[0].wait(timeout=10) == -signal.SIGKILL
        assert len(records) == len(runs)  # the dead worker's run was trained again elsewhere
        assert all(cache.get(r["key"]) is not None for r in records.values())
        survivor = {r["worker"] for r in finished[4:]}  # after the kill, one worker is left
        assert len(survivor) == 1
        with DaskExecutor(data, cluster.address) as executor:  # a rerun trains nothing
            again = run_sweep(runs, executor, cache=cache, data="d", train_size=2000)
        assert [again[s] == {**records[s], "mlflow_run_id": None} for s in runs] == [True] * len(runs)
    finally:
        cluster.stop()


def test_an_unreachable_scheduler_fails_at_once_naming_it():
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=f"Dask scheduler {address} .* is unreachable"):
        with DaskExecutor(splits(), address):
            pass
    assert time.monotonic() - started < 15
