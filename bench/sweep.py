"""Sweep scaling: how well a sweep fills its workers, and Dask with 1 vs 2 workers.

    .venv/bin/python bench/sweep.py                       # default size (a few minutes)
    .venv/bin/python bench/sweep.py --rows 4000 --runs 12 # smaller, as recorded in RESULTS.md

On random float32 data of the CIFAR shape (rows x 3072), a small two-layer sweep (hidden widths
50..200, batch 128..512, several seeds) is run

1. on the local executor with one worker per core: efficiency = sum(run training seconds) /
   workers / sweep wall time (what the driver, the dispatch and an uneven tail cost);
2. on a local Dask cluster (`dask scheduler` + `dask worker --nthreads 1 --no-nanny`, started
   here, stopped at the end) with 1 worker, then with 2 workers: speed-up = wall(1) / wall(2).

Every sweep uses a fresh run cache (nothing is reused). It also prints per-run seconds per
config, the input of RESULTS.md's projection of the full study on 1, 8 and 64 workers.
Ratios only: other jobs sharing the machine slow both sides of a ratio alike, not its value,
unless they come and go mid-run (note the load average printed at the start).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scratchnet.study.cache import RunCache
from scratchnet.study.runs import RunSpec
from scratchnet.study.sweep import DaskExecutor, LocalExecutor, run_sweep

BIN = Path(sys.executable).parent
BASE = {"lr": 0.1, "lr_decay": 0.9, "batch_size": 128, "reg": 0.0, "hidden_dim": 100, "init": "he", "init_scale": 1e-3}


def data(rows: int) -> dict:
    rng = np.random.default_rng(0)
    make = lambda n: (rng.standard_normal((n, 3072), dtype=np.float32), rng.integers(0, 10, n))
    return {"train": make(rows), "val": make(200), "test": make(500)}


def grid(runs: int, epochs: int) -> list[RunSpec]:
    variants = [
        ("hidden_dim", 50),
        ("hidden_dim", 150),
        ("hidden_dim", 200),
        ("batch_size", 256),
        ("batch_size", 512),
        ("lr", 0.05),
    ]
    specs = []
    for i in range(runs):
        key, value = variants[i % len(variants)]
        specs.append(RunSpec("twolayer", f"{key}={value}", {**BASE, key: value, "epochs": epochs}, i // len(variants)))
    return specs


def timed_sweep(specs, executor, rows) -> tuple[float, dict]:
    """(wall seconds, {spec: {"seconds": the run's training and test seconds}}) from its facts."""
    runs = {}

    def timed(spec, record, facts, cached):
        runs[spec] = {"seconds": facts["ended"] - facts["started"]}

    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        run_sweep(specs, executor, cache=RunCache(cache, retrain=True), data="bench", train_size=rows, on_record=timed)
        return time.perf_counter() - started, runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask_cluster(workers: int, folder: Path) -> tuple[str, list[subprocess.Popen]]:
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": folder}
    procs = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet
        )
    ]
    procs += [
        subprocess.Popen(
            [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"], **quiet
        )
        for _ in range(workers)
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with Client(address, timeout=2, set_as_default=False) as client:
                if len(client.scheduler_info()["workers"]) == workers:
                    return address, procs
        except (OSError, TimeoutError):
            pass
        time.sleep(0.5)
    stop(procs)
    raise SystemExit(f"the Dask cluster at {address} did not start")


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="training rows (CIFAR: 49,000)")
    parser.add_argument("--runs", type=int, default=12, help="runs in the sweep")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f}; {args.runs} runs "
        f"x {args.epochs} epochs on {args.rows} x 3072 float32 rows"
    )
    splits = data(args.rows)
    specs = grid(args.runs, args.epochs)

    with LocalExecutor(splits, workers=args.workers) as executor:
        wall, records = timed_sweep(specs, executor, args.rows)
    busy = sum(r["seconds"] for r in records.values())
    print(
        f"\nlocal, {args.workers} workers: wall {wall:.1f} s, sum of run seconds {busy:.1f} s, "
        f"efficiency {busy / args.workers / wall:.1%}"
    )
    per_config = {}
    for spec, r in records.items():
        per_config.setdefault(spec.entry, []).append(r["seconds"] / args.epochs)
    for entry, secs in sorted(per_config.items()):
        print(
            f"  {entry:15s} {statistics.fmean(secs):.3f} s/epoch at {args.rows} rows "
            f"({statistics.fmean(secs) * 49_000 / args.rows:.2f} s/epoch scaled to 49,000)"
        )

    walls = {}
    with tempfile.TemporaryDirectory() as folder:
        for workers in (1, 2):
            address, procs = dask_cluster(workers, Path(folder))
            try:
                with DaskExecutor(splits, address) as executor:
                    walls[workers], recs = timed_sweep(specs, executor, args.rows)
            finally:
                stop(procs)
            busy = sum(r["seconds"] for r in recs.values())
            print(
                f"dask, {workers} worker(s): wall {walls[workers]:.1f} s, sum of run seconds "
                f"{busy:.1f} s, efficiency {busy / workers / walls[workers]:.1%}"
            )
    print(f"dask speed-up 1 -> 2 workers: {walls[1] / walls[2]:.2f}x")


if __name__ == "__main__":
    main()
