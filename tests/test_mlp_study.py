"""A model added through the registry runs through every stage: the tiny study with an `mlp`
section added to params.yaml (and nothing else) trains it, ablates it, evaluates it, saves it
for the attack, logs it to MLflow and reports it, as a model the study did not have."""

from __future__ import annotations

import json

import pytest
from report_reading import section_text, sweep_table
from tiny_study import Replace, copy_study, dvc, mlflow_runs, run, set_params

pytestmark = pytest.mark.e2e

# What a user adds to params.yaml: the model in `models`, its section, its epochs and sweeps.
MLP = {
    "models": ["softmax", "twolayer", "mlp"],
    "mlp": {
        "hidden_dims": [16, 16],
        "normalize": "mean",
        "lr": 0.05,
        "lr_decay": 0.9,
        "batch_size": 32,
        "reg": 0.0,
        "init": "he",
        "init_scale": 0.001,
    },
    "train": {"epochs": {"mlp": 2}},
    "ablate": {"epochs": {"mlp": 2}, "mlp": Replace({"hidden_dims": [[8], [16, 16, 8]], "lr": [0.02]})},
}


@pytest.fixture(scope="module")
def mlp_study(pristine_study, tmp_path_factory):
    project = copy_study(pristine_study.path, tmp_path_factory.mktemp("mlp-study") / "study")
    set_params(project, MLP)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "tiny study with an MLP"], project)
    return project, run(dvc("repro"), project, timeout=1800)


def test_the_mlp_is_trained_ablated_and_evaluated_by_every_stage(mlp_study):
    project, repro = mlp_study
    assert "Running stage 'train@mlp'" in repro.stdout
    record = json.loads((project / "results/train/mlp/run.json").read_text())["seeds"][0]
    assert record["history"][-1]["train_acc"] > 0.15  # it learns: above chance (10%) after 2 epochs
    assert (project / "results/train/mlp/history.csv").is_file()
    ablated = sorted(p.name for p in (project / "results/ablate/mlp").iterdir())
    assert ablated == ["baseline.json", "hidden_dims=[16, 16, 8].json", "hidden_dims=[8].json", "lr=0.02.json"]

    summary = json.loads((project / "results/evaluate/ablation_summary.json").read_text())
    mlp = summary["models"]["mlp"]
    assert mlp["title"] == "multi-layer network" and mlp["study_test_acc"] is None
    assert list(mlp["sweeps"]) == ["hidden_dims", "lr"]
    assert [r["value"] for r in mlp["sweeps"]["hidden_dims"]["rows"]] == [[16, 16], [8], [16, 16, 8]]
    assert all(s["study"] is None for s in mlp["sweeps"].values())
    metrics = json.loads((project / "metrics/study.json").read_text())
    assert set(metrics["acc"]) == {"softmax", "twolayer", "mlp"}
    assert "mlp,lr,0.02" in (project / "results/evaluate/ablation_summary.csv").read_text()


def test_the_saved_mlp_is_the_trained_network(mlp_study):
    from scratchnet.nn import load_model

    project, _ = mlp_study
    model = load_model(project / "models/mlp.npz")
    assert model.config["kind"] == "mlp" and model.config["hidden_dims"] == [16, 16]
    assert model.params["W1"].shape == (3072, 16) and model.params["W3"].shape == (16, 10)


def test_the_mlp_runs_are_in_mlflow(mlp_study):
    project, _ = mlp_study
    _, runs = mlflow_runs(project)
    mlp = [r for r in runs if r.data.tags.get("scratchnet.model") == "mlp"]
    stages = sorted(r.data.tags.get("scratchnet.stage") for r in mlp)
    # 1 baseline run (train) + 4 entries x 2 seeds (ablate), the ablation's baseline seed 0 may be train's run
    assert "train" in stages and stages.count("ablate") >= 7
    assert {r.data.params.get("hidden_dims") for r in mlp} >= {"[16, 16]", "[8]", "[16, 16, 8]"}


def test_the_report_has_the_mlp_as_a_model_the_study_did_not_have(mlp_study):
    project, _ = mlp_study
    markdown = (project / "report/report.md").read_text()
    part = section_text(markdown, "## Beyond the study: multi-layer network")
    assert "the study did not have this model" in part
    assert "![" in part and "figures/curve_mlp.png" in part
    table = sweep_table(markdown, "### multi-layer network: `hidden_dims`")
    assert [row[0] for row in table] == ["[16, 16] (baseline)", "[8]", "[16, 16, 8]"]
    assert all(len(row) == 3 for row in table)  # value, ours, seeds: no study columns
    assert "| multi-layer network |" in section_text(markdown, "## Results at a glance")
    assert (project / "report/figures/sweep_mlp_hidden_dims.png").is_file()
