"""One training run end to end (runs.py): seeds side by side, stopping them, a lean import."""

import subprocess
import sys
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from scratchnet.data import PixelStats
from scratchnet.study.runs import SeedRuns, fit_seed, fit_seeds, load_splits
from scratchnet.study import layout

CONFIG = {"lr": 0.05, "lr_decay": 0.9, "batch_size": 32, "reg": 0.0, "hidden_dim": 16,
          "init": "he", "init_scale": 1e-3, "epochs": 2}


def splits(n=300, dim=48, seed=0):
    rng = np.random.default_rng(seed)
    make = lambda k: (rng.standard_normal((k, dim), dtype=np.float32), rng.integers(0, 10, k))
    return {"train": make(n), "val": make(60), "test": make(60)}


def test_seeds_trained_side_by_side_equal_seeds_trained_one_by_one():
    data = splits()
    together = fit_seeds("twolayer", CONFIG, [0, 1, 2], data, desc="t")
    with threadpool_limits(limits=1):  # the workers' BLAS threads, so the sums add up alike
        alone = [fit_seed("twolayer", CONFIG, s, data, progress=False)[0] for s in (0, 1, 2)]
    without_time = lambda r: {k: v for k, v in r.items() if k != "seconds"}
    assert [without_time(r) for r, _ in together] == [without_time(r) for r in alone]
    assert [r["seed"] for r, _ in together] == [0, 1, 2]
    assert len({r["test_acc"] for r, _ in together}) > 1  # the seeds really differ


def test_a_single_seed_trains_in_this_process_and_returns_its_model():
    [(record, model)] = fit_seeds("twolayer", CONFIG, [4], splits(), desc="t")
    assert record["seed"] == 4 and model is not None
    assert model.params["W1"].shape == (48, 16)


def test_an_error_while_seeds_train_stops_the_workers_at_once():
    long_run = {**CONFIG, "epochs": 10_000}  # minutes of training if nothing stopped it
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="set-up failed"):
        with SeedRuns("twolayer", long_run, [0, 1], splits(), desc="t") as runs:
            workers = list(runs._pool._processes.values())
            raise RuntimeError("set-up failed")
    assert time.monotonic() - started < 30
    assert workers and not any(w.is_alive() for w in workers)


def test_the_training_set_is_memory_mapped_not_read_into_memory(tmp_path):
    data = splits(n=20, dim=3072)
    PixelStats(np.zeros(3072), np.ones(3072)).save(tmp_path / layout.STATS)
    for split, (X, y) in data.items():
        x_path, y_path = (tmp_path / p for p in layout.split_arrays(split))
        x_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(x_path, X)
        np.save(y_path, y)
    loaded = load_splits(tmp_path)
    X_train, y_train = loaded["train"]
    assert isinstance(X_train, np.memmap) and not X_train.flags.writeable
    np.testing.assert_array_equal(X_train, data["train"][0])
    np.testing.assert_array_equal(y_train, data["train"][1])
    np.testing.assert_array_equal(loaded["stats"].std, np.ones(3072))


def test_the_training_library_does_not_import_mlflow():
    # A stage opens MLflow itself, while its seeds train: importing the library must not.
    code = "import sys, scratchnet.study.runs, scratchnet.study.tracking; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
