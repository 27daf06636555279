"""The evaluate stage's tables: mean ± std over seeds, the baseline as every sweep's centre row."""

import math

import pytest

from scratchnet.study import evaluation, layout
from scratchnet.files import write_json
from scratchnet.study.params import load_params

SWEEPS = {"softmax": {"reg": [0.1], "lr": [0.01]}, "twolayer": {"hidden_dim": [50]}}
ACCS = {  # (model, entry) -> test accuracy per seed; None = diverged
    ("softmax", "baseline"): [0.40, 0.42],
    ("softmax", "reg=0.1"): [0.30, 0.34],
    ("softmax", "lr=0.01"): [0.41, None],
    ("twolayer", "baseline"): [0.50, 0.52],
    ("twolayer", "hidden_dim=50"): [None, None],
}


@pytest.fixture
def study(tmp_path):
    params = load_params("params.yaml")
    params["ablate"].update(seeds=[0, 1], **SWEEPS)
    for (model, entry), accs in ACCS.items():
        param, _, raw = entry.partition("=")
        records = [{"seed": s, "test_acc": a, "final_val_acc": a, "diverged": a is None,
                    "diverged_epoch": 3 if a is None else None, "history": [], "seconds": 1.0,
                    "mlflow_run_id": f"{model}-{entry}-{s}"} for s, a in enumerate(accs)]
        write_json(tmp_path / layout.ablate_run(model, entry), {
            "model": model, "run": entry, "param": param if raw else None,
            "value": float(raw) if raw else None, "seeds": records})
    return params, tmp_path


def test_one_row_per_seed_with_its_mlflow_run(study):
    params, root = study
    runs = evaluation.ablation_runs(params, root)
    assert len(runs) == 10
    assert set(runs.mlflow_run_id) == {f"{m}-{e}-{s}" for (m, e) in ACCS for s in (0, 1)}


def test_the_baseline_is_the_centre_row_of_every_sweep_of_its_model(study):
    params, root = study
    summary = evaluation.ablation_summary(params, evaluation.ablation_runs(params, root))
    softmax = summary[summary.model == "softmax"]
    assert list(zip(softmax.param, softmax.value, softmax.is_baseline)) == [
        ("reg", 0.0, True), ("reg", 0.1, False),
        ("lr", 0.005, True), ("lr", 0.01, False),
    ]
    base = softmax[softmax.is_baseline].iloc[0]
    assert base.test_acc_mean == pytest.approx(0.41)
    assert base.test_acc_std == pytest.approx(math.sqrt(2) * 0.01)  # sample std of 0.40, 0.42
    assert base.mlflow_run_ids == "softmax-baseline-0;softmax-baseline-1"


def test_diverged_seeds_are_counted_and_left_out_of_the_mean(study):
    params, root = study
    summary = evaluation.ablation_summary(params, evaluation.ablation_runs(params, root))
    lr = summary[(summary.param == "lr") & ~summary.is_baseline].iloc[0]
    assert (lr.n_seeds, lr.n_diverged, lr.test_acc_mean, lr.test_acc_std) == (2, 1, 0.41, 0.0)
    hidden = summary[(summary.param == "hidden_dim") & ~summary.is_baseline].iloc[0]
    assert hidden.n_diverged == 2 and math.isnan(hidden.test_acc_mean)
    assert "| 50 " in evaluation.markdown_tables(summary) and "diverged" in evaluation.markdown_tables(summary)


def test_a_missing_run_result_names_the_file_and_the_fix(study):
    params, root = study
    params["ablate"]["softmax"]["reg"].append(0.5)
    with pytest.raises(FileNotFoundError, match=r"results/ablate/softmax/reg=0.5.json is missing; run its stage"):
        evaluation.ablation_runs(params, root)
