"""The sweep on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1, started from the venv's bin in an empty folder (tests/processes.py: each in its own
process group, stopped however the test ends).

Most tests run the ablate stage's library function (`run_sweep` with a DaskExecutor) on tiny
arrays: what the cluster changes is where runs train and how data reaches them (pickled run
function, scattered data, worker-side BLAS, a killed worker). One runs the stage itself,
`dvc repro ablate` with SCRATCHNET_EXECUTOR=dask, on a copy of the tiny study.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from processes import dask_cluster, free_port
from tiny_runs import CONFIG, splits
from tiny_study import dvc, environment, mlflow_runs, run

from scratchnet.study.cache import RunCache
from scratchnet.study.runs import RunSpec
from scratchnet.study.sweep import DaskExecutor, ExecutorError, LocalExecutor, executor_from_env, run_sweep

DIES_ONCE = Path(__file__).with_name("dask_dies_once.py")


def specs(seeds=range(4), epochs=2):
    return [RunSpec("twolayer", "baseline", {**CONFIG, "epochs": epochs}, s) for s in seeds]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("empty")) as started:  # workers need no project folder
        yield started


def test_the_cluster_gives_bit_identical_runs_and_they_run_on_its_workers(cluster, tmp_path):
    data = splits()
    runs = specs()
    where = {}
    with DaskExecutor(data, cluster.address) as executor:
        on_dask = run_sweep(
            runs,
            executor,
            cache=RunCache(tmp_path / "dask"),
            data="d",
            train_size=300,
            on_record=lambda s, r, facts, cached: where.update({s: facts["worker"]}),
        )
    with LocalExecutor(data, workers=2) as executor:
        local = run_sweep(runs, executor, cache=RunCache(tmp_path / "local"), data="d", train_size=300)

    assert [on_dask[s]["test_acc"] for s in runs] == [local[s]["test_acc"] for s in runs]
    assert [on_dask[s] for s in runs] == [local[s] for s in runs]  # records hold no facts
    assert len({on_dask[s]["test_acc"] for s in runs}) > 1  # the seeds really differ
    workers = {where[s] for s in runs}
    assert workers <= set(cluster.worker_addresses()) and len(workers) == 2  # both trained, not the driver


def test_executor_from_env_connects_to_dasks_scheduler_address(cluster, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_EXECUTOR", "dask")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
    with executor_from_env(splits()) as executor:
        assert isinstance(executor, DaskExecutor)
        assert executor.where == f"Dask cluster {cluster.address} (2 workers)"


def test_a_run_whose_worker_is_killed_is_trained_again_on_another_and_nothing_is_lost(tmp_path):
    # The first worker to start seed 2 dies mid-run (tests/dask_dies_once.py, preloaded):
    # deterministic, whatever the timing of the other runs.
    marker = tmp_path / "died"
    env = environment(DIES_ONCE_SEED="2", DIES_ONCE_MARKER=str(marker))
    (tmp_path / "cluster").mkdir()
    data = splits()
    runs = specs(seeds=range(6))
    with dask_cluster(tmp_path / "cluster", preload=DIES_ONCE, env=env) as cluster:
        addresses = cluster.worker_addresses()
        cache = RunCache(tmp_path / "cache")
        where = {}
        with DaskExecutor(data, cluster.address) as executor:
            records = run_sweep(
                runs,
                executor,
                cache=cache,
                data="d",
                train_size=300,
                on_record=lambda s, r, facts, cached: where.update({s: facts["worker"]}),
            )
        dead = [w for w in cluster.workers if not w.running]
        with DaskExecutor(data, cluster.address) as executor:  # a rerun trains nothing
            trained = []
            again = run_sweep(
                runs,
                executor,
                cache=cache,
                data="d",
                train_size=300,
                on_record=lambda spec, record, *rest: trained.append(not rest[-1]),
            )
    killed = marker.read_text()  # the address of the worker that died
    assert killed in addresses and len(dead) == 1  # one worker process died, mid-run
    (retried,) = [s for s in runs if s.seed == 2]
    assert where[retried] in set(addresses) - {killed}  # trained again on the other
    with LocalExecutor(data, workers=1) as executor:
        local = run_sweep(runs, executor, cache=RunCache(tmp_path / "local"), data="d", train_size=300)
    assert [records[s] for s in runs] == [local[s] for s in runs]  # none lost or changed
    assert all(cache.get(records[s]["key"]) is not None for s in runs)
    assert trained == [False] * len(runs)
    assert [again[s] for s in runs] == [records[s] for s in runs]


@pytest.mark.timeout(120)  # "at once": a hang guard, far above the ~1 s it takes
def test_an_unreachable_scheduler_fails_at_once_naming_it():
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ExecutorError, match=f"Dask scheduler {address} .* is unreachable"):
        with DaskExecutor(splits(), address):
            pass


@pytest.mark.e2e
def test_the_ablate_stage_trains_on_the_dask_cluster_and_its_sweep_parents_span_their_runs(
    pristine_study, study_copy, tmp_path
):
    (tmp_path / "cluster").mkdir()
    store = tmp_path / "dask.db"  # a new store: every run is logged from this stage's records
    with dask_cluster(tmp_path / "cluster") as cluster:
        env = environment(
            SCRATCHNET_EXECUTOR="dask",
            DASK_SCHEDULER_ADDRESS=cluster.address,
            SCRATCHNET_CACHE=str(tmp_path / "runs"),  # empty: every run trains there
            MLFLOW_TRACKING_URI=f"sqlite:///{store}",
        )
        stage = run(dvc("repro", "--force", "--single-item", "ablate"), study_copy, env=env)
        addresses = set(cluster.worker_addresses())
    assert "sweep: 10 runs, 0 in the run cache" in stage.stdout, stage.stdout[-3000:]
    assert f"10 to train on Dask cluster {cluster.address} (2 workers)" in stage.stdout

    # the same numbers as the local pool's study, value by value, seed by seed
    results = sorted((pristine_study.path / "results" / "ablate").rglob("*.json"))
    assert len(results) == 5  # each model's baseline and the tiny study's 3 values
    for path in results:
        local = json.loads(path.read_text())
        dask = json.loads((study_copy / path.relative_to(pristine_study.path)).read_text())
        # every seed, the baselines' seed 0 included: the train stage's run (which the pristine
        # ablation took from the run cache) trains on one BLAS thread too (classifier.py)
        assert dask == local, path.name

    # each sweep's parent run spans its children, as the stage logged them from the cluster
    _, runs = mlflow_runs(study_copy, store)
    trained = [r for r in runs if r.data.tags.get("scratchnet.stage") == "ablate"]
    assert trained and {r.data.tags["scratchnet.worker"] for r in trained} <= addresses  # the cluster's
    parents = [r for r in runs if r.data.tags.get("scratchnet.stage") == "ablate-sweep"]
    assert len(parents) == 3  # softmax.reg, twolayer.hidden_dim, twolayer.lr
    for parent in parents:
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 2, parent.info.run_name  # one value x two seeds
        assert len({c.data.tags["scratchnet.sweep"] for c in children}) == 1
        assert parent.info.start_time <= min(c.info.start_time for c in children)
        assert parent.info.end_time >= max(c.info.end_time for c in children)
        assert parent.info.end_time > parent.info.start_time
