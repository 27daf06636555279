"""The evaluate stage's summary: mean ± std over seeds, the baseline as every sweep's centre row,
each verdict computed once and read back with its types."""

import copy
import json
import math
import re

import pytest

from scratchnet.errors import MissingInputError
from scratchnet.files import write_json
from scratchnet.study import evaluation, layout
from scratchnet.study.params import load_params
from scratchnet.study.reproduction import load_study

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
    params["ablate"].update(
        seeds=[0, 1], **copy.deepcopy(SWEEPS)
    )  # a test may add a value: never to the module's lists
    for (model, entry), accs in ACCS.items():
        param, _, raw = entry.partition("=")
        records = [
            {
                "key": f"{model}-{entry}-{s}",
                "seed": s,
                "test_acc": a,
                "final_val_acc": a,
                "diverged": a is None,
                "diverged_epoch": 3 if a is None else None,
                "history": [],
            }
            for s, a in enumerate(accs)
        ]
        write_json(
            tmp_path / layout.ablate_run(model, entry),
            {
                "model": model,
                "run": entry,
                "param": param if raw else None,
                "value": float(raw) if raw else None,
                "seeds": records,
            },
        )
    results = evaluation.ablation_results(params, tmp_path)
    train = {m: {"seeds": [{"test_acc": ACCS[(m, "baseline")][0]}]} for m in params["models"]}
    summary = evaluation.build_summary(params, results, train, load_study(layout.STUDY_NUMBERS, params["models"]))
    return params, results, summary


def test_one_row_per_seed_named_by_its_run_key(study):
    params, results, _ = study
    runs = evaluation.runs_frame(results)
    assert len(runs) == 10
    assert set(runs.key) == {f"{m}-{e}-{s}" for (m, e) in ACCS for s in (0, 1)}


def test_the_baseline_is_the_centre_row_of_every_sweep_of_its_model(study):
    params, results, summary = study
    softmax = summary.models["softmax"]
    assert [(p, r.value, r.is_baseline) for p, s in softmax.sweeps.items() for r in s.rows] == [
        ("reg", 0.0, True),
        ("reg", 0.1, False),
        ("lr", 0.005, True),
        ("lr", 0.01, False),
    ]
    base = softmax.sweeps["reg"].rows[0]
    assert base.mean == pytest.approx(0.41)
    assert base.std == pytest.approx(math.sqrt(2) * 0.01)  # sample std of 0.40, 0.42
    # the same row without a sweep (no swept value)
    assert (softmax.baseline.value, softmax.baseline.mean, softmax.baseline.std) == (None, base.mean, base.std)


def test_diverged_seeds_are_counted_and_left_out_of_the_mean(study):
    params, results, summary = study
    lr = summary.models["softmax"].sweeps["lr"].rows[1]
    assert (lr.n_seeds, lr.n_diverged, lr.mean, lr.std) == (2, 1, 0.41, 0.0)
    assert [(d.seed, d.epoch) for d in lr.diverged] == [(1, 3)]
    hidden = summary.models["twolayer"].sweeps["hidden_dim"].rows[0]  # 50 sorts before the baseline's 100
    assert (hidden.value, hidden.n_diverged, hidden.mean, hidden.std) == (50, 2, None, None)


def test_every_verdict_is_in_the_summary_with_the_noise_factor_applied_once(study):
    _, _, summary = study
    reg = summary.models["softmax"].sweeps["reg"]
    assert reg.verdict.best.value == 0.0 and reg.verdict.noise == pytest.approx(2 * reg.verdict.pooled_std)
    assert reg.verdict.within_noise is False  # 0.41 vs 0.32, seed std 0.014 / 0.028
    assert reg.study.best_agrees is False  # the study's best reg is 0.1, ours is 9 points lower there
    assert summary.models["softmax"].study_test_acc == 0.4107
    assert summary.distance.sweeps == 3 and summary.distance.untrained_sweeps[0].startswith("softmax `batch_size`")
    assert evaluation.headline_metrics(summary) == {
        "acc": {"softmax": 0.4, "twolayer": 0.5},
        "gap": round(summary.distance.mean_abs, 4),
        "agree": 1,
    }  # lr: 0.005 best in both


def test_the_markdown_tables_say_all_seeds_diverged_where_there_is_no_mean(study):
    params, results, summary = study
    tables = evaluation.markdown_tables(summary)
    hidden = tables[tables.index("### twolayer: hidden_dim") :]
    assert re.search(r"\| 50 +\| all seeds diverged +\| +2 \| +2 \|", hidden)
    assert re.search(r"\| 100 \(baseline\) +\| 0.5100 ± 0.0141 ", hidden)


def test_the_summary_reads_back_from_json_exactly_as_computed(study):
    _, _, summary = study
    data = json.loads(json.dumps(evaluation.summary_to_json(summary)))  # as evaluate writes it
    assert evaluation.summary_from_json(data) == summary


def test_the_summary_csv_keeps_full_precision_and_writes_a_diverged_mean_as_empty(study, tmp_path):
    _, _, summary = study
    path = tmp_path / "summary.csv"
    evaluation.summary_frame(summary).to_csv(path, index=False)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(evaluation.SUMMARY_COLUMNS)
    base = summary.models["softmax"].sweeps["reg"].rows[0]
    assert lines[1] == f"softmax,reg,0.0,True,2,{base.mean!r},{base.std!r},0"
    assert "twolayer,hidden_dim,50.0,False,2,,,2" in lines


@pytest.mark.parametrize(
    "mean, std, text",
    [
        (0.8916666666666666, 0.014433756729740658, "0.8917 ± 0.0144"),
        (0.41, None, "0.4100 ± 0.0000"),
        (None, None, "all seeds diverged"),
    ],
)
def test_mean_and_std_print_rounded_for_people(mean, std, text):
    assert evaluation.mean_std_text(mean, std) == text


def test_a_missing_run_result_names_the_file_and_the_fix(study, tmp_path):
    params = study[0]
    params["ablate"]["softmax"]["reg"].append(0.5)
    with pytest.raises(MissingInputError, match=r"results/ablate/softmax/reg=0.5.json is missing; run its stage"):
        evaluation.ablation_results(params, tmp_path)
