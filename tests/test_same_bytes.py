"""Same inputs, same bytes (issue 21): the tiny study, run from scratch in fresh copies of the
project, gives a byte-identical dvc.lock at another path and on a real Dask cluster, and no
DVC output holds a time, a host, a worker or an MLflow id.

Three copies train everything from scratch (each has its own run cache and MLflow store):
A and B, at two paths, one after the other on the local executor; C on a Dask scheduler and two
workers on 127.0.0.1. dvc.lock holds the md5 of every output, so equal lock entries are equal
bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline_e2e import BIN, TINY, copy_project, environment, run, set_params, tiny_image_folder_archive

from scratchnet.data.fingerprint import source_fingerprint

pytestmark = pytest.mark.e2e

# Stages whose lock entries are not compared yet. The report still prints the run's timings,
# date and MLflow ids until the report's rendering is made deterministic (issue 21, the report's
# part): removed once the report is deterministic, so that every stage is compared.
EXCLUDED = {"report"}


def study_copy(root: Path, archive: Path) -> Path:
    project = root / "project"
    project.mkdir(parents=True)
    copy_project(project)
    shutil.copy2(archive, project / "data" / "tiny.tar.gz")  # the same bytes in every copy
    set_params(project, TINY)
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "tiny study"], project)
    return project


def repro(project: Path, **env: str) -> dict:
    """`dvc repro` from scratch; the stages of its dvc.lock."""
    result = run([str(BIN / "dvc"), "repro"], project, env=environment(**env), timeout=1800)
    assert "in the run cache" in result.stdout  # the sweep ran
    return yaml.safe_load((project / "dvc.lock").read_text())["stages"]


def differences(a: dict, b: dict) -> dict[str, str]:
    """stage -> what differs, over every stage not EXCLUDED."""
    assert set(a) == set(b)
    found = {}
    for stage in sorted(set(a) - EXCLUDED):
        if a[stage] != b[stage]:
            outs = {o["path"]: o.get("md5") for o in a[stage].get("outs", [])}
            other = {o["path"]: o.get("md5") for o in b[stage].get("outs", [])}
            found[stage] = ", ".join(p for p in outs if outs[p] != other.get(p)) or "its deps or params"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_workers(address: str, count: int, seconds: float = 120) -> None:
    from distributed import Client

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with Client(address, timeout=2, set_as_default=False) as client:
                if len(client.scheduler_info()["workers"]) >= count:
                    return
        except (OSError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"the Dask cluster at {address} did not get {count} workers")


@pytest.fixture(scope="module")
def locks(tmp_path_factory) -> dict[str, dict]:
    """{'A', 'B', 'dask'}: each fresh copy's dvc.lock stages, with the copies' folders."""
    archive = tmp_path_factory.mktemp("archive") / "tiny.tar.gz"
    tiny_image_folder_archive(archive)
    copies = {
        name: study_copy(tmp_path_factory.mktemp(f"copy-{name}") / "somewhere" / name, archive)
        for name in ("A", "B", "dask")
    }
    assert len({p.resolve() for p in copies.values()}) == 3
    stages = {"A": repro(copies["A"]), "B": repro(copies["B"])}

    # A scheduler and two workers in one process group, stopped together whatever happens.
    address = f"tcp://127.0.0.1:{free_port()}"
    folder = tmp_path_factory.mktemp("dask")  # workers need no project folder
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    scheduler = subprocess.Popen(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,
    )
    try:
        for _ in range(2):
            subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                cwd=folder,
                env=env,
                process_group=scheduler.pid,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        wait_for_workers(address, 2)
        stages["dask"] = repro(copies["dask"], SCRATCHNET_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=address)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(scheduler.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(3)
        scheduler.wait(timeout=30)
    return {"stages": stages, "copies": copies}


def test_two_fresh_copies_at_different_paths_give_a_byte_identical_dvc_lock(locks):
    a, b = locks["stages"]["A"], locks["stages"]["B"]
    assert differences(a, b) == {}
    # the reference a clone is compared with: the metrics are committed with dvc.lock
    for rel in ("metrics/study.json", "metrics/attack.json", "data/source.json", "data/raw/provenance.json"):
        assert (locks["copies"]["A"] / rel).read_bytes() == (locks["copies"]["B"] / rel).read_bytes(), rel


def test_the_dask_cluster_gives_the_same_dvc_lock_as_the_local_executor(locks):
    assert differences(locks["stages"]["A"], locks["stages"]["dask"]) == {}


def test_no_result_holds_a_time_a_host_a_worker_or_an_mlflow_id(locks):
    project = locks["copies"]["A"]
    forbidden = ("seconds", "started", "ended", "worker", "mlflow", "tracking_uri", "reason")
    files = [
        project / "data/raw/provenance.json",
        project / "data/processed/meta.json",
        project / "results/fit/fit.json",
        project / "results/attack/example.json",
        *sorted((project / "results/train").rglob("*.json")),
        *sorted((project / "results/ablate").rglob("*.json")),
    ]
    for file in files:
        text = file.read_text()
        assert not [w for w in forbidden if f'"{w}' in text], file
    result = json.loads((project / "results/ablate/twolayer/lr=1000.0.json").read_text())
    assert set(result) == {"model", "stage", "run", "param", "value", "config", "seeds"}
    assert set(result["seeds"][0]) == {
        "key",
        "seed",
        "test_acc",
        "final_val_acc",
        "diverged",
        "diverged_epoch",
        "history",
    }


def test_a_local_sources_fingerprint_is_its_content_not_its_path(tmp_path):
    for where in ("here", "elsewhere/deeper"):
        folder = tmp_path / where / "images" / "train" / "cat"
        folder.mkdir(parents=True)
        (folder / "a.png").write_bytes(b"one")
        (tmp_path / where / "data.tar.gz").write_bytes(b"archive")
    for rel in ("images", "data.tar.gz"):
        here = source_fingerprint(str(tmp_path / "here" / rel))  # absolute data.source
        elsewhere = source_fingerprint(rel, tmp_path / "elsewhere" / "deeper")  # relative
        assert json.dumps(here) == json.dumps(elsewhere)
        assert str(tmp_path) not in json.dumps(here)
