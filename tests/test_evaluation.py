"""The evaluate stage's tables: mean ± std over seeds, the baseline as every sweep's centre row."""

import dataclasses
import math
import re

import pytest

from scratchnet.errors import MissingInputError
from scratchnet.files import write_json
from scratchnet.study import evaluation, layout
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
                    "diverged_epoch": 3 if a is None else None, "history": [],
                    "key": f"{model}-{entry}-{s}"} for s, a in enumerate(accs)]
        write_json(tmp_path / layout.ablate_run(model, entry), {
            "model": model, "run": entry, "param": param if raw else None,
            "value": float(raw) if raw else None, "seeds": records})
    return params, evaluation.ablation_results(params, tmp_path)


def test_one_row_per_seed_with_its_run_key(study):
    params, results = study
    runs = evaluation.runs_frame(results)
    assert len(runs) == 10
    assert set(runs.key) == {f"{m}-{e}-{s}" for (m, e) in ACCS for s in (0, 1)}


def test_the_baseline_is_the_centre_row_of_every_sweep_of_its_model(study):
    params, results = study
    softmax = evaluation.summarize(params, results)["softmax"]
    assert [(p, r.value, r.is_baseline) for p, rows in softmax.items() for r in rows] == [
        ("reg", 0.0, True), ("reg", 0.1, False),
        ("lr", 0.005, True), ("lr", 0.01, False),
    ]
    base = softmax["reg"][0]
    assert base.mean == pytest.approx(0.41)
    assert base.std == pytest.approx(math.sqrt(2) * 0.01)  # sample std of 0.40, 0.42
    assert base.run_ids == ("softmax-baseline-0", "softmax-baseline-1")
    # the same row without a sweep (no swept value)
    assert evaluation.baseline_row(results["softmax"]["baseline"]) == dataclasses.replace(base, value=None)


def test_diverged_seeds_are_counted_and_left_out_of_the_mean(study):
    params, results = study
    summary = evaluation.summarize(params, results)
    lr = summary["softmax"]["lr"][1]
    assert (lr.n_seeds, lr.n_diverged, lr.mean, lr.std) == (2, 1, 0.41, 0.0)
    hidden = summary["twolayer"]["hidden_dim"][0]  # 50 sorts before the baseline's 100
    assert (hidden.value, hidden.n_diverged, hidden.mean, hidden.std) == (50, 2, None, None)


def test_the_markdown_tables_say_all_seeds_diverged_where_there_is_no_mean(study):
    params, results = study
    tables = evaluation.markdown_tables(evaluation.summarize(params, results))
    hidden = tables[tables.index("### twolayer: hidden_dim"):]
    assert re.search(r"\| 50 +\| all seeds diverged +\| +2 \| +2 \|", hidden)
    assert re.search(r"\| 100 \(baseline\) +\| 0.5100 ± 0.0141 ", hidden)


def test_the_summary_reads_back_from_json_exactly_as_computed(study):
    params, results = study
    summary = evaluation.summarize(params, results)
    assert evaluation.summary_from_json(evaluation.summary_to_json(summary)) == summary


def test_the_summary_csv_keeps_full_precision_and_writes_a_diverged_mean_as_empty(study, tmp_path):
    params, results = study
    path = tmp_path / "summary.csv"
    evaluation.summary_frame(evaluation.summarize(params, results)).to_csv(path, index=False)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(evaluation.SUMMARY_COLUMNS)
    base = evaluation.summarize(params, results)["softmax"]["reg"][0]
    assert lines[1].startswith(f"softmax,reg,0.0,True,2,{base.mean!r},{base.std!r},0.4,0.42,0,")
    assert any(line.startswith("twolayer,hidden_dim,50.0,False,2,,,,,2,") for line in lines)


@pytest.mark.parametrize("mean, std, text", [(0.8916666666666666, 0.014433756729740658, "0.8917 ± 0.0144"),
                                             (0.41, None, "0.4100 ± 0.0000"), (None, None, "all seeds diverged")])
def test_mean_and_std_print_rounded_for_people(mean, std, text):
    assert evaluation.mean_std_text(mean, std) == text


def test_a_missing_run_result_names_the_file_and_the_fix(study, tmp_path):
    params, _ = study
    params["ablate"]["softmax"]["reg"].append(0.5)
    with pytest.raises(MissingInputError, match=r"results/ablate/softmax/reg=0.5.json is missing; run its stage"):
        evaluation.ablation_results(params, tmp_path)
