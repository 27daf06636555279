"""A sweep on local worker processes (study/sweep.py): the same numbers as runs trained one by
one, longest first, only what the run cache lacks, and nothing lost when a worker or the driver
fails. Trainings are counted by a line each run appends to a file, from inside the worker."""

import multiprocessing
import os
import time

import pytest
from threadpoolctl import threadpool_limits
from tiny_runs import CONFIG, splits

from scratchnet.study import sweep as sweep_module
from scratchnet.study.cache import RunCache
from scratchnet.study.classifier import train_classifier
from scratchnet.study.runs import RunSpec
from scratchnet.study.sweep import ExecutorError, LocalExecutor, cost, executor_from_env, run_sweep


def grid(values, seeds=(0, 1), key="hidden_dim"):
    return [RunSpec("twolayer", f"{key}={v}", {**CONFIG, key: v}, s) for v in values for s in seeds]


@pytest.fixture
def trainings(tmp_path, monkeypatch):
    """The names of the runs really trained, in the order they started (in any process)."""
    log = tmp_path / "trained.txt"
    real = sweep_module.train_run

    def counted(spec, splits, key, worker):
        with open(log, "a") as f:
            f.write(spec.name + "\n")
        return real(spec, splits, key, worker)

    monkeypatch.setattr(sweep_module, "train_run", counted)  # forked workers inherit it
    return lambda: log.read_text().splitlines() if log.exists() else []


def sweep(specs, cache, data=None, workers=2, **kwargs):
    with LocalExecutor(splits() if data is None else data, workers=workers) as executor:
        return run_sweep(specs, executor, cache=cache, data="d", train_size=300, **kwargs)


def test_a_sweep_on_two_workers_equals_its_runs_trained_one_by_one(tmp_path):
    specs = grid([8, 16])
    facts = {}
    records = sweep(specs, RunCache(tmp_path), on_record=lambda s, r, f, cached: facts.update({s: f}))
    with threadpool_limits(limits=1):  # the workers' BLAS threads, so the sums add up alike
        alone = [
            train_classifier(s.model, s.config, s.seed, splits(), key=records[s]["key"], progress=False)[0]
            for s in specs
        ]
    assert [records[s] for s in specs] == alone
    assert len({facts[s]["worker"] for s in specs}) == 2  # both workers trained
    assert os.getpid() not in {int(facts[s]["worker"].rsplit(":", 1)[1]) for s in specs}


def test_runs_are_submitted_longest_first(tmp_path, trainings):
    softmax = {k: v for k, v in CONFIG.items() if k != "hidden_dim"}
    specs = [
        RunSpec("twolayer", "a", {**CONFIG, "epochs": 1, "hidden_dim": 8}, 0),
        RunSpec("twolayer", "b", {**CONFIG, "epochs": 3, "hidden_dim": 8}, 0),
        RunSpec("softmax", "c", {**softmax, "epochs": 3}, 0),
        RunSpec("twolayer", "d", {**CONFIG, "epochs": 3, "hidden_dim": 64}, 0),
    ]
    assert sorted(specs, key=lambda s: -cost(s, 300)) == [specs[3], specs[1], specs[2], specs[0]]
    sweep(specs, RunCache(tmp_path), workers=1)
    assert trainings() == [specs[i].name for i in (3, 1, 2, 0)]


def test_editing_one_value_trains_only_its_runs(tmp_path, trainings):
    cache = RunCache(tmp_path)
    sweep(grid([8, 16]), cache)
    assert len(trainings()) == 4
    edited = grid([8, 24])  # 16 -> 24
    records = sweep(edited, cache)
    assert sorted(trainings()[4:]) == sorted(s.name for s in edited[2:])
    assert all(records[s]["key"] for s in edited)


def test_a_changed_code_hash_retrains_every_run(tmp_path, trainings):
    cache = RunCache(tmp_path)
    sweep(grid([8]), cache, code="code v1")
    sweep(grid([8]), cache, code="code v1")
    assert len(trainings()) == 2
    sweep(grid([8]), cache, code="code v2")
    assert len(trainings()) == 4


