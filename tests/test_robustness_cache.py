"""Robustness is cached apart from training (issue 24): the run cache keeps each trained network
beside its training entry, and a change of params `robustness` measures the kept networks again
and trains none; turning it off trains and measures nothing. Trainings and measurements are
counted by a line each appends to a file, from inside the sweep's workers."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import tiny_runs
import yaml
from threadpoolctl import threadpool_limits
from tiny_runs import pixel_data

from scratchnet.data import PixelStats
from scratchnet.study import sweep as sweep_module
from scratchnet.study.cache import RunCache, run_key
from scratchnet.study.classifier import TRAINING_FIELDS, RunSpec, measure_run, robustness_key, train_run
from scratchnet.study.sweep import LocalExecutor, run_sweep
from scratchnet.training import accuracy

CONFIG = {**tiny_runs.CONFIG, "normalize": "mean_std"}
SECTION = {
    "enabled": True,
    "sample_size": 60,
    "seed": 0,
    "norm": "l2",
    "budget": 200.0,
    "grid": [50.0, 400.0],
    "steps": 2,
    "step_fraction": 0.5,
}
OTHER_SAMPLE = {**SECTION, "sample_size": 90, "seed": 5}
OFF = {**SECTION, "enabled": False}


@functools.cache
def splits() -> dict:
    """As runs.load_splits gives them: uint8 pixels (N, 3072) of ten noisy class prototypes,
    learnable in two epochs, and the training split's statistics."""
    train = pixel_data(200, 0)
    return {"train": train, "val": pixel_data(40, 1), "test": pixel_data(120, 2), "stats": PixelStats.fit(train[0])}


def specs(section: dict | None, seeds=(0, 1)) -> list[RunSpec]:
    return [RunSpec("twolayer", "baseline", CONFIG, s, section) for s in seeds]


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """counted() -> (runs trained, runs measured) so far, by name, in any process."""
    log = tmp_path / "counted.txt"
    real_train, real_measure = sweep_module.train_run, sweep_module.measure_run

    def note(what: str, spec: RunSpec) -> None:
        with open(log, "a") as f:
            f.write(f"{what} {spec.name}\n")

    def train(spec, data, key, worker):
        note("trained", spec)
        return real_train(spec, data, key, worker)

    def measure(spec, record, network, data, worker):
        note("measured", spec)
        return real_measure(spec, record, network, data, worker)

    monkeypatch.setattr(sweep_module, "train_run", train)  # forked workers inherit both
    monkeypatch.setattr(sweep_module, "measure_run", measure)

    def counts() -> tuple[list[str], list[str]]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [x.split(" ", 1)[1] for x in lines if x.startswith("trained")], [
            x.split(" ", 1)[1] for x in lines if x.startswith("measured")
        ]

    return counts


def sweep(runs: list[RunSpec], cache: RunCache) -> dict:
    with LocalExecutor(splits(), workers=2) as executor:
        records = run_sweep(runs, executor, cache=cache, data="d", train_size=200)
    return [records[s] for s in runs]


def training_part(record: dict) -> dict:
    return {f: record[f] for f in TRAINING_FIELDS}


def entries(cache: RunCache) -> dict[str, tuple[int, str]]:
    """Every training entry and network file: name -> (inode, content), to see none rewritten."""
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in cache.root.iterdir() if p.suffix in (".json", ".npz")}


# --- the sweep -------------------------------------------------------------------------------


def test_changing_the_robustness_sample_measures_every_run_again_and_trains_none(tmp_path, counted):
    cache = RunCache(tmp_path / "cache")
    first = sweep(specs(SECTION), cache)
    assert [len(c) for c in counted()] == [2, 2]
    kept = entries(cache)

    again = sweep(specs(OTHER_SAMPLE), cache)
    trained, measured = counted()
    assert len(trained) == 2 and sorted(measured[2:]) == sorted(s.name for s in specs(SECTION))
    assert entries(cache) == kept  # no training entry, no network written again
    assert [training_part(r) for r in again] == [training_part(r) for r in first]  # the same run key too
    assert [r["robustness"] for r in again] != [r["robustness"] for r in first]
    assert all(r["robustness"]["n"] > 0 for r in first + again)

    sweep(specs(SECTION), cache)  # back to the first sample: both measurements are kept
    assert [len(c) for c in counted()] == [2, 4]


def test_turning_robustness_off_trains_and_measures_nothing(tmp_path, counted):
    cache = RunCache(tmp_path / "cache")
    first = sweep(specs(SECTION), cache)
    off = sweep(specs(OFF), cache)
    assert [len(c) for c in counted()] == [2, 2]
    assert [r["robustness"] for r in off] == [None, None]
    assert [training_part(r) for r in off] == [training_part(r) for r in first]
    assert sweep(specs(None), cache) == off  # no section at all: the same
    assert [len(c) for c in counted()] == [2, 2]


