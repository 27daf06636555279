"""One training run of the study, end to end: build, train, test, track.

Shared by the `train` stage (the baselines) and the `ablate` stage (one hyper-parameter changed,
repeated over seeds). An edge module: it joins the numeric library to MLflow via `tracking`.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path

import numpy as np

from scratchnet import layout
from scratchnet.io import write_text
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
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(str(r[c]) for c in HISTORY_COLUMNS) for r in history]
    write_text(path, "\n".join(lines) + "\n")


def base_tags(model: str, stage: str, provenance: dict, params_hash: str) -> dict[str, str]:
    return {
        TAG + "model": model,
        TAG + "stage": stage,
        TAG + "git_commit": git_commit(),
        TAG + "params_hash": params_hash,
        **dataset_tags(provenance),
    }


def train_one(
    params: dict,
    model_name: str,
    config: dict,
    seed: int,
    splits: dict,
    tracker: Tracker,
    *,
    run_name: str,
    tags: dict,
    parent_run_id: str | None = None,
    progress: bool = True,
    on_trained=None,
):
    """Trains `model_name` with hyper-parameters `config` (incl. epochs) from `seed`.

    `on_trained(run, model, record)` runs inside the MLflow run once training is done: the
    place to save files and log them as artifacts. Returns (seed_record, trained_model,
    tracking_error). The record follows the run.json schema of layout; a tracking failure is
    returned, not raised, so the caller saves its results before failing the stage.
    """
    X_train, y_train = splits["train"]
    X_val, y_val = splits["val"]
    X_test, y_test = splits["test"]
    arch = model_config({model_name: config}, model_name)
    model = build_model(arch, input_dim=X_train.shape[1], num_classes=int(y_train.max()) + 1, seed=seed)
    run_params = {**config, "seed": seed, "model": model_name, "train_size": len(y_train)}
    tracking_error = None
    record = None
    try:
        with tracker.run(run_name, run_params, {**tags, TAG + "seed": seed}, parent_run_id) as run:
            result = train(
                model, X_train, y_train, X_val, y_val,
                epochs=config["epochs"], lr=config["lr"], lr_decay=config["lr_decay"],
                batch_size=config["batch_size"], reg=config["reg"], seed=seed,
                progress=progress, desc=run_name, on_epoch=run.log_epoch,
            )
            test_acc = None if result.diverged else accuracy(model, X_test, y_test)
            record = {
                "seed": seed,
                "test_acc": test_acc,
                "final_val_acc": result.history[-1]["val_acc"] if result.history else None,
                "diverged": bool(result.diverged),
                "diverged_epoch": result.diverged_epoch,
                "history": result.history,
                "seconds": result.seconds,
                "mlflow_run_id": run.run_id,
            }
            if test_acc is not None:
                run.log_metrics({"test_acc": test_acc})
            run.set_tags({TAG + "diverged": result.diverged})
            with tempfile.TemporaryDirectory() as tmp:
                curve = Path(tmp) / "curve.csv"
                write_history_csv(curve, result.history)
                run.log_artifact(curve)
            if on_trained is not None:
                on_trained(run, model, record)
    except TrackingError as err:
        if record is None:
            raise
        tracking_error = err
    return record, model, tracking_error


def summarise(records: list[dict]) -> tuple[float | None, float | None]:
    """Mean and sample std of test accuracy over the seeds that did not diverge."""
    accs = [r["test_acc"] for r in records if r["test_acc"] is not None and not math.isnan(r["test_acc"])]
    if not accs:
        return None, None
    return statistics.fmean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)
