"""DVC's ways of running the study work the way a DVC user expects (issue 14).

- One MLflow store per project wherever DVC runs a stage: `dvc repro`, `dvc exp run`, and the
  temporary workspaces of `dvc exp run --temp` / `--queue` (<project>/.dvc/tmp/exps/<tmp>/);
  runs of an experiment are tagged with its name; artifacts go beside the store.
- A local `data.source` is a real dependency: changing its files reruns fetch, nothing else.
- `dvc plots show` draws each sweep with a readable title and this repository's templates
  (checked on the full tiny study in tests/test_pipeline_e2e.py).
- The README's experiment examples run.

The unit tests at the top are fast; the rest run the real `dvc` on the tiny generated study of
tests/test_pipeline_e2e.py (its helpers are reused, so both build the same kind of project).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from processes import stop_processes_in
from tiny_study import Replace, copy_project, copy_study, dvc, environment, run, set_params, tiny_image_folder_archive

from scratchnet.data.fingerprint import source_fingerprint
from scratchnet.study.tracking import (
    TAG,
    Tracker,
    TrackingError,
    artifact_root,
    dvc_experiment_tags,
    project_root,
    tracking_uri,
)

PROJECT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- the store, wherever DVC runs


@pytest.fixture
def no_dvc_env(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME"):
        # set first, so the test's end restores the variable even if MLflow set it meanwhile
        # (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI for child processes)
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_a_dvc_temporary_workspace_tracks_into_the_project_that_holds_it(tmp_path, no_dvc_env):
    workspace = tmp_path / "study" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    (workspace / "results").mkdir(parents=True)
    assert project_root(workspace) == (tmp_path / "study").resolve()
    assert project_root(workspace / "results") == (tmp_path / "study").resolve()
    assert tracking_uri(workspace) == f"sqlite:///{(tmp_path / 'study').resolve().as_posix()}/mlflow.db"


def test_dvc_root_names_the_project_for_a_stage_run_where_dvc_started_it(tmp_path, no_dvc_env, monkeypatch):
    """DVC sets DVC_ROOT for every stage command: for an experiment, the original project."""
    workspace = tmp_path / "elsewhere"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "study"))
    assert tracking_uri() == f"sqlite:///{(tmp_path / 'study').resolve().as_posix()}/mlflow.db"
    # an explicit, different root is not overridden
    assert project_root(tmp_path) == tmp_path.resolve()


def test_a_tracking_server_still_wins(tmp_path, no_dvc_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri(tmp_path / ".dvc" / "tmp" / "exps" / "tmp1") == "http://127.0.0.1:5999"
    assert artifact_root("http://127.0.0.1:5999") is None


def test_runs_of_a_dvc_experiment_carry_its_name(no_dvc_env, monkeypatch):
    assert dvc_experiment_tags() == {}
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-lion")
    assert dvc_experiment_tags() == {TAG + "dvc_exp": "lucky-lion"}


def test_a_new_experiment_keeps_its_artifacts_beside_the_store_not_the_working_directory(
    tmp_path, no_dvc_env, monkeypatch
):
    study = tmp_path / "study"
    study.mkdir()
    monkeypatch.chdir(tmp_path)  # MLflow's default would be ./mlruns of this folder
    tracker = Tracker("unit", root=study)
    location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
    assert location == (study.resolve() / "mlruns").as_uri()
    run_id = tracker.log_outputs(
        "k",
        run_name="r",
        params={},
        tags={},
        metrics={},
        artifacts=[Path(__file__)],
        artifact_path=None,
        started=0.0,
        ended=1.0,
    )
    assert (study / "mlruns" / run_id / "artifacts" / Path(__file__).name).is_file()
    assert not (tmp_path / "mlruns").exists()


def test_a_copied_store_refuses_to_write_into_the_original_projects_artifacts(tmp_path, no_dvc_env):
    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    Tracker("unit", root=original)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # as a new stage process starts
    shutil.copytree(original, copy)
    with pytest.raises(TrackingError) as raised:
        Tracker("unit", root=copy)
    message = str(raised.value)
    assert str(copy.resolve() / "mlflow.db") in message
    assert (original.resolve() / "mlruns").as_uri() in message and "tracking.experiment" in message


# ------------------------------------------------------------------------- data.source fingerprint


def test_the_fingerprint_changes_with_every_change_to_a_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "train" / "cat").mkdir(parents=True)
    (folder / "train" / "cat" / "a.png").write_bytes(b"one")
    seen = [source_fingerprint("images", tmp_path)]
    (folder / "train" / "cat" / "b.png").write_bytes(b"two")  # added
    seen.append(source_fingerprint("images", tmp_path))
    (folder / "train" / "cat" / "b.png").write_bytes(b"TWO")  # replaced, same size
    seen.append(source_fingerprint("images", tmp_path))
    (folder / "train" / "cat" / "b.png").rename(folder / "train" / "cat" / "c.png")  # renamed
    seen.append(source_fingerprint("images", tmp_path))
    (folder / "train" / "cat" / "c.png").unlink()  # deleted
    seen.append(source_fingerprint("images", tmp_path))
    assert [s["files"] for s in seen] == [1, 2, 2, 2, 1]
    assert len({s["sha256"] for s in seen[:4]}) == 4
    assert seen[4] == seen[0]  # the same files give the same fingerprint: fetch is not rerun


def test_the_fingerprint_of_an_archive_is_its_checksum_and_named_sources_are_themselves(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"archive")
    assert source_fingerprint("a.tar.gz", tmp_path) == {
        "kind": "file",
        "bytes": 7,
        "sha256": hashlib.sha256(b"archive").hexdigest(),
    }
    for named in ("auto", "official", "official-binary", "https://example.org/c.tar.gz"):
        assert source_fingerprint(named, tmp_path) == {
            "source": named,
            "kind": "url" if named.startswith("https") else "named",
        }
    assert source_fingerprint("absent.tar.gz", tmp_path) == {"source": "absent.tar.gz", "kind": "missing"}


# ------------------------------------------------------------------ the real dvc on a tiny study


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture
def source_project(tmp_path) -> Path:
    """A project whose data.source is a small local archive; nothing run yet."""
    project = tmp_path / "study"
    project.mkdir()
    copy_project(project)
    tiny_image_folder_archive(project / "data" / "tiny.tar.gz", train_per_class=6, test_per_class=2)
    set_params(project, {"data": {"source": "data/tiny.tar.gz", "timeout": 1}})
    run(["git", "init", "-q"], project)
    return project


def fetched(project: Path) -> bool:
    """Runs `dvc repro fetch`; whether fetch updated data/raw (the source stage always runs).
    Files seen before are restored from DVC's run cache instead of fetched again."""
    output = run(dvc("repro", "fetch"), project).stdout
    assert "source" in stages_run(output)
    return "fetch" in stages_run(output) or "Stage 'fetch' is cached - skipping run" in output


