"""Training runs of the study at its edges: the data they read, the results they write, and
their MLflow logging.

Shared by the `train` stage (the baselines) and the `ablate` stage's sweep. The run itself,
numerics only, is `classifier.train_classifier` (sweep.py runs `classifier.train_run` on local
or Dask workers); a run gives a record and its facts (classifier.py says which is which). The
driver alone logs runs to MLflow. An edge module: it joins the numeric library to MLflow via
`tracking`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from scratchnet.data import PixelStats
from scratchnet.files import write_csv
from scratchnet.study import layout
from scratchnet.study.cache import numeric_environment
from scratchnet.study.classifier import RunSpec
from scratchnet.study.identity import config_hash, git_commit
from scratchnet.study.params import parse_entry, sweeps
from scratchnet.study.tracking import TAG, Tracker, TrackingError, dataset_tags, sweep_tags


def load_splits(root: Path | str = ".") -> dict:
    """{'train'|'val'|'test': (X (N, 3072) uint8 pixels, y (N,) int64), 'stats': PixelStats}.

    The X arrays are read-only memory maps: the preprocess stage has just written them, so they
    sit in the page cache, and mapping them costs nothing where np.load would copy them in
    every stage (measured: epochs from the map are as fast as from RAM). The forked sweep
    workers share the same pages. Each model normalises its mini-batches itself
    (classifier.train_classifier).
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
    env = numeric_environment()  # what can change a float32 result with the same code
    return {
        TAG + "model": model,
        TAG + "stage": stage,
        TAG + "git_commit": git_commit(),
        TAG + "params_hash": params_hash,
        TAG + "numpy": env["numpy"],
        TAG + "blas": "; ".join(" ".join(str(v) for v in lib.values()) for lib in env["blas"]) or "none found",
        **dataset_tags(provenance),
    }


def run_result(model: str, stage: str, entry: str, param: str | None, value, config: dict, records: list[dict]) -> dict:
    """A stage's result for one entry (layout.train_run, layout.ablate_run): what was run and
    the record of every seed, nothing else (evaluate computes mean and std from the seeds).

    entry: 'baseline' or 'key=value'; param, value: the key it varies and its value (None for
    the baseline)."""
    return {
        "model": model,
        "stage": stage,
        "run": entry,
        "param": param,
        "value": value,
        "config": config,
        "seeds": records,
    }


def run_params(model_name: str, config: dict, seed: int, train_size: int) -> dict:
    """A run's MLflow params: its hyper-parameters, seed, model and training-set size."""
    return {**config, "seed": seed, "model": model_name, "train_size": train_size}


def log_seed(
    tracker: Tracker,
    record: dict,
    facts: dict,
    *,
    model_name: str,
    config: dict,
    train_size: int,
    run_name: str,
    tags: dict,
    on_logged=None,
) -> TrackingError | None:
    """Logs a baseline run (the train stage). A tracking failure is returned, not raised, so
    the stage writes its results before failing."""
    try:
        tracker.log_run(
            record,
            facts,
            run_name=run_name,
            params=run_params(model_name, config, record["seed"], train_size),
            tags=tags,
            on_logged=on_logged,
        )
    except TrackingError as err:
        return err
    return None


class SweepLog:
    """Logs each finished run of the ablation sweep to MLflow (the on_record of sweep.run_sweep).

    A value's runs sit under one parent run per sweep (model, varied key); the baseline's runs
    have no parent but carry an `in_sweep` tag for every sweep they centre (tracking.sweep_tags),
    so one query finds a sweep with its baseline. A parent starts when this log was made (before
    the sweep submits a run) or at its first child if that started earlier (a run from the
    cache); `close()` ends it at its last child's end (Tracker.sweep_parent, close_parent).
    Logging is once per run key (Tracker.log_run): a rerun logs only new runs, and a deleted
    store is refilled from the run cache. MLflow is opened at the first finished run, while the
    others train.

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
            tags = {
                **base_tags(spec.model, "ablate", self.provenance, config_hash(self.params)),
                **sweep_tags(spec.model, param, spec.entry, sweeps(self.params, spec.model)),
            }
            self.tracker.log_run(
                record,
                facts,
                run_name=spec.name,
                tags=tags,
                parent_run_id=parent,
                params=run_params(spec.model, spec.config, spec.seed, self.train_size),
            )
        except TrackingError as err:
            self.error = err

    def parent(self, model: str, param: str, start: float) -> str:
        """The sweep's parent run, found or created once per stage."""
        if (model, param) not in self.parents:
            tags = {
                **base_tags(model, "ablate-sweep", self.provenance, config_hash(self.params)),
                TAG + "sweep": f"{model}.{param}",
            }
            # The sweep's fixed part: its runs are comparable while this stays the same.
            baseline = {k: v for k, v in self.params[model].items() if k != param}
            key = config_hash(
                {
                    "sweep": tags[TAG + "sweep"],
                    "baseline": baseline,
                    "epochs": self.params["ablate"]["epochs"][model],
                    "data": tags[TAG + "dataset_sha256"],
                    "preprocess": self.params["preprocess"],
                }
            )
            self.keys[model, param] = key
            assert self.tracker is not None  # made by __call__ before it asks for a parent
            self.parents[model, param] = self.tracker.sweep_parent(
                f"{model} sweep: {param}", key, tags, min(self.began, start)
            )
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
