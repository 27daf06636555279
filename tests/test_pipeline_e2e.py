"""`dvc repro` runs the whole study, and every training run lands in MLflow.

These tests copy the project into a temporary folder, point `data.source` at a tiny
image-folder archive they build (10 classes, a few hundred images), shrink the study to a few
epochs and runs via params.yaml, and run the real `dvc repro`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from report_reading import sweep_table

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def tiny_image_folder_archive(path: Path, train_per_class: int = 30, test_per_class: int = 8) -> None:
    """train/<class>/*.png and test/<class>/*.png under one top folder; each class a colour,
    so a network learns it in two epochs and the attack has correctly classified images."""
    rng = np.random.default_rng(0)
    colours = rng.integers(30, 225, size=(len(CLASSES), 3))
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            for label, name in enumerate(CLASSES):
                for i in range(count):
                    noise = rng.normal(0, 25, size=(32, 32, 3))
                    pixels = np.clip(colours[label] + noise, 0, 255).astype(np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(pixels).save(buf, format="PNG")
                    info = tarfile.TarInfo(f"tiny-cifar/{split}/{name}/{i:04d}.png")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)


class Replace(dict):
    """An override that replaces the mapping it lands on instead of merging into it."""


TINY = {
    "data": {"source": "data/tiny.tar.gz", "timeout": 1},
    "preprocess": {"val_size": 40},
    "fit": {"steps": 20},
    "softmax": {"batch_size": 32},
    "twolayer": {"hidden_dim": 16, "batch_size": 32, "lr": 0.01},
    "train": {"epochs": {"softmax": 2, "twolayer": 2}},
    "ablate": {
        "seeds": [0, 1],
        "epochs": {"softmax": 2, "twolayer": 2},
        "softmax": Replace({"reg": [0.01]}),
        # lr=1000 diverges: its runs go through every stage as diverged (issue 17)
        "twolayer": Replace({"hidden_dim": [8], "lr": [1000.0]}),
    },
    "attack": {"sweep": {"sample_size": 20, "steps": 3,
                         "epsilons": {"linf": [0, 4, 16], "l2": [0, 200, 800]}}},
}


def merge(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, Replace):
            base[key] = dict(value)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def copy_project(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = PROJECT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def environment(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True, timeout: int = 900):
    result = subprocess.run(cmd, cwd=cwd, env=env or environment(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def stages_run(output: str) -> set[str]:
    """The stages that ran, apart from `source`: it runs every time (always_changed), hashing
    data.source's files in a second, so that fetch reruns when they change."""
    return set(re.findall(r"Running stage '([^']+)'", output)) - {"source"}


def set_params(project: Path, override: dict) -> None:
    path = project / "params.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), override), sort_keys=False))


def mlflow_runs(project: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("scratchnet")
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def test_dvc_repro_builds_every_output(tiny_project, first_repro):
    expected = ["data/raw/cifar10.npz", "data/raw/provenance.json", "data/processed/X_train.npy",
                "results/fit/fit.json", "models/softmax.npz", "models/twolayer.npz",
                "results/evaluate/ablation_summary.csv", "metrics/study.json",
                "results/attack/example.json", "report/report.md", "report/report.html"]
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
        "reproduction", "fit", "curve_softmax", "curve_twolayer", "sweep_softmax_reg", "sweep_twolayer_hidden_dim",
        "sweep_twolayer_lr", "robust_softmax_reg", "robust_twolayer_hidden_dim", "robust_twolayer_lr",
        "attack_original", "attack_adversarial", "attack_difference", "attack_success_vs_epsilon"}
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
            expected = ("all seeds diverged" if pd.isna(row.test_acc_mean)
                        else f"{row.test_acc_mean:.4f} ± {row.test_acc_std:.4f}")
            assert rows[f"{float(row.value):g}"][1] == expected


def test_dvc_metrics_show_lists_the_headline_numbers(tiny_project, first_repro):
    shown = json.loads(run([str(BIN / "dvc"), "metrics", "show", "--json"], tiny_project).stdout)
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
        (at_91,) = [r for r in csv.DictReader(f)
                    if (r["norm"], float(r["epsilon"]), r["mode"]) == ("l2", 91.0, "targeted")]
    assert data["metrics/attack.json"]["data"] == {"fooled": round(float(at_91["success_rate"]), 4)}


def test_dvc_metrics_show_fits_a_terminal(tiny_project, first_repro):
    lines = run([str(BIN / "dvc"), "metrics", "show"], tiny_project).stdout.strip().splitlines()
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
    lr_sweep = client.search_runs([runs[0].info.experiment_id],
                                  "tags.`scratchnet.in_sweep.twolayer.lr` = 'true'")
    assert sorted(r.data.tags["scratchnet.entry"] for r in lr_sweep) == [
        "baseline", "baseline", "lr=1000.0", "lr=1000.0"]


def test_the_attack_is_an_mlflow_run_with_its_figures(tiny_project, first_repro):
    client, runs = mlflow_runs(tiny_project)
    (attack,) = [r for r in runs if r.data.tags.get("scratchnet.stage") == "attack"]
    assert {"example.l2", "targeted.linf.success_eps_16"} <= set(attack.data.metrics)
    logged = {f.path for f in client.list_artifacts(attack.info.run_id, "attack")}
    assert {"attack/original.png", "attack/adversarial.png", "attack/difference.png"} <= logged


def test_the_baselines_are_mlflow_models_that_predict_from_images(tiny_project, first_repro):
    import mlflow.pyfunc

    client, runs = mlflow_runs(tiny_project)
    (run_,) = [r for r in runs if r.data.tags.get("scratchnet.stage") == "train"
               and r.data.tags["scratchnet.model"] == "twolayer"]
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    mlflow.set_tracking_uri(f"sqlite:///{tiny_project / 'mlflow.db'}")
    cwd = os.getcwd()
    os.chdir(tiny_project)  # the local artifact store is relative to the project
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{run_.info.run_id}/model")
        images = np.load(tiny_project / "data/raw/cifar10.npz")["x_test"][:5]
        predicted = model.predict(images)
    finally:
        os.chdir(cwd)
    # the library's own prediction from the saved network: scaling and class order included
    from scratchnet.nn import load_model

    expected = load_model(tiny_project / "models/twolayer.npz").predict(images.reshape(5, -1))
    assert list(predicted["label"]) == list(expected)
    assert list(predicted["class"]) == [CLASSES[i] for i in expected]
    assert len(predicted) == 5


def test_the_ablation_does_not_train_again_the_baselines_the_train_stage_trained(tiny_project, first_repro):
    # tiny study: train and ablate both run 2 epochs, so each model's seed-0 baseline is one run
    assert "sweep: 10 runs, 2 in the run cache" in first_repro.stdout
    trained = re.findall(r"^(\w+ \S+ seed \d): test accuracy", first_repro.stdout, re.M)
    assert len(trained) == 8 and "twolayer baseline seed 0" not in trained


def test_a_second_repro_does_nothing(tiny_project, first_repro):
    again = run([str(BIN / "dvc"), "repro"], tiny_project)
    assert stages_run(again.stdout) == set()


def test_editing_one_ablation_value_reruns_only_that_run(tiny_project, first_repro):
    client, before = mlflow_runs(tiny_project)
    set_params(tiny_project, {"ablate": {"softmax": Replace({"reg": [0.05]})}})
    edited = run([str(BIN / "dvc"), "repro"], tiny_project)
    assert stages_run(edited.stdout) == {"ablate", "evaluate", "report"}
    # the stage reruns, but only the new value's two seeds train: the rest is in the run cache
    assert "sweep: 10 runs, 8 in the run cache" in edited.stdout
    assert len(re.findall(r"^softmax reg=0.05 seed \d: test accuracy", edited.stdout, re.M)) == 2
    client, after = mlflow_runs(tiny_project)
    new = [r for r in after if r.info.run_id not in {b.info.run_id for b in before}]
    assert len(new) == 2  # one per seed; the value joins its sweep's existing parent run
    old_parents = {r.data.tags.get("mlflow.parentRunId") for r in before
                   if r.data.tags.get("scratchnet.sweep") == "softmax.reg"}
    assert {r.data.tags["mlflow.parentRunId"] for r in new} <= old_parents
    summary = (tiny_project / "results/evaluate/ablation_summary.csv").read_text()
    assert "reg,0.05" in summary and "reg,0.01" not in summary
    assert "| 0.05 |" in (tiny_project / "report/report.md").read_text()  # the report rebuilt itself


def test_a_changed_baseline_param_reruns_what_depends_on_it(tiny_project, first_repro):
    set_params(tiny_project, {"twolayer": {"lr": 0.02}})
    edited = run([str(BIN / "dvc"), "repro"], tiny_project)
    assert stages_run(edited.stdout) == {
        "train@twolayer", "ablate", "evaluate", "attack", "report",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not come up in {seconds} s")


def test_runs_go_to_a_tracking_server_and_a_dead_server_fails_the_next_stage_at_once(tmp_path):
    project = tmp_path / "study"
    project.mkdir()
    copy_project(project)
    tiny_image_folder_archive(project / "data" / "tiny.tar.gz", train_per_class=10, test_per_class=4)
    set_params(project, {**TINY, "preprocess": {"val_size": 20}})
    run(["git", "init", "-q"], project)

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        cwd=tmp_path, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(uri + "/health", 90)
        env = environment(MLFLOW_TRACKING_URI=uri)
        run([str(BIN / "dvc"), "repro", "train@softmax"], project, env=env)
        assert not (project / "mlflow.db").exists()

        request = urllib.request.Request(
            uri + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=scratchnet")
        experiment = json.load(urllib.request.urlopen(request, timeout=10))["experiment"]
        body = json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode()
        request = urllib.request.Request(uri + "/api/2.0/mlflow/runs/search", data=body,
                                         headers={"Content-Type": "application/json"})
        (found,) = json.load(urllib.request.urlopen(request, timeout=10))["runs"]
        tags = {t["key"]: t["value"] for t in found["data"]["tags"]}
        assert tags["scratchnet.model"] == "softmax"
        assert {m["key"] for m in found["data"]["metrics"]} >= {"train_acc", "val_acc", "loss", "lr", "test_acc"}
    finally:
        server.terminate()
        server.wait(timeout=30)

    started = time.monotonic()
    dead = run([str(BIN / "dvc"), "repro", "train@twolayer"], project, env=env, check=False)
    assert dead.returncode != 0
    assert f"MLflow tracking server {uri}" in dead.stderr + dead.stdout
    assert "unreachable" in dead.stderr + dead.stdout
    assert time.monotonic() - started < 60
    assert not (project / "models" / "twolayer.npz").exists()


def test_dvc_plots_show_titles_the_curves_and_every_sweep_and_draws_them_with_the_templates(tiny_project, first_repro):
    shown = json.loads(run([str(BIN / "dvc"), "plots", "show", "--json"], tiny_project).stdout)["data"]
    sweeps = {f"results/evaluate/sweeps/{name}.json" for name in ("softmax.reg", "twolayer.hidden_dim", "twolayer.lr")}
    assert set(shown) == sweeps | {
        "Softmax baseline, accuracy per epoch", "Two-layer baseline, accuracy per epoch",
        "Attack on the two-layer net: success vs L2 epsilon",
        "Attack on the two-layer net: success vs L∞ epsilon",
    }
    # each sweep drawn by the repository's templates (.dvc/plots), titled from its file name
    (reg,) = shown["results/evaluate/sweeps/softmax.reg.json"]
    spec = reg["content"]
    (sweep,) = [p["expr"] for p in spec["params"] if p["name"] == "sweep"]  # the title names it
    assert "results/evaluate/sweeps/softmax.reg.json" in sweep and "sweep" in spec["title"]["text"]["expr"]
    axes = [layer["encoding"]["x"]["scale"] for layer in spec["layer"] if "x" in layer["encoding"]
            and "scale" in layer["encoding"]["x"]]
    assert axes and all(a["type"] == "log" for a in axes)  # from the smallest value, not from 0
    rows = {row["value"]: row for row in spec["data"]["values"]}
    assert rows.pop(0.0)["is_baseline"] is True and rows and all(r["is_baseline"] is False for r in rows.values())
    filters = [t["filter"] for t in spec["transform"] if "filter" in t]
    assert any("isValid(datum.mean)" in f for f in filters)  # a diverged value is not drawn as 0
    means = [layer["encoding"]["y"] for layer in spec["layer"]
             if layer["encoding"].get("y", {}).get("field") == "mean"]
    assert means and all(y["scale"]["zero"] for y in means)  # noise is not zoomed into a trend
    assert any(layer["mark"].get("shape") == "diamond" for layer in spec["layer"])  # the baseline
    (success,) = shown["Attack on the two-layer net: success vs L2 epsilon"]
    assert success["content"]["encoding"]["y"]["scale"]["domain"] == [0, 1]
    curve = shown["Two-layer baseline, accuracy per epoch"][0]["content"]["data"]["values"]
    assert {row["field"] for row in curve} == {"train_acc", "val_acc"}


def test_dvc_exp_run_with_a_set_param_reruns_only_what_it_feeds(tiny_project, first_repro):
    exp = run([str(BIN / "dvc"), "exp", "run", "-S", "fit.steps=30"], tiny_project)
    # Not evaluate: results/ablate holds only the values params.yaml lists (the ablate stage
    # rewrites it whole), so the value an earlier test removed (reg=0.01) left nothing behind.
    assert stages_run(exp.stdout) == {"fit", "report"}
    shown = json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"], tiny_project).stdout)
    experiments = [rev["data"]["params"]["params.yaml"]["data"]
                   for row in shown for exp_ in (row.get("experiments") or []) for rev in exp_["revs"]]
    assert [p["fit"]["steps"] for p in experiments] == [30]


def test_runs_missing_from_mlflow_are_logged_again_from_the_run_cache_without_training(tiny_project, first_repro):
    # A new, empty store (as after deleting mlflow.db): every run of the sweep is missing from it.
    store = tiny_project / "fresh.db"
    env = environment(MLFLOW_TRACKING_URI=f"sqlite:///{store}")
    for attempt in (1, 2):
        again = run([str(BIN / "dvc"), "repro", "-f", "-s", "ablate"], tiny_project, env=env)  # ablate alone
        assert "sweep: 10 runs, 10 in the run cache" in again.stdout  # nothing trained
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{store}")
        experiment = client.get_experiment_by_name("scratchnet")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        ablation = [r for r in runs if r.data.tags.get("scratchnet.stage") == "ablate"]
        # logged once each, and not again by the second repro: logging is idempotent
        assert len(ablation) == 10 and len({r.data.tags["scratchnet.run_key"] for r in ablation}) == 10
