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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from scratchnet.study import layout
from scratchnet.files import write_csv
from scratchnet.nn import build_model
from scratchnet.study.identity import config_hash, git_commit
from scratchnet.study.params import model_config, parse_entry
from scratchnet.study.tracking import TAG, Tracker, TrackingError, dataset_tags
from scratchnet.training import accuracy, train


def load_splits(root: Path | str = ".") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train'|'val'|'test': (X (N, 3072) float32 model space, y (N,) int64)}.

    The X arrays are read-only memory maps: the preprocess stage has just written them, so they
    sit in the page cache, and mapping them costs nothing where np.load would spend ~1 s of
    every stage copying 600 MB (measured: epochs from the map are as fast as from RAM). The
    forked sweep workers share the same pages.
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
    model = build_model(arch, input_dim=X_train.shape[1], num_classes=int(y_train.max()) + 1, seed=seed)
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


def log_record(tracker: Tracker, record: dict, *, run_name: str, params: dict, tags: dict,
               parent_run_id: str | None = None, on_logged=None) -> str:
    """Logs one finished run to MLflow once and returns its run id (also set as
    record["mlflow_run_id"]); raises TrackingError if the store refuses.

    Idempotent: a run tagged with the same run key (the record's cache key) in the same stage is
    already in the store, and its id is returned without logging anything, so a rerun sweep logs
    only its new runs and a deleted store is refilled from the run cache. The stage is part of
    the match because the train stage's baseline and the ablation's identical seed share a
    key but are shown twice: as the baseline, and inside its sweep's group.

    The one place the stages log a run: `tracking.Tracker.log_run` (same contract, plus true
    start/end times from record["started"]/["ended"]) replaces its body when it lands.
    `on_logged(run)` runs inside a newly logged run: the place to log extra artifacts.
    """
    tags = {**tags, TAG + "seed": record["seed"], TAG + "run_key": record["key"]}
    try:
        found = tracker.client.search_runs(
            [tracker.experiment_id], max_results=1,
            filter_string=(f"tags.`{TAG}run_key` = '{record['key']}' and "
                           f"tags.`{TAG}stage` = '{tags[TAG + 'stage']}'"),
        )
    except Exception as err:  # noqa: BLE001 - any store failure is a TrackingError to the stage
        raise TrackingError(f"MLflow store {tracker.uri} could not be searched for run "
                            f"{run_name!r}: {err}") from err
    if found:
        record["mlflow_run_id"] = found[0].info.run_id
        return record["mlflow_run_id"]
    with tracker.run(run_name, params, tags, parent_run_id) as run:
        record["mlflow_run_id"] = run.run_id
        run.log_history(record["history"])
        if record["test_acc"] is not None:
            run.log_metrics({"test_acc": record["test_acc"]})
        run.set_tags({TAG + "diverged": record["diverged"], TAG + "worker": record["worker"]})
        with tempfile.TemporaryDirectory() as tmp:
            curve = Path(tmp) / "curve.csv"
            write_history_csv(curve, record["history"])
            run.log_artifact(curve)
        if on_logged is not None:
            on_logged(run)
    return record["mlflow_run_id"]


class SweepLog:
    """Logs each finished run of the ablation sweep to MLflow (the on_record of sweep.run_sweep),
    under one parent run per sweep (model, varied key). MLflow is opened at the first run, while
    the others train.

    The first tracking failure is kept in `error`, not raised: the sweep goes on, the stage
    writes every result, then fails naming it (the runs stay in the run cache; the next repro
    logs them without training)."""

    def __init__(self, params: dict, provenance: dict, train_size: int):
        self.params = params
        self.provenance = provenance
        self.train_size = train_size
        self.tracker: Tracker | None = None
        self.parents: dict[tuple, str] = {}
        self.error: TrackingError | None = None

    def __call__(self, spec: RunSpec, record: dict, cached: bool) -> None:
        if self.error is not None:
            return
        try:
            if self.tracker is None:
                self.tracker = Tracker(self.params["tracking"]["experiment"])
            param, value = parse_entry(self.params, spec.model, spec.entry)
            tags = self.sweep_tags(spec.model, param)
            log_record(self.tracker, record, run_name=spec.name,
                       params=run_params(spec.model, spec.config, spec.seed, self.train_size),
                       tags={**tags, TAG + "varied": param or "none", TAG + "value": value},
                       parent_run_id=self.parent(spec.model, param, spec.config["epochs"]))
        except TrackingError as err:
            self.error = err

    def sweep_tags(self, model: str, param: str | None) -> dict:
        return {**base_tags(model, "ablate", self.provenance, config_hash(self.params)),
                TAG + "sweep": f"{model}.{param or 'baseline'}"}

    def parent(self, model: str, param: str | None, epochs: int) -> str:
        """The sweep's parent run, found or created once per stage."""
        if (model, param) not in self.parents:
            tags = self.sweep_tags(model, param)
            # The sweep's fixed part: its runs are comparable while this stays the same.
            baseline = {k: v for k, v in self.params[model].items() if k != param}
            key = config_hash({"sweep": tags[TAG + "sweep"], "baseline": baseline, "epochs": epochs,
                               "data": tags[TAG + "dataset_sha256"],
                               "preprocess": self.params["preprocess"]})
            self.parents[model, param] = self.tracker.parent_run(
                f"{model} sweep: {param or 'baseline'}", key, {**tags, TAG + "stage": "ablate-sweep"})
        return self.parents[model, param]


def summarise(records: list[dict]) -> tuple[float | None, float | None]:
    """Mean and sample std of test accuracy over the seeds that did not diverge."""
    accs = [r["test_acc"] for r in records if r["test_acc"] is not None and not math.isnan(r["test_acc"])]
    if not accs:
        return None, None
    return statistics.fmean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)
