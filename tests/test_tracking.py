"""The MLflow wrapper: fails fast on an unreachable server, never loses a run's results."""

import socket
import time

import mlflow
import pytest

from scratchnet.study.tracking import Tracker, TrackingError, flatten, tracking_uri


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def test_the_default_store_is_mlflow_db_in_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve().as_posix()}/mlflow.db"


def test_an_unreachable_server_fails_at_once_naming_the_uri(monkeypatch):
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"MLflow tracking server {uri} .* is unreachable"):
        Tracker("scratchnet")
    assert time.monotonic() - started < 10


@pytest.fixture
def tracker(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Tracker("unit", root=tmp_path)


def test_a_run_logs_params_epoch_metrics_and_tags(tracker):
    with tracker.run("r", {"lr": 0.1}, {"scratchnet.model": "softmax"}) as run:
        run.log_history([{"epoch": e, "loss": 1.0 / e, "train_acc": 0.5, "val_acc": 0.4, "lr": 0.1}
                         for e in (1, 2)])
    logged = tracker.client.get_run(run.run_id)
    assert logged.data.params == {"lr": "0.1"}
    assert logged.data.tags["scratchnet.model"] == "softmax"
    assert logged.info.status == "FINISHED"
    assert [m.step for m in tracker.client.get_metric_history(run.run_id, "loss")] == [1, 2]


def test_runs_of_one_sweep_share_one_parent(tracker):
    first = tracker.parent_run("softmax sweep: reg", "key-a", {})
    assert tracker.parent_run("softmax sweep: reg", "key-a", {}) == first
    assert tracker.parent_run("softmax sweep: reg", "key-b", {}) != first
    with tracker.run("child", {}, {}, parent_run_id=first) as run:
        pass
    assert tracker.client.get_run(run.run_id).data.tags["mlflow.parentRunId"] == first


def test_a_store_failure_mid_run_is_reported_after_the_body_finishes(tracker, monkeypatch):
    finished = []

    def broken(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("store is gone")

    with pytest.raises(TrackingError, match="was not fully logged to MLflow.*store is gone"):
        with tracker.run("r", {}, {}) as run:
            monkeypatch.setattr(run.client, "log_batch", broken)
            run.log_history([{"epoch": 1, "loss": 1.0}])  # does not raise: the stage goes on
            finished.append(True)
    assert finished == [True]


def test_the_pyfunc_model_class_imports_without_mlflow_warnings():
    import importlib
    import sys
    import warnings

    import mlflow.pyfunc  # noqa: F401  (MLflow's own import warns about its own types)

    sys.modules.pop("scratchnet.study.pyfunc_model", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.import_module("scratchnet.study.pyfunc_model")
    assert [str(w.message) for w in caught] == []


def test_nested_params_flatten_to_dotted_keys():
    assert flatten({"sweep": {"epsilons": {"l2": [1, 2]}, "seed": 0}, "norm": "l2"}) == {
        "sweep.epsilons.l2": [1, 2], "sweep.seed": 0, "norm": "l2"}
