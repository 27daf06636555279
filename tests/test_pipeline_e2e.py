"""`dvc repro` runs the whole study, and every training run lands in MLflow.

The tiny study (tests/tiny_study.py: the project on a generated 10-class image-folder archive,
shrunk to a few epochs and runs) is run once per session by the real `dvc repro`
(conftest.py: `tiny_project`, read-only); a test that edits or reruns works on its own copy
of that run (`study_copy`), so each passes alone and in any order.
"""

from __future__ import annotations

import csv
import json
import re
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from processes import mlflow_server
from report_reading import sweep_table
from tiny_study import (
    CLASSES,
    Replace,
    dvc,
    environment,
    mlflow_runs,
    one_test_image_per_class,
    run,
    set_params,
    stages_run,
)

pytestmark = pytest.mark.e2e


def test_dvc_repro_builds_every_output(tiny_project, first_repro):
    expected = [
        "data/raw/cifar10.npz",
        "data/raw/provenance.json",
        "data/processed/X_train.npy",
        "results/fit/fit.json",
        "models/softmax.npz",
        "models/twolayer.npz",
        "results/evaluate/ablation_summary.csv",
        "metrics/study.json",
        "results/attack/example.json",
        "report/report.md",
        "report/report.html",
    ]
    missing = [p for p in expected if not (tiny_project / p).is_file()]
    assert not missing, first_repro.stdout[-3000:]


def test_both_baselines_learn_the_colour_coded_classes_far_above_chance(tiny_project, first_repro):
    # Each class of the tiny set is one colour plus noise: a pipeline that mixed up images and
    # labels, ignored the learning rate or skipped normalisation would stay near 10%.
    for model in ("softmax", "twolayer"):
        run_ = json.loads((tiny_project / f"results/train/{model}/run.json").read_text())
        assert run_["seeds"][0]["test_acc"] > 0.5, (model, run_["seeds"][0]["test_acc"])
        assert run_["seeds"][0]["history"][-1]["train_acc"] > 0.5


def test_a_diverging_value_is_recorded_as_diverged_through_evaluate_and_the_report(tiny_project, first_repro):
    import pandas as pd

    result = json.loads((tiny_project / "results/ablate/twolayer/lr=1000.0.json").read_text())
    assert [s["diverged"] for s in result["seeds"]] == [True, True]
    assert all(s["test_acc"] is None and s["diverged_epoch"] >= 1 for s in result["seeds"])
    summary = pd.read_csv(tiny_project / "results/evaluate/ablation_summary.csv")
    (row,) = summary[(summary.param == "lr") & (summary.value == 1000.0)].itertuples()
    assert row.n_diverged == 2 and pd.isna(row.test_acc_mean)
    report = (tiny_project / "report/report.md").read_text()
    lr_table = {r[0]: r[1] for r in sweep_table(report, "### two-layer network: `lr`")}
    assert lr_table["1000"] == "all seeds diverged"


