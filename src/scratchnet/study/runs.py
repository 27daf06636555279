"""Training runs of the study at their edges, shared by the `train` and `ablate` stages: the
data they read, the results they write, and their MLflow logging (via `tracking`). The run
itself, numerics only, is `classifier.train_classifier`; the stage's process alone logs runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from scratchnet.data import PixelStats
from scratchnet.study import layout
from scratchnet.study.cache import numeric_environment
from scratchnet.study.classifier import RunSpec
from scratchnet.study.identity import config_hash, git_commit
from scratchnet.study.params import parse_entry, sweeps
from scratchnet.study.tracking import DATASET, DATASET_SHA256, SWEEP, TAG, Tracker, TrackingError, sweep_tags


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


def base_tags(model: str, stage: str, provenance: dict, params_hash: str) -> dict[str, str]:
    env = numeric_environment()  # what can change a float32 result with the same code
    return {
        TAG + "model": model,
        TAG + "stage": stage,
        TAG + "git_commit": git_commit(),
        TAG + "params_hash": params_hash,
        TAG + "numpy": env["numpy"],
        TAG + "blas": "; ".join(" ".join(str(v) for v in lib.values()) for lib in env["blas"]) or "none found",
        # which data the run saw; a folder source has no archive checksum, its arrays always have one
        DATASET: str(provenance.get("dataset", provenance.get("resolved", "unknown"))),
        DATASET_SHA256: str(provenance.get("sha256") or provenance.get("arrays_sha256", "unknown")),
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


def log_seed(
    tracker: Tracker,
    spec: RunSpec,
    record: dict,
    facts: dict,
    *,
    train_size: int,
    run_name: str,
    tags: dict,
    parent_run_id: str | None = None,
    on_logged=None,
) -> str:
    """Tracker.log_run for one training run, its params those of `spec` (config, seed, model)
    and the training-set size. Returns the run's id."""
    params = {**spec.config, "seed": spec.seed, "model": spec.model, "train_size": train_size}
    return tracker.log_run(
        record, facts, run_name=run_name, params=params, tags=tags, parent_run_id=parent_run_id, on_logged=on_logged
    )


class SweepLog:
    """Logs each finished run of the ablation sweep to MLflow (the on_record of sweep.run_sweep):
    a value's runs under their sweep's parent run, the baseline's with a tag for each sweep it
    centres (tracking's docstring). A parent starts when this log was made (before the sweep
    submits a run) or at its first child if that started earlier (a run from the cache). MLflow
    is opened at the first finished run, while the others train.

    The first tracking failure is kept in `error`, not raised: the sweep goes on, the stage
    writes every result, then fails naming it (the runs stay in the run cache; the next repro
    logs them without training)."""

    def __init__(self, params: dict, provenance: dict, train_size: int):
        self.params = params
        self.provenance = provenance
        self.train_size = train_size
        self.began = time.time()
        self.tracker: Tracker | None = None
        self.parents: dict[tuple, tuple[str, str]] = {}  # (model, key) -> its parent's run key and id
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
            log_seed(
                self.tracker,
                spec,
                record,
                facts,
                train_size=self.train_size,
                run_name=spec.name,
                tags=tags,
                parent_run_id=parent,
            )
        except TrackingError as err:
            self.error = err

    def parent(self, model: str, param: str, start: float) -> str:
        """The sweep's parent run, found or created once per stage."""
        if (model, param) not in self.parents:
            sweep = f"{model}.{param}"
            tags = {**base_tags(model, "ablate-sweep", self.provenance, config_hash(self.params)), SWEEP: sweep}
            # The sweep's fixed part: its runs are comparable while this stays the same.
            key = config_hash(
                {
                    "sweep": sweep,
                    "baseline": {k: v for k, v in self.params[model].items() if k != param},
                    "epochs": self.params["ablate"]["epochs"][model],
                    "data": tags[DATASET_SHA256],
                    "preprocess": self.params["preprocess"],
                }
            )
            assert self.tracker is not None  # made by __call__ before it asks for a parent
            self.parents[model, param] = (
                key,
                self.tracker.sweep_parent(f"{model} sweep: {param}", key, tags, min(self.began, start)),
            )
        return self.parents[model, param][1]

    def close(self) -> None:
        """Ends every sweep's parent run at its last child's end."""
        if self.error is not None or self.tracker is None:
            return
        try:
            for key, _ in self.parents.values():
                self.tracker.close_parent(key)
        except TrackingError as err:
            self.error = err
