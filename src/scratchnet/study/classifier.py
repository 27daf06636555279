"""One training run of a classifier: build, train, test, and its record. Numerics only.

The run cache's key covers the source of this module's import closure
(`scratchnet.study.cache.code_hash`), so this module imports only what decides a run's
numbers: the numeric core and the params rules that turn a config into an architecture. MLflow,
the sweep's executors and the results' files live in `runs`, `sweep` and the stage scripts,
whose edits retrain nothing.

A run gives two things:
- its `record` (RECORD_FIELDS), a pure function of config, seed, data and code: what the run
  cache stores and the stages' results hold;
- its `facts` (FACT_FIELDS), about the run itself: unix seconds around the training and test,
  and where it ran. Kept in the run cache entry and given to MLflow, never in a DVC output.

A sweep's worker trains (`train_run`: the record's training part, TRAINING_FIELDS, and the
network) and measures (`measure_run`: its robustness) in two steps, so the run cache can keep
the network and measure it again when only params `robustness` change, training nothing.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from scratchnet import attacks
from scratchnet.nn import Normalizer, build_model
from scratchnet.study.params import model_config
from scratchnet.training import accuracy, train

RECORD_FIELDS = ("key", "seed", "test_acc", "final_val_acc", "diverged", "diverged_epoch", "history", "robustness")
TRAINING_FIELDS = RECORD_FIELDS[:-1]  # what training decides: all but robustness, measured after
FACT_FIELDS = ("started", "ended", "worker")


@dataclass(frozen=True, eq=False)  # compared by identity: config is a dict
class RunSpec:
    """One training run of a sweep: a model's config (epochs included) and a seed."""

    model: str
    entry: str  # 'baseline' or 'key=value' (params.ablation_entries)
    config: dict
    seed: int
    robustness: dict | None = None  # params `robustness`: measured after training when enabled

    @property
    def name(self) -> str:
        return f"{self.model} {self.entry} seed {self.seed}"


# params `robustness` keys that decide the numbers (all but `enabled`): attacks.robustness's arguments
ROBUSTNESS_ARGS = ("sample_size", "seed", "norm", "budget", "grid", "steps", "step_fraction")


def robustness_key(section: dict | None) -> dict | None:
    """What of params `robustness` decides a run's robustness numbers: the arguments of
    attacks.robustness when enabled, None when not (nothing is measured). It keys the run
    cache's measurement entry (cache.robustness_entry_key), never the run key: the training
    is the same whatever is measured on it."""
    if section is None or not section["enabled"]:
        return None
    return {k: section[k] for k in ROBUSTNESS_ARGS}


def run_robustness(model, test: tuple, section: dict | None, *, diverged: bool) -> dict | None:
    """A trained run's record["robustness"]: attacks.robustness of `model` on its test split
    test = (X (N, 3072) uint8 pixels, y (N,)) with params `robustness`; None when that is
    disabled (or absent) or the run diverged (its network answers nothing worth attacking)."""
    args = robustness_key(section)
    if args is None or diverged:
        return None
    X, y = test
    return attacks.robustness(model, X, y, **args)


def here() -> str:
    """Where this process runs, as facts' `worker`: 'host:pid'."""
    return f"{socket.gethostname()}:{os.getpid()}"


def train_classifier(
    model_name: str,
    config: dict,
    seed: int,
    splits: dict,
    *,
    key: str | None = None,
    worker: str | None = None,
    progress: bool = True,
):
    """Builds and trains one network from `seed` and tests it; no tracking, no files.

    config: every hyper-parameter of the run (params.run_config), epochs included. splits:
    {'train'|'val'|'test': (X (N, 3072) uint8 pixels, y (N,) int), 'stats': PixelStats or
    None when X is already what the network takes}. key: the run's cache key, copied into the
    record. worker: facts' `worker` (default: this process, here()). The record's robustness is
    None: measure_run measures it, apart from the training (the run cache keys the two apart).
    Returns (record, facts, model).
    """
    started = time.time()
    # One BLAS thread, always: a float32 GEMM's summation order depends on the thread count, and
    # a run's record must be the same bytes whichever stage or worker trained it (the train
    # stage's baseline is the ablation's, by run key). Runs go side by side, one per core, which
    # at the study's batch sizes beats two threads on one run (bench/train_speed.py).
    with threadpool_limits(limits=1):
        X_train, y_train = splits["train"]
        X_val, y_val = splits["val"]
        X_test, y_test = splits["test"]
        arch = model_config({model_name: config}, model_name)
        stats = splits.get("stats")
        normalizer = None if stats is None else Normalizer(config["normalize"], stats.mean, stats.std)
        model = build_model(
            arch, input_dim=X_train.shape[1], num_classes=int(y_train.max()) + 1, seed=seed, normalizer=normalizer
        )
        result = train(
            model,
            X_train,
            y_train,
            X_val,
            y_val,
            epochs=config["epochs"],
            lr=config["lr"],
            lr_decay=config["lr_decay"],
            batch_size=config["batch_size"],
            reg=config["reg"],
            seed=seed,
            progress=progress,
        )
        test_acc = None if result.diverged else accuracy(model, X_test, y_test)
    record = {  # RECORD_FIELDS; robustness is measure_run's, joined by the run cache
        "key": key,
        "seed": seed,
        "test_acc": test_acc,
        "final_val_acc": result.history[-1]["val_acc"] if result.history else None,
        "diverged": bool(result.diverged),
        "diverged_epoch": result.diverged_epoch,
        "history": result.history,
        "robustness": None,
    }
    facts = {"started": started, "ended": time.time(), "worker": worker or here()}
    return record, facts, model


def train_run(spec: RunSpec, splits: dict, key: str, worker: str):
    """train_classifier for one run of a sweep, with no progress bar: (record, facts, model)."""
    return train_classifier(spec.model, spec.config, spec.seed, splits, key=key, worker=worker, progress=False)


def measure_run(spec: RunSpec, record: dict, model, splits: dict, worker: str) -> tuple[dict | None, dict]:
    """(record["robustness"], facts of the measurement) of a sweep's run: run_robustness of its
    trained `model` on splits["test"] with spec.robustness, one BLAS thread as in training (so a
    network measured after training and the same network reloaded from the run cache give the
    same numbers). record: the run's, for `diverged`; worker: facts' `worker`."""
    started = time.time()
    with threadpool_limits(limits=1):
        numbers = run_robustness(model, splits["test"], spec.robustness, diverged=record["diverged"])
    return numbers, {"started": started, "ended": time.time(), "worker": worker}