def train_images(project: Path) -> int:
    return sum(json.loads((project / "data/raw/provenance.json").read_text())["counts"]["train"].values())


@pytest.mark.e2e
def test_changing_the_files_of_a_local_source_reruns_fetch_and_nothing_else_does(source_project):
    project = source_project
    assert fetched(project)
    assert not fetched(project)  # same files: fetch is skipped
    assert train_images(project) == 60

    tiny_image_folder_archive(project / "data" / "tiny.tar.gz", train_per_class=7, test_per_class=2)
    assert fetched(project)  # the archive was replaced
    assert train_images(project) == 70

    folder = project / "data" / "images"
    with tarfile.open(project / "data" / "tiny.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    set_params(project, {"data": {"source": "data/images/tiny-cifar"}})
    assert fetched(project)  # a new source
    cats = folder / "tiny-cifar" / "train" / "cat"
    shutil.copy(cats / "0000.png", cats / "0100.png")
    assert fetched(project)  # an image added
    assert train_images(project) == 71
    (cats / "0100.png").unlink()  # (a replaced image: test_the_fingerprint_changes_with_every_change_to_a_folder)
    assert fetched(project)  # an image deleted
    assert train_images(project) == 70


# The sweeps of the tiny study hold the README's examples, so `-S` sets a baseline to one of its
# sweep's values, as a user following the README does on the full study.
# The README's `dvc exp show` filter: the creation time goes, and every column named by a path,
# which is a dependency's hash (metrics and params are named without one).
EXP_SHOW_DROP = "Created|.*/"  # DVC matches it at the start of each column name
README_ABLATE = {"softmax": Replace({"lr": [0.01]}), "twolayer": Replace({"hidden_dim": [200]})}


@pytest.fixture(scope="module")
def study(pristine_study, tmp_path_factory) -> Path:
    """A copy of the session's tiny study with the README's sweep values, run and committed
    with its dvc.lock as a user would (the ablation trains only the new values' runs)."""
    project = copy_study(pristine_study.path, tmp_path_factory.mktemp("workflows") / "study")
    set_params(project, {"ablate": README_ABLATE})
    run(dvc("repro"), project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "full run"], project)
    return project


