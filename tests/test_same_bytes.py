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
import shutil
from pathlib import Path

import pytest
import yaml
from processes import dask_cluster
from tiny_study import TINY, copy_project, dvc, environment, run, set_params

from scratchnet.data.fingerprint import source_fingerprint

pytestmark = pytest.mark.e2e


def fresh_copy(folder: Path, archive: Path) -> Path:
    """The tiny study, new and committed in `folder`, on the same archive bytes; nothing run."""
    folder.mkdir(parents=True)
    copy_project(folder)
    shutil.copy2(archive, folder / "data" / "tiny.tar.gz")
    set_params(folder, TINY)
    run(["git", "init", "-q"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-q", "-m", "tiny study"], folder)
    return folder


def lock_stages(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text())["stages"]


def repro(project: Path, **env: str) -> dict:
    """`dvc repro` from scratch (its own run cache and MLflow store); the stages of its dvc.lock."""
    result = run(dvc("repro"), project, env=environment(**env))
    assert "in the run cache" in result.stdout  # the sweep ran
    return lock_stages(project)


def differences(a: dict, b: dict) -> dict[str, str]:
    """stage -> what differs, over every stage (the report included: it holds no time or id)."""
    assert set(a) == set(b)
    found = {}
    for stage in sorted(a):
        if a[stage] != b[stage]:
            outs = {o["path"]: o.get("md5") for o in a[stage].get("outs", [])}
            other = {o["path"]: o.get("md5") for o in b[stage].get("outs", [])}
            found[stage] = ", ".join(p for p in outs if outs[p] != other.get(p)) or "its deps or params"
    return found


@pytest.fixture(scope="module")
def locks(pristine_study, tmp_path_factory) -> dict:
    """The pristine study (A, built from scratch for the session) beside two new copies run from
    scratch on its archive's bytes: B at another path, one after the other on the local executor,
    and C on a Dask scheduler with two workers on 127.0.0.1 (stopped as one group)."""
    a = pristine_study.path
    archive = a / "data" / "tiny.tar.gz"
    b = fresh_copy(tmp_path_factory.mktemp("copy-b") / "somewhere" / "else" / "B", archive)
    c = fresh_copy(tmp_path_factory.mktemp("copy-dask") / "C", archive)
    stages = {"A": lock_stages(a), "B": repro(b)}
    with dask_cluster(tmp_path_factory.mktemp("dask")) as cluster:  # workers need no project folder
        stages["dask"] = repro(c, SCRATCHNET_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=cluster.address)
    return {"stages": stages, "copies": {"A": a, "B": b, "dask": c}}


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
        "robustness",
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
