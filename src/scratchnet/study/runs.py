"""One training run of the study, end to end: build, train, test, record, track.

Shared by the `train` stage (the baselines) and the `ablate` stage's sweep (sweep.py runs
`train_run` on local or Dask workers). A run's result is one record (run_record); the driver
alone logs records to MLflow (log_record). An edge module: it joins the numeric library to
MLflow via `tracking`.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from scratchnet.study import layout
from scratchnet.files import write_csv
from scratchnet.data import PixelStats
from scratchnet.nn import Normalizer, build_model
from scratchnet.study.identity import config_hash, git_commit
from scratchnet.study.params import model_config, parse_entry, sweeps
from scratchnet.study.tracking import TAG, Tracker, TrackingError, dataset_tags, sweep_tags
from scratchnet.training import accuracy, train


def load_splits(root: Path | str = ".") -> dict:
    """{'train'|'val'|'test': (X (N, 3072) uint8 pixels, y (N,) int64), 'stats': PixelStats}.

    The X arrays are read-only memory maps: the preprocess stage has just written them, so they
    sit in the page cache, and mapping them costs nothing where np.load would copy them in
    every stage (measured: epochs from the map are as fast as from RAM). The forked sweep
    workers share the same pages. Each model normalises its mini-batches itself (fit_seed).
    """
    splits: dict = {"stats": PixelStats.load(Path(root) / layout.STATS)}
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
    }


@dataclass(frozen=True, eq=False)  # compared by identity: config is a dict
class RunSpec:
    """One training run of a sweep: a model's config (epochs included) and a seed."""

    model: str
    entry: str  # 'baseline' or 'key=value' (params.ablation_entries)
    config: dict
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model} {self.entry} seed {self.seed}"


# The record of one training run, as written to the run cache, to the stages' JSON
# (results/train/<m>/run.json, results/ablate/<m>/<entry>.json, under "seeds") and read by
# evaluate and the report. run_record builds it; nothing else writes one by hand.
RECORD_FIELDS = ("seed", "test_acc", "final_val_acc", "diverged", "diverged_epoch", "history",
                 "seconds", "started", "ended", "key", "worker", "mlflow_run_id")


def run_record(*, seed: int, result, test_acc: float | None, started: float, ended: float,
               key: str | None = None, worker: str | None = None) -> dict:
    """The record of one finished run (RECORD_FIELDS).

    result: the training's TrainResult. started, ended: unix seconds around the training and
    test (what MLflow shows as the run's start and duration). key: its run-cache key.
    worker: where it ran ('host:pid' or a Dask worker's address). mlflow_run_id stays None until
    the driver logs the run.
    """
    return {
        "seed": seed,
        "test_acc": test_acc,
        "final_val_acc": result.history[-1]["val_acc"] if result.history else None,
        "diverged": bool(result.diverged),
        "diverged_epoch": result.diverged_epoch,
        "history": result.history,
        "seconds": result.seconds,
        "started": started,
        "ended": ended,
        "key": key,
        "worker": worker,
        "mlflow_run_id": None,
    }


def fit_seed(model_name: str, config: dict, seed: int, splits: dict, *, progress: bool = True,
             desc: str | None = None):
    """Builds and trains one network from `seed` and tests it: numerics only, no tracking.

    config: every hyper-parameter of the run (run_config), epochs included. Returns
    (record, model); the record's key and worker are the caller's to fill.
    """
    X_train, y_train = splits["train"]
    X_val, y_val = splits["val"]
    X_test, y_test = splits["test"]
    started = time.time()
    arch = model_config({model_name: config}, model_name)
    stats = splits.get("stats")  # None: X is already what the network takes (tests, benchmarks)
    normalizer = None if stats is None else Normalizer(config["normalize"], stats.mean, stats.std)
    model = build_model(arch, input_dim=X_train.shape[1], num_classes=int(y_train.max()) + 1, seed=seed,
                        normalizer=normalizer)
    result = train(
        model, X_train, y_train, X_val, y_val,
        epochs=config["epochs"], lr=config["lr"], lr_decay=config["lr_decay"],
        batch_size=config["batch_size"], reg=config["reg"], seed=seed,
        progress=progress, desc=desc,
    )
    test_acc = None if result.diverged else accuracy(model, X_test, y_test)
    return run_record(seed=seed, result=result, test_acc=test_acc, started=started,
                      ended=time.time()), model


def here() -> str:
    """Where this process runs, as a record's `worker`: 'host:pid'."""
    return f"{socket.gethostname()}:{os.getpid()}"


def train_run(spec: RunSpec, splits: dict, key: str, worker: str) -> dict:
    """fit_seed for one run of a sweep, with one BLAS thread and no progress bar (runs train
    side by side, one per core: at the study's batch sizes two BLAS threads share one run worse
    than two runs share two cores, bench/train_speed.py). The record only: workers keep no
    network."""
    with threadpool_limits(limits=1):
        record, _ = fit_seed(spec.model, spec.config, spec.seed, splits, progress=False)
    record.update(key=key, worker=worker)
    return record