def test_a_corrupt_cache_entry_is_retrained_and_replaced(tmp_path, trainings):
    cache = RunCache(tmp_path)
    specs = grid([8])
    first = sweep(specs, cache)
    cache.path(first[specs[1]]["key"]).write_text('{"seed": 1, "test_ac')  # cut off mid-write
    again = sweep(specs, cache)
    assert trainings()[2:] == [specs[1].name]
    assert cache.get(first[specs[1]]["key"])[0]["test_acc"] == again[specs[1]]["test_acc"]


def dies_once(marker, seed):
    """A train_run whose worker process dies (as if killed) the first time it trains `seed`."""
    real = sweep_module.train_run

    def run(spec, splits, key, worker):
        if spec.seed == seed and not marker.exists():
            marker.touch()
            os._exit(1)
        return real(spec, splits, key, worker)

    return run


def test_a_run_whose_worker_dies_is_retried_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "train_run", dies_once(tmp_path / "died", seed=1))
    specs = grid([8], seeds=(0, 1, 2, 3))
    records = sweep(specs, RunCache(tmp_path / "cache"))
    assert (tmp_path / "died").exists()
    assert sorted(records[s]["seed"] for s in specs) == [0, 1, 2, 3]
    assert all(RunCache(tmp_path / "cache").get(records[s]["key"]) for s in specs)


def test_a_run_whose_worker_dies_twice_fails_the_sweep_naming_it_and_keeps_the_rest(tmp_path, monkeypatch):
    real = sweep_module.train_run
    cache = RunCache(tmp_path)

    def always_dies(spec, splits, key, worker):
        if spec.seed == 3:
            # dies once the three other runs are in the run cache (written by the driver as
            # each arrives): the failure then can only lose them if the sweep drops them
            while len(list(cache.root.glob("*.json"))) < 3:
                time.sleep(0.05)  # bounded by the test's hang guard
            os._exit(1)
        return real(spec, splits, key, worker)

    monkeypatch.setattr(sweep_module, "train_run", always_dies)
    specs = grid([8], seeds=(0, 1, 2, 3))
    with pytest.raises(ExecutorError, match="run twolayer hidden_dim=8 seed 3 lost its worker 2 times"):
        sweep(specs, cache)
    monkeypatch.setattr(sweep_module, "train_run", real)
    finished = [s for s in specs if s.seed != 3]
    cached = {}
    sweep(finished, RunCache(tmp_path, retrain=False), on_record=lambda s, r, f, c: cached.update({s: c}))
    assert all(cached[s] for s in finished)  # every finished run survived the failure


# "At once": the long runs would train for hours; the hang guard is far above the seconds a
# stop takes (no wall-clock assertion: bench/RESULTS.md, "test suite: hang guards").
@pytest.mark.timeout(600)
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_ctrl_c_or_an_error_in_the_driver_stops_the_workers_at_once_and_keeps_finished_runs(tmp_path, interrupt):
    short = RunSpec("twolayer", "short", {**CONFIG, "epochs": 1}, 0)
    long_runs = grid([8], seeds=(1, 2), key="hidden_dim")
    long_runs = [RunSpec(s.model, s.entry, {**s.config, "epochs": 1_000_000}, s.seed) for s in long_runs]

    def stop(spec, record, facts, cached):
        raise interrupt("stop")

    cache = RunCache(tmp_path)
    with pytest.raises(interrupt):
        sweep([short] + long_runs, cache, workers=3, on_record=stop)
    assert not multiprocessing.active_children()
    assert [
        s
        for s in [short] + long_runs
        if cache.get(sweep_module.run_key(s.model, s.config, s.seed, "d", sweep_module.code_hash()))
    ] == [short]


def test_the_executor_is_chosen_by_the_environment(monkeypatch):
    monkeypatch.delenv("SCRATCHNET_EXECUTOR", raising=False)
    monkeypatch.setenv("SCRATCHNET_WORKERS", "3")
    local = executor_from_env(splits())
    assert isinstance(local, LocalExecutor) and local.workers == 3
    monkeypatch.setenv("SCRATCHNET_EXECUTOR", "dask")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(ExecutorError, match="DASK_SCHEDULER_ADDRESS"):
        executor_from_env(splits())
    monkeypatch.setenv("SCRATCHNET_EXECUTOR", "slurm")
    with pytest.raises(ExecutorError, match="'slurm' is not an executor"):
        executor_from_env(splits())
