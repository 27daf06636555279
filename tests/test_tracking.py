"""The MLflow wrapper: runs logged from their records after the fact, once each, with their
training's times; sweeps findable with their baseline; failures that never lose a result."""

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from processes import free_port, mlflow_server

from scratchnet.study.runs import RunSpec, log_seed
from scratchnet.study.tracking import Tracker, TrackingError, flatten, sweep_tags, tracking_uri


def closed_port() -> int:
    return free_port()  # closed again at once: nothing listens


def record(key: str | None, *, seed=0, test_acc=0.4, epochs=3, diverged_epoch=None, robustness=None) -> dict:
    """A finished run's record as the sweep's driver receives it."""
    history = [
        {"epoch": e, "loss": 2.0 / e, "train_acc": 0.1 * e, "val_acc": 0.09 * e, "lr": 0.1 * 0.9**e}
        for e in range(1, epochs + 1)
    ]
    return {
        "seed": seed,
        "test_acc": None if diverged_epoch else test_acc,
        "final_val_acc": history[-1]["val_acc"] if history else None,
        "diverged": diverged_epoch is not None,
        "diverged_epoch": diverged_epoch,
        "history": history,
        "key": key,
        "robustness": robustness,
    }


def facts(started=1_700_000_000.25, seconds=30.5) -> dict:
    """The facts of a run: when and where it trained."""
    return {"started": started, "ended": started + seconds, "worker": "host:42"}


def log(tracker, rec, name="twolayer lr=0.05 seed 0", tags=None, parent=None, at=None):
    return tracker.log_run(
        rec,
        at or facts(),
        run_name=name,
        params={"lr": 0.05, "seed": rec["seed"]},
        tags=tags or {"scratchnet.model": "twolayer"},
        parent_run_id=parent,
    )


