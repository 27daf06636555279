"""A run is logged once by its key however many writers log it at once (issue 27).

Several processes log the same runs and the same sweep parent at the same instant, into the
project's SQLite store (they share a lock beside it) and into a real `mlflow server` (they
share nothing: each creates, then reconciles). Then the real thing: four queued DVC
experiments run side by side, and two `dvc repro --force` in two copies of the session's tiny
study against one server (their runs come from the run cache, so both log the same keys at
nearly the same instant).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from processes import Service, mlflow_server, processes_in, stop_processes_in
from tiny_study import dvc, environment, run

WRITERS = 4
SHARED = [f"shared-{i}" for i in range(4)]


def record(key: str) -> dict:
    history = [{"epoch": 1, "loss": 1.0, "train_acc": 0.5, "val_acc": 0.4, "lr": 0.1}]
    return {
        "key": key,
        "seed": 0,
        "test_acc": 0.4,
        "final_val_acc": 0.4,
        "diverged": False,
        "diverged_epoch": None,
        "history": history,
    }


def writer(uri: str, root: str, experiment: str, name: str, barrier) -> None:
    """One stage of experiment `name`: its sweep's parent, then the shared runs and its own."""
    os.environ["DVC_EXP_NAME"] = name
    if uri:
        os.environ["MLFLOW_TRACKING_URI"] = uri
    else:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    from scratchnet.study.tracking import Tracker

    tracker = Tracker(experiment, root=root)
    tracker.logged_keys()  # what a stage knows before it logs: nothing of the others yet
    barrier.wait(timeout=120)
    began = time.time()
    parent = tracker.sweep_parent("twolayer sweep: reg", "sweep", {"scratchnet.stage": "ablate-sweep"}, began)
    for key in [*SHARED, f"own-{name}"]:
        at = time.time()
        tracker.log_run(
            record(key),
            {"started": at, "ended": at + 1, "worker": name},
            run_name=key,
            params={"reg": 0.001},
            tags={"scratchnet.model": "twolayer"},
            parent_run_id=parent,
        )
    tracker.close_parent("sweep")


def log_at_once(uri: str, root: Path, experiment: str) -> None:
    context = multiprocessing.get_context("spawn")  # no MLflow state inherited from pytest
    barrier = context.Barrier(WRITERS)
    names = [f"exp{i}" for i in range(WRITERS)]
    processes = [context.Process(target=writer, args=(uri, str(root), experiment, name, barrier)) for name in names]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=300)
    assert [p.exitcode for p in processes] == [0] * WRITERS


def check_once(client, experiment_id: str, names: list[str]) -> None:
    """Each key once; every run under the surviving parent; every experiment tag truthful."""
    from mlflow.entities import ViewType

    runs = client.search_runs([experiment_id], max_results=1000)
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY, max_results=1000)
    print(f"{len(deleted)} twins created and reconciled away")  # 0 under the SQLite store's lock
    keys = Counter(r.data.tags["scratchnet.run_key"] for r in runs)
    assert keys == Counter(["sweep", *SHARED, *(f"own-{n}" for n in names)])
    (parent,) = [r for r in runs if r.data.tags["scratchnet.run_key"] == "sweep"]
    children = [r for r in runs if r is not parent]
    assert {r.data.tags.get("mlflow.parentRunId") for r in children} == {parent.info.run_id}
    # a parent several experiments joined names each of them, and no single one
    assert "scratchnet.dvc_exp" not in parent.data.tags
    assert {k for k in parent.data.tags if k.startswith("scratchnet.dvc_exp.")} == {
        f"scratchnet.dvc_exp.{n}" for n in names
    }
    for run_ in children:  # a run names the experiment that logged it
        assert run_.data.tags["scratchnet.dvc_exp"] == run_.data.tags["scratchnet.worker"]
        assert run_.info.status == "FINISHED"
    # the parent spans its children
    assert parent.info.start_time <= min(r.info.start_time for r in children)
    assert parent.info.end_time >= max(r.info.end_time for r in children)


def test_writers_logging_the_same_runs_at_once_into_the_sqlite_store_log_each_once(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from scratchnet.study.tracking import Tracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    experiment_id = Tracker("race", root=tmp_path).experiment_id  # the store's tables, once
    log_at_once("", tmp_path, "race")
    check_once(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), experiment_id, [f"exp{i}" for i in range(WRITERS)])


def test_writers_logging_the_same_runs_at_once_into_a_server_log_each_once(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from scratchnet.study.tracking import Tracker

    with mlflow_server(tmp_path, env=environment()) as server:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        experiment_id = Tracker("race", root=tmp_path).experiment_id
        log_at_once(server.uri, tmp_path, "race")
        check_once(MlflowClient(server.uri), experiment_id, [f"exp{i}" for i in range(WRITERS)])


# ----------------------------------------------------------------- the real thing: DVC at once


def committed(project: Path) -> Path:
    """A copy of the tiny study after its first `dvc repro`, committed as a user would."""
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "first run"], project)
    return project


