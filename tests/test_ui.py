"""`make ui` (scratchnet.study.ui): the URL it prints opens the study's runs table; a project
that never ran gets told so, and no empty store is left behind."""

import pytest

from scratchnet.errors import UserError
from scratchnet.study.tracking import Tracker
from scratchnet.study.ui import experiment_id, runs_url


def test_the_url_names_the_experiments_runs_table():
    assert runs_url("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")


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
