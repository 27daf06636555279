"""One training run (classifier.py, runs.py): its record and facts, its data, a lean import."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tiny_runs import CONFIG, splits

from scratchnet.data import PixelStats
from scratchnet.study import layout
from scratchnet.study.classifier import FACT_FIELDS, RECORD_FIELDS, train_classifier, train_run
from scratchnet.study.runs import RunSpec, load_splits, run_result


def test_a_run_returns_its_record_its_facts_and_its_trained_model():
    before = time.time()
    record, facts, model = train_classifier("twolayer", CONFIG, 4, splits(), key="k" * 64, progress=False)
    after = time.time()
    assert tuple(record) == RECORD_FIELDS and tuple(facts) == FACT_FIELDS
    assert record["key"] == "k" * 64 and record["seed"] == 4 and model.params["W1"].shape == (48, 16)
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["final_val_acc"] == record["history"][-1]["val_acc"]
    assert 0.0 <= record["test_acc"] <= 1.0 and record["diverged"] is False
    # facts: the unix times around the training and test, and this process
    assert before <= facts["started"] <= facts["ended"] <= after
    assert facts["worker"].endswith(f":{os.getpid()}")


def test_a_record_is_the_same_on_every_run_and_its_facts_are_not():
    first, first_facts, _ = train_classifier("twolayer", CONFIG, 4, splits(), progress=False)
    second, second_facts, _ = train_classifier("twolayer", CONFIG, 4, splits(), progress=False)
    assert json.dumps(first) == json.dumps(second)  # the same bytes in every DVC output
    assert first_facts != second_facts


def test_a_diverging_run_is_recorded_with_no_test_accuracy():
    record, _, _ = train_classifier("twolayer", {**CONFIG, "lr": 1e6}, 0, splits(), progress=False)
    assert record["diverged"] is True and record["diverged_epoch"] == 1
    assert record["test_acc"] is None and record["final_val_acc"] is None


def test_a_sweep_run_carries_its_key_and_worker_and_equals_the_same_run_alone():
    spec = RunSpec("twolayer", "baseline", CONFIG, 1)
    record, facts, _ = train_run(spec, splits(), "k" * 64, "host:1")
    alone, _, _ = train_classifier("twolayer", CONFIG, 1, splits(), key="k" * 64, progress=False)
    assert facts["worker"] == "host:1"
    assert record == alone


def test_a_result_file_holds_what_was_run_and_its_records_only():
    records = [train_classifier("twolayer", CONFIG, s, splits(), key=str(s), progress=False)[0] for s in (0, 1)]
    result = run_result("twolayer", "ablate", "lr=0.05", "lr", 0.05, CONFIG, records)
    assert result == {
        "model": "twolayer",
        "stage": "ablate",
        "run": "lr=0.05",
        "param": "lr",
        "value": 0.05,
        "config": CONFIG,
        "seeds": records,
    }


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


def test_the_training_library_does_not_import_mlflow_or_dask():
    # A stage opens MLflow itself, while its runs train; Dask only with the dask executor.
    code = (
        "import sys, scratchnet.study.runs, scratchnet.study.sweep, scratchnet.study.cache, "
        "scratchnet.study.tracking; print('mlflow' in sys.modules, 'distributed' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_a_tracking_failure_during_a_sweep_is_kept_for_the_end_not_raised(monkeypatch):
    from scratchnet.study import runs
    from scratchnet.study.params import load_params
    from scratchnet.study.tracking import TrackingError

    opened = []

    class DownStore:
        def __init__(self, experiment):
            opened.append(experiment)
            raise TrackingError("MLflow store is down")

    monkeypatch.setattr(runs, "Tracker", DownStore)
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    log = runs.SweepLog(params, {"arrays_sha256": "abc"}, train_size=300)
    spec = RunSpec("twolayer", "baseline", CONFIG, 0)
    record, facts, _ = train_classifier("twolayer", CONFIG, 0, splits(), progress=False)
    log(spec, record, facts, False)  # the sweep goes on: its results are written before the stage fails
    log(spec, record, facts, False)
    assert isinstance(log.error, TrackingError) and "down" in str(log.error)
    assert opened == ["scratchnet"]  # after the first failure it stops trying
