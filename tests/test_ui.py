"""`make ui` (scratchnet.study.ui): the URL it prints opens the study's runs table; a project
that never ran gets told so, and no empty store is left behind."""

import pytest

from scratchnet.errors import UserError
from scratchnet.study.tracking import Tracker
from scratchnet.study.ui import experiment_id, runs_url, sweep_url, sweep_urls, sweep_view


def test_the_url_names_the_experiments_runs_table():
    assert runs_url("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )


def test_a_sweeps_url_opens_its_saved_view_the_search_the_sort_and_the_columns():
    from urllib.parse import parse_qs, urlsplit

    url = sweep_url("http://127.0.0.1:5000", "7", "twolayer.lr")
    page, query = urlsplit(url).fragment.split("?")
    assert page == "/experiments/7/runs"
    # no search or sort in the URL: with one, the UI ignores the saved view
    assert parse_qs(query) == {
        "workflowType": ["machine_learning"],
        "viewStateShareKey": ["scratchnet.sweep.twolayer.lr"],
    }
    assert dict([sweep_view("twolayer.lr")])["scratchnet.sweep.twolayer.lr"] == {
        "searchFilter": "tags.`scratchnet.in_sweep.twolayer.lr` = 'true'",  # the README's search
        "orderByKey": "metrics.`test_acc`",
        "orderByAsc": False,
        "selectedColumns": ["metrics.`test_acc`", "metrics.`val_acc`"],
    }


def test_the_views_are_saved_as_the_uis_saved_view_tags(tmp_path, monkeypatch):
    import json

    from scratchnet.study.ui import save_views

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = Tracker("study", root=tmp_path)
    params = {"models": ["softmax", "twolayer"], "ablate": {"softmax": {"reg": [0.1]}, "twolayer": {}}}
    save_views(tracker.uri, tracker.experiment_id, params)
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(tracker.uri).get_experiment(tracker.experiment_id).tags
    saved = {
        k.removeprefix("mlflow.sharedViewState."): json.loads(v)
        for k, v in tags.items()
        if k.startswith("mlflow.sharedViewState.")
    }
    assert set(saved) == {"scratchnet.runs", "scratchnet.sweep.softmax.reg"}
    envelope = saved["scratchnet.sweep.softmax.reg"]
    assert envelope["name"] == "scratchnet: softmax.reg" and isinstance(envelope["createdAt"], int)
    assert json.loads(envelope["state"])["searchFilter"] == "tags.`scratchnet.in_sweep.softmax.reg` = 'true'"


def test_every_sweep_of_the_params_gets_its_url_and_a_model_without_sweeps_none():
    params = {
        "models": ["softmax", "twolayer"],
        "ablate": {"softmax": {}, "twolayer": {"lr": [0.2], "hidden_dim": [50]}},
    }
    assert list(sweep_urls("http://h", "7", params)) == ["twolayer.lr", "twolayer.hidden_dim"]


def test_the_experiment_is_found_by_name_in_the_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = Tracker("study", root=tmp_path)
    assert experiment_id(tracker.uri, "study") == tracker.experiment_id
    with pytest.raises(UserError, match="no experiment 'other'.*run the study first"):
        experiment_id(tracker.uri, "other")


def test_a_project_that_never_ran_is_told_to_run_and_gets_no_empty_store(tmp_path):
    store = tmp_path / "mlflow.db"
    with pytest.raises(UserError, match=f"no MLflow store {store} yet: run the study first"):
        experiment_id(f"sqlite:///{store}", "scratchnet")
    assert not store.exists()


def test_make_ui_says_so_when_the_server_exits_before_it_answers():
    import subprocess
    import sys

    from scratchnet.study.ui import wait_until_answers

    server = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(UserError, match="mlflow ui exited with status 3 before it answered"):
        wait_until_answers("http://127.0.0.1:9/health", server, seconds=30)