def run_params(model_name: str, config: dict, seed: int, train_size: int) -> dict:
    """A run's MLflow params: its hyper-parameters, seed, model and training-set size."""
    return {**config, "seed": seed, "model": model_name, "train_size": train_size}


def log_seed(tracker: Tracker, record: dict, facts: dict, *, model_name: str, config: dict,
             train_size: int, run_name: str, tags: dict, on_logged=None) -> TrackingError | None:
    """Logs a baseline run (the train stage). A tracking failure is returned, not raised, so
    the stage writes its results before failing."""
    try:
        tracker.log_run(
            record, facts, run_name=run_name,
            params=run_params(model_name, config, record["seed"], train_size),
            tags=tags, on_logged=on_logged)
    except TrackingError as err:
        return err
    return None


class SweepLog:
    """Logs each finished run of the ablation sweep to MLflow (the on_record of sweep.run_sweep).

    A value's runs sit under one parent run per sweep (model, varied key); the baseline's runs
    have no parent but carry an `in_sweep` tag for every sweep they centre (tracking.sweep_tags),
    so one query finds a sweep with its baseline. A parent created here starts when this log
    was made (before the sweep submits a run) or at the first child it holds if that started
    earlier (a run from the cache), and `close()` ends it at its last child's end; a stage
    running at the same time that began earlier replaces it by one starting earlier
    (Tracker.sweep_parent). MLflow cannot move a start: refilling a store from the run cache,
    a cached child logged after the parent's creation may have started before it. Logging is once per run key (Tracker.log_run): a
    rerun logs only new runs, and a deleted store is refilled from the run cache. MLflow is
    opened at the first finished run, while the others train.

    The first tracking failure is kept in `error`, not raised: the sweep goes on, the stage
    writes every result, then fails naming it (the runs stay in the run cache; the next repro
    logs them without training)."""

    def __init__(self, params: dict, provenance: dict, train_size: int):
        self.params = params
        self.provenance = provenance
        self.train_size = train_size
        self.began = time.time()
        self.tracker: Tracker | None = None
        self.parents: dict[tuple, str] = {}  # (model, key) -> the sweep's parent run id
        self.keys: dict[tuple, str] = {}  # (model, key) -> the parent's run key
        self.error: TrackingError | None = None

    def __call__(self, spec: RunSpec, record: dict, facts: dict, cached: bool) -> None:
        if self.error is not None:
            return
        try:
            if self.tracker is None:
                self.tracker = Tracker(self.params["tracking"]["experiment"])
            param, _ = parse_entry(self.params, spec.model, spec.entry)
            parent = None
            if param is not None:
                parent = self.parent(spec.model, param, facts["started"])
            tags = {**base_tags(spec.model, "ablate", self.provenance, config_hash(self.params)),
                    **sweep_tags(spec.model, param, spec.entry, sweeps(self.params, spec.model))}
            self.tracker.log_run(
                record, facts, run_name=spec.name, tags=tags, parent_run_id=parent,
                params=run_params(spec.model, spec.config, spec.seed, self.train_size))
        except TrackingError as err:
            self.error = err

    def parent(self, model: str, param: str, start: float) -> str:
        """The sweep's parent run, found or created once per stage."""
        if (model, param) not in self.parents:
            tags = {**base_tags(model, "ablate-sweep", self.provenance, config_hash(self.params)),
                    TAG + "sweep": f"{model}.{param}"}
            # The sweep's fixed part: its runs are comparable while this stays the same.
            baseline = {k: v for k, v in self.params[model].items() if k != param}
            key = config_hash({"sweep": tags[TAG + "sweep"], "baseline": baseline,
                               "epochs": self.params["ablate"]["epochs"][model],
                               "data": tags[TAG + "dataset_sha256"],
                               "preprocess": self.params["preprocess"]})
            self.keys[model, param] = key
            self.parents[model, param] = self.tracker.sweep_parent(
                f"{model} sweep: {param}", key, tags, min(self.began, start))
        return self.parents[model, param]

    def close(self) -> None:
        """Ends every sweep's parent run at its last child's end."""
        if self.error is not None or self.tracker is None:
            return
        try:
            for sweep, key in self.keys.items():
                self.parents[sweep] = self.tracker.close_parent(key)
        except TrackingError as err:
            self.error = err


def summarise(records: list[dict]) -> tuple[float | None, float | None]:
    """Mean and sample std of test accuracy over the seeds that did not diverge."""
    accs = [r["test_acc"] for r in records if r["test_acc"] is not None and not math.isnan(r["test_acc"])]
    if not accs:
        return None, None
    return statistics.fmean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)