def test_a_run_measured_from_its_kept_network_equals_one_measured_right_after_training(tmp_path, counted):
    at_once = sweep(specs(SECTION), RunCache(tmp_path / "at once"))  # trained and measured in one task
    later = RunCache(tmp_path / "later")
    sweep(specs(OFF), later)  # trained, nothing measured
    reloaded = sweep(specs(SECTION), later)  # measured on the networks loaded from the cache
    assert reloaded == at_once
    trained, measured = counted()
    assert len(trained) == 4 and len(measured) == 4


def test_a_training_entry_without_its_network_is_a_miss(tmp_path, counted):
    cache = RunCache(tmp_path / "cache")
    (first,) = sweep(specs(OFF, seeds=(0,)), cache)
    network = cache.network_path(first["key"])
    network.unlink()  # as an entry of the cache before networks were kept
    assert cache.get(first["key"]) is None
    (again,) = sweep(specs(SECTION, seeds=(0,)), cache)
    assert [len(c) for c in counted()] == [2, 1] and network.is_file()
    network.write_bytes(b"not a network")  # unreadable: trained again to be measured
    (third,) = sweep(specs(OTHER_SAMPLE, seeds=(0,)), cache)
    assert [len(c) for c in counted()] == [3, 2]
    assert training_part(first) == training_part(again) == training_part(third)


# --- the cache's levels ----------------------------------------------------------------------


def test_the_kept_network_predicts_the_same_bits_as_the_trained_one(tmp_path):
    spec = RunSpec("twolayer", "baseline", CONFIG, 0, SECTION)
    key = run_key(spec.model, spec.config, spec.seed, "d", "c")
    record, facts, trained = train_run(spec, splits(), key, "host:1")
    cache = RunCache(tmp_path)
    cache.put(record, facts, trained)
    kept = cache.network(key)
    assert all(kept.params[k].dtype == np.float32 for k in kept.params)  # as trained, not widened
    x, y = splits()["test"]
    with threadpool_limits(limits=1):
        assert np.array_equal(kept.scores(x), trained.scores(x))
        assert accuracy(kept, x, y) == record["test_acc"]
    assert measure_run(spec, record, kept, splits(), "h")[0] == measure_run(spec, record, trained, splits(), "h")[0]
    assert cache.get(key) == (training_part(record), facts)  # the entry holds no robustness
    # one baseline's network file: its parameters and the input statistics, a few bytes more
    size = sum(p.nbytes for p in trained.params.values())
    assert size < cache.network_path(key).stat().st_size < size + 2 * 3072 * 8 + 4096


def test_the_run_key_is_the_trainings_and_each_measurement_has_its_own_entry(tmp_path):
    cache = RunCache(tmp_path)
    spec = RunSpec("twolayer", "baseline", CONFIG, 0, SECTION)
    key = run_key(spec.model, spec.config, spec.seed, "d", "c")
    train = lambda: train_run(spec, splits(), key, "host:1")
    measure = lambda record, network: measure_run(spec, record, network, splits(), "host:1")
    first = cache.train_once(key, train, robustness=robustness_key(SECTION), measure=measure)
    assert not first.cached and first.measured["worker"] == "host:1" and first.record["key"] == key
    assert cache.record(key, robustness_key(SECTION)) == (first.record, first.facts)
    assert cache.record(key, robustness_key(OTHER_SAMPLE)) is None  # not measured that way yet
    assert cache.record(key, None) == ({**first.record, "robustness": None}, first.facts)

    def no_training():
        raise AssertionError("trained again")

    other = cache.train_once(key, no_training, robustness=robustness_key(OTHER_SAMPLE), measure=measure)
    assert other.cached and other.measured is not None and other.record["key"] == key
    assert other.facts == first.facts  # the training's facts, from the cache
    stored = sorted(p.name for p in (tmp_path / "robustness").iterdir() if p.suffix == ".json")
    assert len(stored) == 2
    entry = json.loads(cache.robustness_path(key, robustness_key(SECTION)).read_text())
    assert entry["key"] == key and entry["robustness_args"] == robustness_key(SECTION)
    assert entry["robustness"] == first.record["robustness"] and set(entry["facts"]) == {"started", "ended", "worker"}
    assert cache.train_once(key, no_training, robustness=robustness_key(SECTION), measure=None).measured is None


def test_a_worker_that_cannot_see_the_cache_trains_and_measures_and_the_driver_stores_both(tmp_path):
    spec = RunSpec("twolayer", "baseline", CONFIG, 0, SECTION)
    key = run_key(spec.model, spec.config, spec.seed, "d", "c")
    elsewhere = RunCache(tmp_path / "absent")  # a Dask worker on another machine
    outcome = elsewhere.train_once(
        key,
        lambda: train_run(spec, splits(), key, "remote:1"),
        robustness=robustness_key(SECTION),
        measure=lambda record, network: measure_run(spec, record, network, splits(), "remote:1"),
    )
    assert outcome.unsaved is not None and outcome.measured is not None and not (tmp_path / "absent").exists()
    driver = RunCache(tmp_path / "driver")
    driver.root.mkdir()
    driver.store(outcome, robustness_key(SECTION))
    assert driver.record(key, robustness_key(SECTION)) == (outcome.record, outcome.facts)
    x, _ = splits()["test"]
    assert np.array_equal(driver.network(key).scores(x), outcome.unsaved.scores(x))