def project_runs(project: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("scratchnet")
    return client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.mark.e2e
@pytest.mark.parametrize("how,decay", [("--temp", "0.95"), ("--queue", "0.85")])
def test_an_experiment_in_a_temporary_workspace_logs_into_the_projects_store_under_its_name(study, how, decay):
    # Both run the experiment in a temporary copy of the project under .dvc/tmp/exps: --temp
    # at once, --queue in a celery worker that `dvc exp run --run-all` starts and waits for.
    name = f"decay-{how.strip('-')}"
    before = {r.info.run_id for r in project_runs(study)}
    try:
        run(dvc("exp", "run", how, "-n", name, "-S", f"softmax.lr_decay={decay}", "train@softmax"), study)
        if how == "--queue":
            run(dvc("exp", "run", "--run-all"), study)
        (new,) = [r for r in project_runs(study) if r.info.run_id not in before]
        assert new.data.tags["scratchnet.dvc_exp"] == name
        assert new.data.params["lr_decay"] == decay
        artifacts = Path(urlparse(new.info.artifact_uri).path)
        assert artifacts.is_relative_to(study.resolve() / "mlruns")
        assert (artifacts / "curve.csv").is_file()
        assert not list((study / ".dvc" / "tmp").rglob("mlflow.db"))  # no throwaway store anywhere
        assert name in run(dvc("exp", "list", "--name-only"), study).stdout.split()
    finally:  # the README's comparison below shows its own two experiments only
        run(dvc("exp", "remove", name), study, check=False)
        if how == "--queue":  # the celery worker `--run-all` started, detached: stopped
            run(dvc("queue", "stop", "--kill"), study, check=False)
            stop_processes_in(study)


@pytest.mark.e2e
def test_the_readmes_experiment_examples_run_and_compare_in_120_columns(study):
    readme = (PROJECT / "README.md").read_text()
    show = f"dvc exp show --only-changed --drop '{EXP_SHOW_DROP}'"
    for example in ("dvc exp run -S twolayer.hidden_dim=200", "dvc exp run -S softmax.lr=0.01", show):
        assert example in readme
    run(dvc("exp", "run", "-S", "twolayer.hidden_dim=200"), study)
    run(dvc("exp", "run", "-S", "softmax.lr=0.01"), study)
    # COLUMNS wide enough that the table is shown at its natural width, as in DVC's pager
    table = run(
        dvc("exp", "show", "--only-changed", "--drop", EXP_SHOW_DROP, "--no-pager"),
        study,
        env=environment(COLUMNS="1000"),
    ).stdout
    lines = table.splitlines()
    header = next(line for line in lines if "Experiment" in line).split()
    # the experiment, the headline metrics that changed, the params that changed: no dependency
    # hash, no timing (it differs in every run: it is not a metric), no file prefix on a name
    assert header[0] == "Experiment" and header[-2:] == ["softmax.lr", "twolayer.hidden_dim"], header
    # (acc.twolayer only if it changed: the tiny study's colour-coded classes may be learnt
    # as well at either width)
    assert {"acc.softmax"} <= set(header[1:-2]) <= {"acc.softmax", "acc.twolayer", "gap", "agree", "fooled"}, header
    assert len([line for line in lines if "[" in line]) == 2  # the two experiments, by name
    # at its natural width the table fits a 120-column terminal
    assert max(len(line.rstrip()) for line in lines) <= 120, table