def all_runs(tracker):
    return tracker.client.search_runs([tracker.experiment_id], max_results=1000)


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """One SQLite store for the module's tests, each test in its own experiment: creating a
    store's tables costs seconds, an experiment nothing."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture
def experiment(request, store, monkeypatch) -> str:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.chdir(store)  # MLflow's default artifact root for a SQLite store is ./mlruns
    return request.node.name


@pytest.fixture
def tracker(experiment, store):
    return Tracker(experiment, root=store)


def test_the_default_store_is_mlflow_db_in_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve().as_posix()}/mlflow.db"


# "At once": MLflow's own retries would take minutes; the hang guard is far above the ~1 s
# it takes (bench/RESULTS.md, "test suite: hang guards").
@pytest.mark.timeout(120)
def test_an_unreachable_server_fails_at_once_naming_the_uri(monkeypatch):
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingError, match=f"MLflow tracking server {uri} .* is unreachable"):
        Tracker("scratchnet")


def test_importing_tracking_changes_no_environment_variable():
    code = "import os; before = dict(os.environ); import scratchnet.study.tracking; print(dict(os.environ) == before)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_a_record_becomes_a_run_with_params_epoch_metrics_test_acc_curve_and_tags(tracker, tmp_path):
    rec = record("k1", seed=2, robustness={"l2_90": 0.75, "linf_8": 0.5})
    run_id = log(tracker, rec)
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.05", "seed": "2"}
    assert run.data.metrics["test_acc"] == 0.4
    assert (run.data.metrics["robust_l2_90"], run.data.metrics["robust_linf_8"]) == (0.75, 0.5)
    assert [m.step for m in tracker.client.get_metric_history(run_id, "val_acc")] == [1, 2, 3]
    assert {k: v for k, v in run.data.tags.items() if k.startswith("scratchnet.")} == {
        "scratchnet.model": "twolayer",
        "scratchnet.seed": "2",
        "scratchnet.diverged": "false",
        "scratchnet.run_key": "k1",
        "scratchnet.worker": "host:42",
    }
    curve = Path(tracker.client.download_artifacts(run_id, "curve.csv", str(tmp_path)))
    assert curve.read_text().splitlines() == [
        "epoch,loss,train_acc,val_acc,lr",
        *(f"{r['epoch']},{r['loss']},{r['train_acc']},{r['val_acc']},{r['lr']}" for r in rec["history"]),
    ]


def test_a_run_starts_and_ends_when_its_training_did_not_when_it_was_logged(tracker):
    rec = record("k1", epochs=4)
    run = tracker.client.get_run(log(tracker, rec, at=facts(started=1_700_000_000.25, seconds=30.5)))
    assert run.info.start_time == 1_700_000_000_250
    assert run.info.end_time == 1_700_000_030_750  # the UI's Duration: 30.5 s of training
    stamps = [m.timestamp for m in tracker.client.get_metric_history(run.info.run_id, "loss")]
    assert stamps == [1_700_000_000_250 + round(30_500 * e / 4) for e in (1, 2, 3, 4)]


def test_a_diverged_run_has_no_test_acc_and_says_so(tracker):
    run_id = log(tracker, record("k1", epochs=2, diverged_epoch=3))
    run = tracker.client.get_run(run_id)
    assert "test_acc" not in run.data.metrics
    assert run.data.tags["scratchnet.diverged"] == "true"
    assert [m.step for m in tracker.client.get_metric_history(run_id, "loss")] == [1, 2]


def test_a_run_logged_twice_is_one_run_and_a_logged_key_costs_no_search(tracker, experiment, store, monkeypatch):
    first = log(tracker, record("k1"))
    assert log(tracker, record("k1")) == first

    again = Tracker(experiment, root=store)  # the next stage, in a new process
    searches = []
    search = again.client.search_runs
    monkeypatch.setattr(again.client, "search_runs", lambda *a, **kw: searches.append(kw) or search(*a, **kw))
    assert log(again, record("k1")) == first
    assert log(again, record("k2", seed=1), name="twolayer lr=0.05 seed 1") != first
    assert log(again, record("k2", seed=1), name="twolayer lr=0.05 seed 1") == again.logged_keys()["k2"]
    # one search for what the store holds, one for the new key (another stage may log it too)
    assert len(searches) == 2
    assert sorted(r.data.tags["scratchnet.run_key"] for r in all_runs(again)) == ["k1", "k2"]


def test_a_run_missing_from_the_store_is_logged_again_from_its_record(tracker, experiment, store):
    first = log(tracker, record("k1"))
    tracker.client.delete_run(first)  # deleted in the UI, or mlflow.db removed
    again = Tracker(experiment, root=store)
    second = log(again, record("k1"))
    assert second != first
    run = again.client.get_run(second)
    assert run.info.status == "FINISHED" and run.data.metrics["test_acc"] == 0.4


def test_a_run_cut_short_while_logging_is_replaced_not_duplicated(tracker, experiment, store):
    # What a stage killed between create_run and set_terminated leaves in the store.
    partial = tracker.client.create_run(
        tracker.experiment_id, run_name="twolayer lr=0.05 seed 0", tags={"scratchnet.run_key": "k1"}
    ).info.run_id
    again = Tracker(experiment, root=store)
    logged = log(again, record("k1"))
    assert [r.info.run_id for r in all_runs(again)] == [logged]
    assert again.client.get_run(partial).info.lifecycle_stage == "deleted"


def test_a_run_that_fails_while_logging_is_marked_failed_and_replaced_by_the_retry(tracker):
    def broken(run_id):  # say, the baseline's model cannot be written
        raise OSError("disk full")

    with pytest.raises(TrackingError, match=r"run 'twolayer baseline seed 0' \(\w+\) was not fully logged.*disk full"):
        tracker.log_run(
            record("k1"), facts(), run_name="twolayer baseline seed 0", params={}, tags={}, on_logged=broken
        )
    assert [r.info.status for r in all_runs(tracker)] == ["FAILED"]
    logged = log(tracker, record("k1"))
    assert [(r.info.run_id, r.info.status) for r in all_runs(tracker)] == [(logged, "FINISHED")]


def test_a_sweeps_parent_spans_its_children_and_a_later_stage_moves_its_end_not_its_start(tracker, experiment, store):
    # Created at its sweep's start, before its children started; ended at the last child's end.
    parent = tracker.sweep_parent(
        "twolayer sweep: lr", "sweep-key", {"scratchnet.stage": "sweep"}, start=1_700_000_080.0
    )
    assert tracker.sweep_parent("twolayer sweep: lr", "sweep-key", {}, start=1_700_000_090.0) == parent
    assert tracker.sweep_parent("twolayer sweep: lr", "other-key", {}, start=1_700_000_090.0) != parent
    for key, started, seconds in (("a", 1_700_000_100.0, 30.0), ("b", 1_700_000_090.0, 20.0)):
        log(tracker, record(key), parent=parent, at=facts(started, seconds))
    assert tracker.close_parent("sweep-key") == parent
    spanned = tracker.client.get_run(parent)
    assert (spanned.info.start_time, spanned.info.end_time) == (1_700_000_080_000, 1_700_000_130_000)

    # A value added to the sweep later, from a later stage: it joins the same parent, whose end moves.
    later = Tracker(experiment, root=store)
    assert later.sweep_parent("twolayer sweep: lr", "sweep-key", {}, start=1_700_004_000.0) == parent
    log(later, record("c"), parent=parent, at=facts(1_700_005_000.0, 40.0))
    assert later.close_parent("sweep-key") == parent
    widened = later.client.get_run(parent)
    assert (widened.info.start_time, widened.info.end_time) == (1_700_000_080_000, 1_700_005_040_000)
    children = later.client.search_runs([later.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(r.data.tags["scratchnet.run_key"] for r in children) == ["a", "b", "c"]
    # A stage running at the same time that began earlier: the parent is replaced by one that
    # starts with it, holding every child and experiment (MLflow cannot move a start).
    early = Tracker(experiment, root=store)
    replaced = early.sweep_parent("twolayer sweep: lr", "sweep-key", {}, start=1_700_000_050.0)
    assert replaced != parent
    assert later.close_parent("sweep-key") == replaced  # `later` filed its child under the old one
    moved = later.client.search_runs([later.experiment_id], f"tags.mlflow.parentRunId = '{replaced}'")
    assert sorted(r.data.tags["scratchnet.run_key"] for r in moved) == ["a", "b", "c"]
    spanned = later.client.get_run(replaced)
    assert (spanned.info.start_time, spanned.info.end_time) == (1_700_000_050_000, 1_700_005_040_000)
    assert later.client.get_run(parent).info.lifecycle_stage == "deleted"
    parent = replaced

    # a stage that logged nothing new under it (its runs were logged before) leaves it as it is
    assert Tracker(experiment, root=store).close_parent("sweep-key") == parent
    assert later.client.get_run(parent).info.end_time == 1_700_005_040_000


def test_one_query_finds_a_sweep_with_its_baseline_best_first(tracker, experiment, store):
    common = {"scratchnet.model": "twolayer", "scratchnet.stage": "ablate"}
    accs = {"baseline": [0.50, 0.52], "lr=0.2": [0.45, 0.47], "lr=0.01": [0.30, 0.31], "hidden_dim=50": [0.55]}
    for entry, seeds in accs.items():
        param = None if entry == "baseline" else entry.split("=")[0]
        tags = {**common, **sweep_tags("twolayer", param, entry, ["lr", "hidden_dim"])}
        for seed, acc in enumerate(seeds):
            log(tracker, record(f"{entry}/{seed}", seed=seed, test_acc=acc), f"twolayer {entry} seed {seed}", tags)

    query = "tags.`scratchnet.in_sweep.twolayer.lr` = 'true'"
    found = tracker.client.search_runs([tracker.experiment_id], query, order_by=["metrics.test_acc DESC"])
    assert [(r.data.tags["scratchnet.entry"], r.data.metrics["test_acc"]) for r in found] == [
        ("baseline", 0.52),
        ("baseline", 0.50),
        ("lr=0.2", 0.47),
        ("lr=0.2", 0.45),
        ("lr=0.01", 0.31),
        ("lr=0.01", 0.30),
    ]
    # A sweep added later (reg): the baseline, already logged, joins it without a second run.
    again = Tracker(experiment, root=store)
    tags = {**common, **sweep_tags("twolayer", None, "baseline", ["lr", "hidden_dim", "reg"])}
    log(again, record("baseline/0", test_acc=0.50), "twolayer baseline seed 0", tags)
    found = again.client.search_runs([again.experiment_id], "tags.`scratchnet.in_sweep.twolayer.reg` = 'true'")
    assert [r.info.run_name for r in found] == ["twolayer baseline seed 0"]
    assert len(all_runs(again)) == 7


def test_runs_of_a_dvc_experiment_carry_its_name_and_a_parent_every_experiment_it_holds(tracker, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-sled")
    run = tracker.client.get_run(log(tracker, record("k1")))
    assert run.data.tags["scratchnet.dvc_exp"] == "bushy-sled"
    parent = tracker.sweep_parent("twolayer sweep: lr", "sweep-key", {}, start=1_700_000_000.0)
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-lion")
    assert tracker.sweep_parent("twolayer sweep: lr", "sweep-key", {}, start=1_700_000_000.0) == parent
    tags = tracker.client.get_run(parent).data.tags
    assert {k: v for k, v in tags.items() if k.startswith("scratchnet.dvc_exp")} == {
        "scratchnet.dvc_exp.bushy-sled": "true",
        "scratchnet.dvc_exp.lucky-lion": "true",
    }


def test_log_seed_logs_a_baseline_with_its_params_and_training_times(tracker):
    rec, at = record("base"), facts()
    spec = RunSpec("twolayer", "baseline", {"lr": 0.05}, 0)
    run_id = log_seed(tracker, spec, rec, at, train_size=100, run_name="twolayer baseline", tags={})
    assert run_id == tracker.logged_keys()["base"]
    run = tracker.client.get_run(run_id)
    assert run.data.params == {"lr": "0.05", "seed": "0", "model": "twolayer", "train_size": "100"}
    assert (run.info.start_time, run.info.end_time) == (round(at["started"] * 1000), round(at["ended"] * 1000))


def test_a_server_that_dies_between_two_runs_loses_nothing_and_a_retry_duplicates_nothing(
    experiment, store, tmp_path, monkeypatch
):
    backend = tracking_uri(store)  # the store's tables exist already: the server starts sooner
    with mlflow_server(tmp_path, backend=backend, serve_artifacts=False) as server:
        uri = server.uri
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once, not in minutes
        tracker = Tracker(experiment)
        first = log(tracker, record("k1"), "twolayer lr=0.05 seed 0")
        server.kill()  # the server dies mid-stage, its uvicorn worker with it

    with pytest.raises(TrackingError, match=f"MLflow store {uri} refused .*'twolayer lr=0.05 seed 1'"):
        log(tracker, record("k2", seed=1), "twolayer lr=0.05 seed 1")
    # The train stage's path (its results are written first): the failure names the run.
    spec = RunSpec("twolayer", "baseline", {}, 2)
    with pytest.raises(TrackingError, match="twolayer baseline"):
        log_seed(tracker, spec, record("k3", seed=2), facts(), train_size=1, run_name="twolayer baseline", tags={})

    # The retry (the next `dvc repro`), on the same store: the first run is kept, not logged
    # again; the second is logged once.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", backend)
    retry = Tracker(experiment)
    assert log(retry, record("k1"), "twolayer lr=0.05 seed 0") == first
    log(retry, record("k2", seed=1), "twolayer lr=0.05 seed 1")
    runs = {r.data.tags["scratchnet.run_key"]: r for r in all_runs(retry)}
    assert sorted(runs) == ["k1", "k2"] and len(all_runs(retry)) == 2
    assert runs["k1"].info.run_id == first and runs["k1"].data.metrics["test_acc"] == 0.4
    assert [m.step for m in retry.client.get_metric_history(first, "loss")] == [1, 2, 3]


def test_a_stage_run_is_logged_once_with_its_times_and_a_store_failure_names_it(tracker, tmp_path, monkeypatch):
    (tmp_path / "example.json").write_text("{}")
    kwargs = dict(
        run_name="twolayer attack",
        params={"norm": "l2"},
        tags={},
        metrics={"example.l2": 91.0},
        artifacts=[tmp_path / "example.json"],
        artifact_path="attack",
        started=1_700_000_000.0,
        ended=1_700_000_012.0,
    )
    first = tracker.log_outputs("attack-key", **kwargs)
    assert tracker.log_outputs("attack-key", **kwargs) == first
    run = tracker.client.get_run(first)
    assert (run.info.start_time, run.info.end_time) == (1_700_000_000_000, 1_700_000_012_000)
    assert run.data.metrics == {"example.l2": 91.0}
    assert [a.path for a in tracker.client.list_artifacts(first, "attack")] == ["attack/example.json"]

    def broken(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("store is gone")

    monkeypatch.setattr(tracker.client, "log_batch", broken)
    with pytest.raises(
        TrackingError, match=r"run 'twolayer attack' \(\w+\) was not fully logged to MLflow.*store is gone"
    ):
        tracker.log_outputs("other-key", **kwargs)


def test_the_pyfunc_model_class_imports_without_mlflow_warnings():
    import importlib
    import warnings

    import mlflow.pyfunc  # noqa: F401  (MLflow's own import warns about its own types)

    sys.modules.pop("scratchnet.study.pyfunc_model", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.import_module("scratchnet.study.pyfunc_model")
    assert [str(w.message) for w in caught] == []


def test_nested_params_flatten_to_dotted_keys():
    assert flatten({"sweep": {"epsilons": {"l2": [1, 2]}, "seed": 0}, "norm": "l2"}) == {
        "sweep.epsilons.l2": [1, 2],
        "sweep.seed": 0,
        "norm": "l2",
    }


def test_the_baselines_model_lands_on_its_run_when_the_ablation_logged_the_run_first(tracker, tmp_path):
    # `dvc repro ablate` before `train`: the ablation logs the baseline's seed-0 run (same key)
    # without a model; the train stage's model must still land on that run, which keeps its times
    from scratchnet.nn import build_model
    from scratchnet.study import pyfunc_model

    build_model({"kind": "softmax"}, seed=0).save(tmp_path / "net.npz")
    images = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    classes = [f"class {i}" for i in range(10)]
    first = log(tracker, record("k1"))
    calls = []

    def with_model(run_id):
        calls.append(run_id)
        pyfunc_model.log(run_id, tmp_path / "net.npz", classes, images)

    for _ in range(2):  # the second time, the model is there: nothing is logged again
        assert (
            tracker.log_run(
                record("k1"), facts(), run_name="softmax baseline", params={}, tags={}, on_logged=with_model
            )
            == first
        )
    assert calls == [first]
    (run,) = all_runs(tracker)
    assert len(run.outputs.model_outputs) == 1
    assert (run.info.status, run.info.start_time, run.info.end_time) == (
        "FINISHED",
        1_700_000_000_250,
        1_700_000_030_750,
    )
