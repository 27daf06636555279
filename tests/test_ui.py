"""`make ui` (scratchnet.study.ui): the URL it prints opens the study's runs table; a project
that never ran gets told so, and no empty store is left behind."""

import pytest

from scratchnet.errors import UserError
from scratchnet.study.tracking import Tracker
from scratchnet.study.ui import experiment_id, runs_url, sweep_url, sweep_urls


def test_the_url_names_the_experiments_runs_table():
    assert runs_url("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")


def test_a_sweeps_url_searches_its_runs_with_the_baseline_and_sorts_by_test_accuracy():
    from urllib.parse import parse_qs, urlsplit

    url = sweep_url("http://127.0.0.1:5000", "7", "twolayer.lr")
    page, query = urlsplit(url).fragment.split("?")
    assert page == "/experiments/7/runs"
    assert parse_qs(query) == {
        "workflowType": ["machine_learning"],
        "searchFilter": ["tags.`scratchnet.in_sweep.twolayer.lr` = 'true'"],  # the README's search
        "orderByKey": ["metrics.`test_acc`"], "orderByAsc": ["false"]}


def test_every_sweep_of_the_params_gets_its_url_and_a_model_without_sweeps_none():
    params = {"ablate": {"softmax": {}, "twolayer": {"lr": [0.2], "hidden_dim": [50]}}}
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
