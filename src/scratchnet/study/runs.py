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

from scratchnet.study import layout
from scratchnet.files import write_csv
from scratchnet.nn import build_model
from scratchnet.study.params import model_config
from scratchnet.study.identity import git_commit
from scratchnet.study.tracking import TAG, Tracker, TrackingError, dataset_tags, dvc_experiment_tags
from scratchnet.training import accuracy, train


def load_splits(root: Path | str = ".") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train'|'val'|'test': (X (N, 3072) float32 model space, y (N,) int64)}.

    The X arrays are read-only memory maps: the preprocess stage has just written them, so they
    sit in the page cache, and mapping them costs nothing where np.load would spend ~1 s of
    every stage copying 600 MB (measured: epochs from the map are as fast as from RAM). The
    forked seed workers share the same pages.
    """
    splits = {}
    for split in ("train", "val", "test"):
        x_path, y_path = (Path(root) / p for p in layout.split_arrays(split))
        splits[split] = (np.load(x_path, mmap_mode="r"), np.load(y_path))
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
        **dvc_experiment_tags(),
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


class SeedRuns:
    """fit_seed for several seeds at once, one forked process per seed, started on entering
    the block and collected by `results()`, so the caller's own set-up overlaps the training:

        with SeedRuns("twolayer", config, [0, 1, 2], splits, desc="twolayer baseline") as runs:
            tracker = Tracker(...)        # MLflow's import runs while the seeds train
            pairs = runs.results()        # [(record, None)] in seed order

    Why processes: at the study's batch sizes the GEMMs are too skinny for two BLAS threads to
    share one run well (bench/train_speed.py: two single-threaded runs side by side do ~1.7x
    the work of one two-threaded run), and seeds are independent. Each worker is forked, so it
    shares the training set, and limits BLAS to one thread. With one seed (or no fork on this
    platform) the seeds train in this process, with all threads, inside `results()`.
    Leaving the block by an exception stops the workers at once.
    """

    def __init__(self, model_name: str, config: dict, seeds: list[int], splits: dict, *, desc: str):
        self._jobs = [(model_name, config, s, f"{desc} seed {s}") for s in seeds]
        self._splits = splits
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list = []

    def __enter__(self) -> "SeedRuns":
        if len(self._jobs) > 1 and "fork" in multiprocessing.get_all_start_methods():
            self._pool = ProcessPoolExecutor(max_workers=len(self._jobs),
                                             mp_context=multiprocessing.get_context("fork"))
            _SPLITS.update(self._splits)
            try:  # a fork-context pool starts every worker at the first submit: they copy _SPLITS
                self._futures = [self._pool.submit(_fit_seed_worker, *job) for job in self._jobs]
            finally:
                _SPLITS.clear()
        return self

    def results(self) -> list[tuple[dict, object]]:
        """[(record, model)] in seed order; model is None for a seed trained in a worker."""
        if self._pool is None:
            return [fit_seed(name, config, seed, self._splits, desc=desc)
                    for name, config, seed, desc in self._jobs]
        return [(future.result(), None) for future in self._futures]

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._pool is None:
            return
        if exc_type is not None:
            # The executor has no public way to stop running workers before Python 3.14
            # (terminate_workers); without this an error in the caller's set-up would wait
            # for the whole training before the stage could fail.
            stop = getattr(self._pool, "terminate_workers", None)
            if stop is not None:
                stop()
            else:
                for process in list((self._pool._processes or {}).values()):
                    process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


def fit_seeds(model_name: str, config: dict, seeds: list[int], splits: dict, *, desc: str):
    """fit_seed for each seed, several at once (see SeedRuns); [(record, model or None)]."""
    with SeedRuns(model_name, config, seeds, splits, desc=desc) as runs:
        return runs.results()


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