def test_the_report_holds_every_section_valid_figures_and_the_evaluate_numbers(tiny_project, first_repro):
    import pandas as pd

    from scratchnet.study.report import PART_TITLES

    markdown = (tiny_project / "report/report.md").read_text()
    html = (tiny_project / "report/report.html").read_text()
    positions = [markdown.index(f"\n## {title}\n") for title in PART_TITLES.values()]
    assert positions == sorted(positions)
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert {Path(f).stem for f in figures} == {
        "reproduction",
        "fit",
        "curve_softmax",
        "curve_twolayer",
        "sweep_softmax_reg",
        "sweep_twolayer_hidden_dim",
        "sweep_twolayer_lr",
        "robust_softmax_reg",
        "robust_twolayer_hidden_dim",
        "robust_twolayer_lr",
        "attack_original",
        "attack_adversarial",
        "attack_difference",
        "attack_success_vs_epsilon",
    }
    for rel in figures:
        with Image.open(tiny_project / "report" / rel) as image:
            assert image.format == "PNG"
            image.verify()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|<link\b|<script\b""", html, re.I)
    summary = pd.read_csv(tiny_project / "results/evaluate/ablation_summary.csv")
    names = {"softmax": "softmax classifier", "twolayer": "two-layer network"}
    for (model, param), sweep in summary.groupby(["model", "param"], sort=False):
        rows = {r[0].replace(" (baseline)", ""): r for r in sweep_table(markdown, f"### {names[model]}: `{param}`")}
        for row in sweep.itertuples():
            expected = (
                "all seeds diverged"
                if pd.isna(row.test_acc_mean)
                else f"{row.test_acc_mean:.4f} ± {row.test_acc_std:.4f}"
            )
            assert rows[f"{float(row.value):g}"][1] == expected


def test_dvc_metrics_show_lists_the_headline_numbers(tiny_project, first_repro):
    shown = json.loads(run(dvc("metrics", "show", "--json"), tiny_project).stdout)
    data = shown[""]["data"]
    study = data["metrics/study.json"]["data"]
    for model in ("softmax", "twolayer"):
        run_ = json.loads((tiny_project / f"results/train/{model}/run.json").read_text())
        assert study["acc"][model] == round(run_["seeds"][0]["test_acc"], 4)
    # the distance from the study over the entries the tiny study shares with it (its exact
    # numbers: tests/test_report.py); 3 sweeps, so at most 3 agree
    assert set(study) == {"acc", "gap", "agree"} and study["gap"] >= 0 and study["agree"] in (0, 1, 2, 3)
    # the attack's targeted success at the study's budget (L2 91), as its sweep measured it
    with (tiny_project / "results/attack/sweep.csv").open() as f:
        (at_91,) = [
            r for r in csv.DictReader(f) if (r["norm"], float(r["epsilon"]), r["mode"]) == ("l2", 91.0, "targeted")
        ]
    assert data["metrics/attack.json"]["data"] == {"fooled": round(float(at_91["success_rate"]), 4)}


def test_dvc_metrics_show_fits_a_terminal(tiny_project, first_repro):
    lines = run(dvc("metrics", "show"), tiny_project).stdout.strip().splitlines()
    assert len(lines) == 3, lines  # header, study, attack
    assert max(len(line) for line in lines) <= 120, "\n".join(lines)


def test_every_training_run_is_an_mlflow_run_with_params_and_epoch_metrics(tiny_project, first_repro):
    client, runs = mlflow_runs(tiny_project)
    training = [r for r in runs if r.data.tags.get("scratchnet.stage") in ("train", "ablate")]
    # 2 baselines + 5 ablation entries x 2 seeds, less each model's seed-0 ablation baseline: in
    # the tiny study it is the train stage's run (same config, seed, epochs), logged once
    assert len(training) == 2 + 5 * 2 - 2
    for r in training:
        assert {"lr", "lr_decay", "batch_size", "reg", "epochs", "seed"} <= set(r.data.params)
        assert r.data.tags["scratchnet.git_commit"] != "unknown"
        assert "scratchnet.dataset_sha256" in r.data.tags
        diverged = r.data.tags["scratchnet.diverged"] == "true"
        assert ("test_acc" in r.data.metrics) != diverged
        if not diverged:
            assert [m.step for m in client.get_metric_history(r.info.run_id, "val_acc")] == [1, 2]
    # each value's runs sit under their sweep's parent; the baselines under none, but in every
    # sweep they centre (one query finds a sweep with its baseline)
    values = [r for r in training if r.data.tags["scratchnet.entry"] != "baseline"]
    sweep_of = {r.data.tags["mlflow.parentRunId"]: r.data.tags["scratchnet.sweep"] for r in values}
    assert sorted(sweep_of.values()) == ["softmax.reg", "twolayer.hidden_dim", "twolayer.lr"]
    lr_sweep = client.search_runs([runs[0].info.experiment_id], "tags.`scratchnet.in_sweep.twolayer.lr` = 'true'")
    assert sorted(r.data.tags["scratchnet.entry"] for r in lr_sweep) == [
        "baseline",
        "baseline",
        "lr=1000.0",
        "lr=1000.0",
    ]


def test_the_attack_is_an_mlflow_run_with_its_figures(tiny_project, first_repro):
    client, runs = mlflow_runs(tiny_project)
    (attack,) = [r for r in runs if r.data.tags.get("scratchnet.stage") == "attack"]
    assert {"example.l2", "targeted.linf.success_eps_16"} <= set(attack.data.metrics)
    logged = {f.path for f in client.list_artifacts(attack.info.run_id, "attack")}
    assert {"attack/original.png", "attack/adversarial.png", "attack/difference.png"} <= logged


def test_the_baselines_are_mlflow_models_that_predict_from_images(tiny_project, first_repro, monkeypatch):
    import mlflow.pyfunc

    client, runs = mlflow_runs(tiny_project)
    (run_,) = [
        r
        for r in runs
        if r.data.tags.get("scratchnet.stage") == "train" and r.data.tags["scratchnet.model"] == "twolayer"
    ]
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: monkeypatch restores both
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tiny_project / 'mlflow.db'}")
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.chdir(tiny_project)  # the local artifact store is relative to the project
    model = mlflow.pyfunc.load_model(f"runs:/{run_.info.run_id}/model")
    images, _ = one_test_image_per_class(tiny_project)
    predicted = model.predict(images)
    # the library's own prediction from the saved network: scaling and class order included
    from scratchnet.nn import load_model

    expected = load_model(tiny_project / "models/twolayer.npz").predict(images.reshape(len(images), -1))
    assert len(set(expected)) > len(CLASSES) // 2  # the colour-coded classes are learnt: varied answers
    assert list(predicted["label"]) == list(expected)
    assert list(predicted["class"]) == [CLASSES[i] for i in expected]
    assert len(predicted) == len(CLASSES)


def test_the_ablation_does_not_train_again_the_baselines_the_train_stage_trained(tiny_project, first_repro):
    # tiny study: train and ablate both run 2 epochs, so each model's seed-0 baseline is one run.
    # The first train stage trains both baselines side by side; the second finds its own cached.
    assert "baselines: 2 runs, 0 in the run cache" in first_repro.stdout
    assert "baselines: 2 runs, 2 in the run cache" in first_repro.stdout
    assert "sweep: 10 runs, 2 in the run cache" in first_repro.stdout
    trained = re.findall(r"^(\w+ \S+ seed \d): test accuracy", first_repro.stdout, re.M)
    assert len(trained) == 10 and trained.count("twolayer baseline seed 0") == 1


def test_a_second_repro_does_nothing(study_copy):
    again = run(dvc("repro"), study_copy)
    assert stages_run(again.stdout) == set()


def test_editing_one_ablation_value_reruns_only_that_run(study_copy):
    tiny_project = study_copy
    client, before = mlflow_runs(tiny_project)
    set_params(tiny_project, {"ablate": {"softmax": Replace({"reg": [0.05]})}})
    edited = run(dvc("repro"), tiny_project)
    assert stages_run(edited.stdout) == {"ablate", "evaluate", "report"}
    # the stage reruns, but only the new value's two seeds train: the rest is in the run cache
    assert "sweep: 10 runs, 8 in the run cache" in edited.stdout
    assert len(re.findall(r"^softmax reg=0.05 seed \d: test accuracy", edited.stdout, re.M)) == 2
    client, after = mlflow_runs(tiny_project)
    new = [r for r in after if r.info.run_id not in {b.info.run_id for b in before}]
    assert len(new) == 2  # one per seed; the value joins its sweep's existing parent run
    old_parents = {
        r.data.tags.get("mlflow.parentRunId") for r in before if r.data.tags.get("scratchnet.sweep") == "softmax.reg"
    }
    assert {r.data.tags["mlflow.parentRunId"] for r in new} <= old_parents
    summary = (tiny_project / "results/evaluate/ablation_summary.csv").read_text()
    assert "reg,0.05" in summary and "reg,0.01" not in summary
    assert "| 0.05 |" in (tiny_project / "report/report.md").read_text()  # the report rebuilt itself


def test_a_changed_baseline_param_reruns_what_depends_on_it(study_copy):
    set_params(study_copy, {"twolayer": {"lr": 0.02}})
    edited = run(dvc("repro"), study_copy)
    assert stages_run(edited.stdout) == {"train@twolayer", "ablate", "evaluate", "attack", "report"}


@pytest.mark.timeout(1800)  # a hang guard; the dead server's failure is immediate (no retries)
def test_runs_go_to_a_tracking_server_and_a_dead_server_fails_the_next_stage_at_once(study_copy, tmp_path):
    project = study_copy
    _, local_before = mlflow_runs(project)
    server_folder = tmp_path / "server"
    server_folder.mkdir()
    with mlflow_server(server_folder, env=environment()) as server:
        uri = server.uri
        env = environment(MLFLOW_TRACKING_URI=uri)
        run(dvc("repro", "--force", "--single-item", "train@softmax"), project, env=env)

        request = urllib.request.Request(uri + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=scratchnet")
        experiment = json.load(urllib.request.urlopen(request, timeout=60))["experiment"]
        body = json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode()
        request = urllib.request.Request(
            uri + "/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}
        )
        (found,) = json.load(urllib.request.urlopen(request, timeout=60))["runs"]
        tags = {t["key"]: t["value"] for t in found["data"]["tags"]}
        assert tags["scratchnet.model"] == "softmax"
        assert {m["key"] for m in found["data"]["metrics"]} >= {"train_acc", "val_acc", "loss", "lr", "test_acc"}
    _, local_after = mlflow_runs(project)
    assert len(local_after) == len(local_before)  # the server got the run, the local store nothing

    # the server is gone: the next stage fails naming it (at once: the hang guard above)
    dead = run(dvc("repro", "--force", "--single-item", "train@twolayer"), project, env=env, check=False)
    assert dead.returncode != 0
    assert f"MLflow tracking server {uri}" in dead.stderr + dead.stdout
    assert "unreachable" in dead.stderr + dead.stdout
    assert not (project / "models" / "twolayer.npz").exists()


def test_dvc_plots_show_titles_the_curves_and_every_sweep_and_draws_them_with_the_templates(tiny_project, first_repro):
    shown = json.loads(run(dvc("plots", "show", "--json"), tiny_project).stdout)["data"]
    sweeps = {f"results/evaluate/sweeps/{name}.json" for name in ("softmax.reg", "twolayer.hidden_dim", "twolayer.lr")}
    assert set(shown) == sweeps | {
        "Softmax baseline, accuracy per epoch",
        "Two-layer baseline, accuracy per epoch",
        "Attack on the two-layer net: success vs L2 epsilon",
        "Attack on the two-layer net: success vs L∞ epsilon",
    }
    # each sweep drawn by the repository's templates (.dvc/plots), titled from its file name
    (reg,) = shown["results/evaluate/sweeps/softmax.reg.json"]
    spec = reg["content"]
    (sweep,) = [p["expr"] for p in spec["params"] if p["name"] == "sweep"]  # the title names it
    assert "results/evaluate/sweeps/softmax.reg.json" in sweep and "sweep" in spec["title"]["text"]["expr"]
    axes = [
        layer["encoding"]["x"]["scale"]
        for layer in spec["layer"]
        if "x" in layer["encoding"] and "scale" in layer["encoding"]["x"]
    ]
    assert axes and all(a["type"] == "log" for a in axes)  # from the smallest value, not from 0
    rows = {row["value"]: row for row in spec["data"]["values"]}
    assert rows.pop(0.0)["is_baseline"] is True and rows and all(r["is_baseline"] is False for r in rows.values())
    filters = [t["filter"] for t in spec["transform"] if "filter" in t]
    assert any("isValid(datum.mean)" in f for f in filters)  # a diverged value is not drawn as 0
    means = [layer["encoding"]["y"] for layer in spec["layer"] if layer["encoding"].get("y", {}).get("field") == "mean"]
    assert means and all(y["scale"]["zero"] for y in means)  # noise is not zoomed into a trend
    assert any(layer["mark"].get("shape") == "diamond" for layer in spec["layer"])  # the baseline
    (success,) = shown["Attack on the two-layer net: success vs L2 epsilon"]
    assert success["content"]["encoding"]["y"]["scale"]["domain"] == [0, 1]
    curve = shown["Two-layer baseline, accuracy per epoch"][0]["content"]["data"]["values"]
    assert {row["field"] for row in curve} == {"train_acc", "val_acc"}


def test_dvc_exp_run_with_a_set_param_reruns_only_what_it_feeds(study_copy):
    exp = run(dvc("exp", "run", "-S", "fit.steps=30"), study_copy)
    assert stages_run(exp.stdout) == {"fit", "report"}
    shown = json.loads(run(dvc("exp", "show", "--json"), study_copy).stdout)
    experiments = [
        rev["data"]["params"]["params.yaml"]["data"]
        for row in shown
        for exp_ in (row.get("experiments") or [])
        for rev in exp_["revs"]
    ]
    assert [p["fit"]["steps"] for p in experiments] == [30]


def test_runs_missing_from_mlflow_are_logged_again_from_the_run_cache_without_training(study_copy):
    # A new, empty store (as after deleting mlflow.db): every run of the sweep is missing from it.
    store = study_copy / "fresh.db"
    env = environment(MLFLOW_TRACKING_URI=f"sqlite:///{store}")
    for _ in (1, 2):  # the second repro logs nothing again
        again = run(dvc("repro", "-f", "-s", "ablate"), study_copy, env=env)  # ablate alone
        assert "sweep: 10 runs, 10 in the run cache" in again.stdout  # nothing trained
        _, runs = mlflow_runs(study_copy, store)
        ablation = [r for r in runs if r.data.tags.get("scratchnet.stage") == "ablate"]
        # logged once each, and not again by the second repro: logging is idempotent
        assert len(ablation) == 10 and len({r.data.tags["scratchnet.run_key"] for r in ablation}) == 10
