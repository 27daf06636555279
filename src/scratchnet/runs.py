"""One training run of the study, end to end: build, train, test, track.

Shared by the `train` stage (the baselines) and the `ablate` stage (one hyper-parameter changed,
repeated over seeds). An edge module: it joins the numeric library to MLflow via `tracking`.
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from scratchnet import layout
from scratchnet.io import write_csv
from scratchnet.nn import build_model
from scratchnet.params import model_config
from scratchnet.identity import git_commit
from scratchnet.tracking import TAG, Tracker, TrackingError, dataset_tags
from scratchnet.training import accuracy, train


def load_splits(root: Path | str = ".") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train'|'val'|'test': (X (N, 3072) float32 model space, y (N,) int64)}, read into RAM:
    every epoch gathers each mini-batch from all of X in random order, which from a memory map
    would be random reads from disk whenever the page cache is short."""
    splits = {}
    for split in ("train", "val", "test"):
        x_path, y_path = (Path(root) / p for p in layout.split_arrays(split))
        splits[split] = (np.load(x_path), np.load(y_path))
    return splits


HISTORY_COLUMNS = ("epoch", "loss", "train_acc", "val_acc", "lr")


def write_history_csv(path: Path | str, history: list[dict]) -> None:
    """Per-epoch records -> CSV with HISTORY_COLUMNS (what `dvc plots` and MLflow show)."""
    write_csv(path, history, HISTORY_COLUMNS)


def base_tags(model: str, stage: str, provenance: dict, params_hash: str) -> dict[str, str]:
    return {
        TAG + "model": model,
        TAG + "stage": stage,
        TAG + "git_commit": git_commit(),
        TAG + "params_hash": params_hash,
        **dataset_tags(provenance),
    }


def fit_seed(model_name: str, config: dict, seed: int, splits: dict, *, progress: bool = True,
             desc: str | None = None):
    """Builds and trains one network from `seed` and tests it: numerics only, no tracking.

    config: every hyper-parameter of the run (run_config), epochs included. Returns
    (record, model): the record follows layout's run.json seed schema, its mlflow_run_id None
    until the run is logged.
    """
    X_train, y_train = splits["train"]
    X_val, y_val = splits["val"]
    X_test, y_test = splits["test"]
    arch = model_config({model_name: config}, model_name)
    model = build_model(arch, input_dim=X_train.shape[1], num_classes=int(y_train.max()) + 1, seed=seed)
    result = train(
        model, X_train, y_train, X_val, y_val,
        epochs=config["epochs"], lr=config["lr"], lr_decay=config["lr_decay"],
        batch_size=config["batch_size"], reg=config["reg"], seed=seed,
        progress=progress, desc=desc,
    )
    record = {
        "seed": seed,
        "test_acc": None if result.diverged else accuracy(model, X_test, y_test),
        "final_val_acc": result.history[-1]["val_acc"] if result.history else None,
        "diverged": bool(result.diverged),
        "diverged_epoch": result.diverged_epoch,
        "history": result.history,
        "seconds": result.seconds,
        "mlflow_run_id": None,
    }
    return record, model


# Read by the forked seed workers: set just before the fork, shared copy-on-write (never written).
_SPLITS: dict = {}


def _fit_seed_worker(model_name: str, config: dict, seed: int, desc: str) -> dict:
    with threadpool_limits(limits=1):
        record, _ = fit_seed(model_name, config, seed, _SPLITS, desc=desc)
    return record


def fit_seeds(model_name: str, config: dict, seeds: list[int], splits: dict, *, desc: str):
    """fit_seed for each seed; several seeds train at once, one process each.

    Why processes: at the study's batch sizes the GEMMs are too skinny for two BLAS threads
    to share one run well (bench/train_speed.py: two single-threaded runs side by side do
    ~1.7x the work of one two-threaded run), and seeds are independent. Each worker is forked,
    so it shares the training set copy-on-write, and limits BLAS to one thread. One seed
    trains in this process with all threads. Returns [(record, model or None)] in seed order.
    """
    if len(seeds) == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fit_seed(model_name, config, s, splits, desc=f"{desc} seed {s}") for s in seeds]
    _SPLITS.update(splits)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=len(seeds), mp_context=context) as pool:
            futures = [pool.submit(_fit_seed_worker, model_name, config, s, f"{desc} seed {s}")
                       for s in seeds]
            return [(f.result(), None) for f in futures]
    finally:
        _SPLITS.clear()


def log_seed(
    tracker: Tracker,
    record: dict,
    *,
    model_name: str,
    config: dict,
    train_size: int,
    run_name: str,
    tags: dict,
    parent_run_id: str | None = None,
    on_logged=None,
) -> TrackingError | None:
    """Logs one trained seed as an MLflow run and sets record["mlflow_run_id"].

    `on_logged(run)` runs inside the run: the place to log extra artifacts. A tracking failure
    is returned, not raised, so the caller saves its results before failing the stage.
    """
    seed = record["seed"]
    run_params = {**config, "seed": seed, "model": model_name, "train_size": train_size}
    try:
        with tracker.run(run_name, run_params, {**tags, TAG + "seed": seed}, parent_run_id) as run:
            record["mlflow_run_id"] = run.run_id
            run.log_history(record["history"])
            if record["test_acc"] is not None:
                run.log_metrics({"test_acc": record["test_acc"]})
            run.set_tags({TAG + "diverged": record["diverged"]})
            with tempfile.TemporaryDirectory() as tmp:
                curve = Path(tmp) / "curve.csv"
                write_history_csv(curve, record["history"])
                run.log_artifact(curve)
            if on_logged is not None:
                on_logged(run)
    except TrackingError as err:
        if record["mlflow_run_id"] is None:
            raise
        return err
    return None


def summarise(records: list[dict]) -> tuple[float | None, float | None]:
    """Mean and sample std of test accuracy over the seeds that did not diverge."""
    accs = [r["test_acc"] for r in records if r["test_acc"] is not None and not math.isnan(r["test_acc"])]
    if not accs:
        return None, None
    return statistics.fmean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)