# --- MLflow: one run per trained network, showing its current robustness ----------------------


def test_a_logged_run_measured_again_shows_the_new_robustness_and_off_keeps_the_last(tmp_path):
    from scratchnet.study.tracking import Tracker

    tracker = Tracker("robustness cache", root=tmp_path)
    record = {
        "key": "k1",
        "seed": 0,
        "test_acc": 0.5,
        "final_val_acc": 0.4,
        "diverged": False,
        "diverged_epoch": None,
        "history": [{"epoch": 1, "loss": 2.0, "train_acc": 0.3, "val_acc": 0.4, "lr": 0.05}],
        "robustness": {"n": 40, "targeted": 0.25, "untargeted": 0.5, "median_budget": 91.0},
    }
    facts = {"started": 1_700_000_000.0, "ended": 1_700_000_030.0, "worker": "host:1"}
    log = lambda rec, t: t.log_run(rec, facts, run_name="twolayer baseline seed 0", params={"lr": 0.05}, tags={})
    run_id = log(record, tracker)
    remeasured = {**record, "robustness": {"n": 60, "targeted": 0.3, "untargeted": 0.55, "median_budget": None}}
    assert log(remeasured, Tracker("robustness cache", root=tmp_path)) == run_id  # a new stage's tracker
    assert log({**record, "robustness": None}, tracker) == run_id  # off: the last measurement stays
    (run,) = tracker.client.search_runs([tracker.experiment_id])
    metrics = run.data.metrics
    assert (metrics["robust_n"], metrics["robust_targeted"], metrics["robust_untargeted"]) == (60, 0.3, 0.55)
    assert np.isnan(metrics["robust_median_budget"])  # the new measurement has none
    assert metrics["test_acc"] == 0.5 and run.info.end_time == 1_700_000_030_000  # the training's
    history = tracker.client.get_metric_history(run_id, "robust_targeted")
    assert sorted(m.value for m in history) == [0.25, 0.3]


# --- end to end: `dvc repro` after editing params `robustness` ---------------------------------


def results(project) -> dict[str, list[dict]]:
    """Every run record of the train and ablate results, by file."""
    found = {}
    for path in sorted((project / "results").glob("*/*/*.json")):
        if path.parent.parent.name in ("train", "ablate"):
            found[str(path.relative_to(project))] = json.loads(path.read_text())["seeds"]
    return found


def test_editing_or_turning_off_robustness_reruns_the_stages_and_trains_nothing(study_copy):
    from tiny_study import dvc, mlflow_runs, run, set_params, stages_run

    project = study_copy
    cache = RunCache(project / ".scratchnet/runs")
    kept, before = entries(cache), results(project)
    runs_before = len(mlflow_runs(project)[1])
    assert yaml.safe_load((project / "params.yaml").read_text())["robustness"]["sample_size"] > 20

    set_params(project, {"robustness": {"sample_size": 20, "seed": 7}})  # of the 80 test images
    edited = run(dvc("repro"), project)
    assert {"train@softmax", "train@twolayer", "ablate"} <= stages_run(edited.stdout)
    assert "sweep: 10 runs, 2 in the run cache" in edited.stdout  # the baselines: measured by train
    assert "baselines: 2 runs, 0 in the run cache" in edited.stdout  # the first train stage measures both
    assert "0 to train and 2 to measure" in edited.stdout, edited.stdout[-3000:]
    assert "0 to train and 8 to measure" in edited.stdout, edited.stdout[-3000:]
    assert edited.stdout.count("trained before; robustness measured") == 10  # the 2 baselines and 8 runs
    assert entries(cache) == kept  # no training entry, no network written again
    after = results(project)
    strip = lambda found: {
        f: [{k: v for k, v in r.items() if k != "robustness"} for r in rs] for f, rs in found.items()
    }
    assert strip(after) == strip(before)  # same training, same run keys
    measured = [r["robustness"] for rs in after.values() for r in rs if not r["diverged"]]
    assert measured and measured != [r["robustness"] for rs in before.values() for r in rs if not r["diverged"]]
    client, runs = mlflow_runs(project)
    assert len(runs) == runs_before  # no run logged twice: one per trained network
    logged = {r.data.tags.get("scratchnet.run_key"): r.data.metrics for r in runs}
    for record in (r for rs in after.values() for r in rs if not r["diverged"]):
        for name in ("n", "targeted", "untargeted"):  # the current measurement
            assert logged[record["key"]][f"robust_{name}"] == record["robustness"][name]

    set_params(project, {"robustness": {"enabled": False}})
    off = run(dvc("repro"), project)
    assert "sweep: 10 runs, 10 in the run cache" in off.stdout and "robustness measured" not in off.stdout
    assert entries(cache) == kept
    assert all(r["robustness"] is None for rs in results(project).values() for r in rs)