def stop_queue(project: Path) -> None:
    """`dvc queue stop --kill`, then whatever of its detached workers still runs in `project`."""
    run(dvc("queue", "stop", "--kill"), project, check=False, timeout=120)
    stop_processes_in(project)


def duplicated_keys(runs) -> dict[str, int]:
    keys = Counter(r.data.tags.get("scratchnet.run_key") for r in runs)
    return {k: n for k, n in keys.items() if n > 1}


# Four experiments: two add the same value to a new sweep, one another value, one extends an
# existing sweep (its parent, made by the first `dvc repro`, gains children and a later end).
EXPERIMENTS = {
    "reg-a": ["+ablate.twolayer.reg=[0.001]"],
    "reg-b": ["+ablate.twolayer.reg=[0.001]"],
    "reg-c": ["+ablate.twolayer.reg=[0.01]"],
    "soft-d": ["ablate.softmax.reg=[0.01,0.05]"],
}
OWN_ENTRIES = {
    ("twolayer", "reg=0.001"): {"reg-a", "reg-b"},
    ("twolayer", "reg=0.01"): {"reg-c"},
    ("softmax", "reg=0.05"): {"soft-d"},
}


@pytest.mark.e2e
@pytest.mark.timeout(1800)  # a hang guard: the queue's four experiments train side by side
def test_four_queued_experiments_at_once_log_every_run_once_under_its_own_experiment(study_copy):
    from mlflow.tracking import MlflowClient

    project = committed(study_copy)
    try:
        for name, sets in EXPERIMENTS.items():
            run(dvc("exp", "run", "--queue", "-n", name, *(a for s in sets for a in ("-S", s))), project)
        run(dvc("queue", "start", "-j", "4"), project)
        while True:  # until the queue is done; the test's timeout is the only bound
            status = run(dvc("queue", "status"), project).stdout
            if not any(word in status for word in ("Queued", "Running")):
                break
            time.sleep(5)
        assert status.count("Success") == 4, status
    finally:
        stop_queue(project)
    assert not processes_in(project)

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("scratchnet").experiment_id], max_results=1000)
    duplicates = duplicated_keys(runs)
    print(f"duplicated run keys: {len(duplicates)}")
    assert duplicates == {}
    by_entry = Counter((r.data.tags.get("scratchnet.model"), r.data.tags.get("scratchnet.entry")) for r in runs)
    for (model, entry), names in OWN_ENTRIES.items():
        assert by_entry[model, entry] == 2  # both seeds of every new value, once each
        for run_ in runs:
            tags = run_.data.tags
            if (tags.get("scratchnet.model"), tags.get("scratchnet.entry")) == (model, entry):
                assert tags["scratchnet.dvc_exp"] in names  # the experiment that logged it
                assert run_.info.status == "FINISHED"
    (reg,) = [
        r
        for r in runs
        if r.data.tags.get("scratchnet.sweep") == "twolayer.reg" and r.data.tags["scratchnet.stage"] == "ablate-sweep"
    ]
    assert {k for k in reg.data.tags if k.startswith("scratchnet.dvc_exp")} == {
        "scratchnet.dvc_exp.reg-a",
        "scratchnet.dvc_exp.reg-b",
        "scratchnet.dvc_exp.reg-c",
    }
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == reg.info.run_id]
    assert sorted(r.data.tags["scratchnet.entry"] for r in children) == ["reg=0.001"] * 2 + ["reg=0.01"] * 2
    assert reg.info.start_time <= min(c.info.start_time for c in children)
    assert reg.info.end_time == max(c.info.end_time for c in children)


@pytest.mark.e2e
def test_two_clones_reproducing_at_once_into_one_server_log_no_key_twice(pristine_study, clone, tmp_path):
    from mlflow.tracking import MlflowClient

    clones = [committed(clone(pristine_study.path, name)) for name in ("one", "two")]
    with mlflow_server(tmp_path, env=environment()) as server:
        env = environment(MLFLOW_TRACKING_URI=server.uri)
        logs = [tmp_path / f"{folder.name}.log" for folder in clones]
        repros: list[Service] = []
        try:  # both at once, each in its own process group, stopped whatever happens
            for folder, log in zip(clones, logs):
                with log.open("w") as out:
                    repros.append(
                        Service(dvc("repro", "--force"), cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
                    )
            codes = [repro.process.wait() for repro in repros]
        finally:
            for repro in repros:
                repro.stop()
        assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
        client = MlflowClient(server.uri)
        runs = client.search_runs([client.get_experiment_by_name("scratchnet").experiment_id], max_results=1000)
    assert duplicated_keys(runs) == {}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["scratchnet.stage"] for r in runs} == {"train", "ablate", "ablate-sweep", "attack"}
