"""A run is logged once by its key however many writers log it at once (issue 27).

Several processes log the same runs and the same sweep parent at the same instant, into the
project's SQLite store (they share a lock beside it) and into a real `mlflow server` (they
share nothing: each creates, then reconciles). Then the real thing: four queued DVC
experiments run side by side, and two `dvc repro` in two clones against one server.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_pipeline_e2e import (
    BIN,
    TINY,
    copy_project,
    environment,
    free_port,
    run,
    set_params,
    tiny_image_folder_archive,
    wait_for,
)

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


@contextmanager
def mlflow_server(folder: Path):
    """A real `mlflow server` on 127.0.0.1 (a free port, its own process group), stopped after."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "server-artifacts"),
            "--workers",
            "2",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**environment(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    try:
        wait_for(uri + "/health", 120)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def test_writers_logging_the_same_runs_at_once_into_a_server_log_each_once(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from scratchnet.study.tracking import Tracker

    with mlflow_server(tmp_path) as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        experiment_id = Tracker("race", root=tmp_path).experiment_id
        log_at_once(uri, tmp_path, "race")
        check_once(MlflowClient(uri), experiment_id, [f"exp{i}" for i in range(WRITERS)])


# ----------------------------------------------------------------- the real thing: DVC at once


def dvc(*args: str) -> list[str]:
    return [str(BIN / "dvc"), *args]


def tiny_study(folder: Path, env: dict | None = None) -> Path:
    """The tiny study of tests/test_pipeline_e2e.py after one `dvc repro`, committed."""
    copy_project(folder)
    tiny_image_folder_archive(folder / "data" / "tiny.tar.gz")
    set_params(folder, TINY)
    run(["git", "init", "-q"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-q", "-m", "tiny study"], folder)
    run(dvc("repro"), folder, env=env)
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-q", "-m", "first run"], folder)
    return folder


def processes_in(folder: Path) -> list[int]:
    """The pids of the processes working in `folder` (DVC's queue workers, which it detaches)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def stop_queue(project: Path) -> None:
    """`dvc queue stop`, then whatever of its workers is left, whole process groups."""
    run(dvc("queue", "stop"), project, check=False, timeout=120)
    deadline = time.monotonic() + 30
    while processes_in(project) and time.monotonic() < deadline:
        time.sleep(1)
    for pid in processes_in(project):
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


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
def test_four_queued_experiments_at_once_log_every_run_once_under_its_own_experiment(tmp_path):
    from mlflow.tracking import MlflowClient

    project = tiny_study(tmp_path / "study")
    try:
        for name, sets in EXPERIMENTS.items():
            run(dvc("exp", "run", "--queue", "-n", name, *(a for s in sets for a in ("-S", s))), project)
        run(dvc("queue", "start", "-j", "4"), project)
        deadline = time.monotonic() + 1500
        while True:
            status = run(dvc("queue", "status"), project).stdout
            if not any(word in status for word in ("Queued", "Running")):
                break
            assert time.monotonic() < deadline, status
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
def test_two_clones_reproducing_at_once_into_one_server_log_no_key_twice(tmp_path):
    from mlflow.tracking import MlflowClient

    with mlflow_server(tmp_path) as uri:
        env = environment(MLFLOW_TRACKING_URI=uri)
        clones = []
        for name in ("one", "two"):
            folder = tmp_path / name
            folder.mkdir()
            copy_project(folder)
            tiny_image_folder_archive(folder / "data" / "tiny.tar.gz")
            set_params(folder, {**TINY, "attack": {"sweep": {"sample_size": 10, "steps": 2}}})
            run(["git", "init", "-q"], folder)
            clones.append(folder)
        repros = [
            subprocess.Popen(
                dvc("repro"),
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            for folder in clones
        ]
        try:
            outputs = [p.communicate(timeout=1500)[0] for p in repros]
        finally:
            for p in repros:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
        assert [p.returncode for p in repros] == [0, 0], "\n".join(o[-3000:] for o in outputs)
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("scratchnet").experiment_id], max_results=1000)
    assert duplicated_keys(runs) == {}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["scratchnet.stage"] for r in runs} == {"train", "ablate", "ablate-sweep", "attack"}
