"""Which choices make the network harder to fool? Each sweep's robustness in evaluate's summary
(analysis.robustness_of: targeted attack success at the budget and the median fooling budget,
mean ± std over seeds, judged by the accuracy tables' noise rule), its sentence, the ranking of
sweeps, the report's section, the glance's attack example and the `dvc plots` rows.

Synthetic numbers throughout: records as the train and ablate stages write them (BRIEF contract
1, `robustness` {n, targeted, untargeted, median_budget} or None), a project from
tests/test_report.py's make_project with robustness added to its runs.
"""

from __future__ import annotations

import contextlib
import json
import runpy
import statistics
import sys
from pathlib import Path

import pytest
from report_reading import section_text, sweep_table
from test_report import PROJECT, make_project

from scratchnet.files import read_json, write_json
from scratchnet.study import evaluation, layout
from scratchnet.study.analysis import Effect, Robustness, judge, robustness_of, robustness_ranking, row_of
from scratchnet.study.evaluation import mean_std_text
from scratchnet.study.plots.dvc_data import write_sweep_plots
from scratchnet.study.report import PART_TITLES, build_report
from scratchnet.study.report.robustness import effect_phrase, finding_words, robustness_sentence

OFFSETS = (-0.01, 0.0, 0.01)  # per seed: sample std exactly 0.01, so the noise is 2 × 0.01


def records(
    acc: float | None, fooled: float | None, budget: float | None = 90.0, *, measured=True, offsets=OFFSETS, diverged=()
) -> list[dict]:
    """One value's seeds: test accuracy acc + offset, targeted success fooled + offset."""
    return [
        {
            "seed": s,
            "diverged": s in diverged,
            "diverged_epoch": 2 if s in diverged else None,
            "test_acc": None if s in diverged else acc + o,
            "robustness": None
            if not measured or s in diverged
            else {
                "n": 100,
                "targeted": None if fooled is None else fooled + o,
                "untargeted": 0.9,
                "median_budget": None if budget is None else budget + 1000 * o,
            },
        }
        for s, o in enumerate(offsets)
    ]


def sweep(*values: tuple) -> Robustness | None:
    """values: (value, is_baseline, its seeds' records); the first is the baseline."""
    rows = [row_of(v, rs, base) for v, base, rs in values]
    return robustness_of(rows, judge(rows).noise, [rs for *_, rs in values])


def base(fooled=0.5, acc=0.41, **kw):
    return (1.0, True, records(acc, fooled, **kw))


# ----------------------------------------------------------------------------- the summary's rows


def test_robustness_rows_are_mean_and_sample_std_over_the_measured_seeds_by_hand():
    r = sweep(base(), (10.0, False, records(0.40, 0.30, 80.0, diverged=(2,))))
    fooled, budget = r.fooled[1], r.budget[1]
    assert fooled.mean == pytest.approx(statistics.fmean([0.29, 0.30]))
    assert fooled.std == pytest.approx(statistics.stdev([0.29, 0.30]))
    assert (fooled.n_seeds, fooled.n_converged) == (3, 2)
    assert budget.mean == pytest.approx(statistics.fmean([70.0, 80.0]))
    assert budget.std == pytest.approx(statistics.stdev([70.0, 80.0]))
    # the spread and its noise: the accuracy tables' rule (judge) on the targeted rows
    assert r.verdict == judge(r.fooled) and r.verdict.spread == pytest.approx(0.5 - 0.295)
    pooled = ((2 * 0.01**2 + 1 * statistics.stdev([0.29, 0.30]) ** 2) / 3) ** 0.5
    assert r.verdict.noise == pytest.approx(2 * pooled)


def test_a_median_budget_that_no_seed_reached_is_none_not_zero():
    r = sweep(base(), (10.0, False, records(0.40, 0.30, None)))
    assert r.budget[1].mean is None and r.budget[0].mean == pytest.approx(90.0)


# ------------------------------------------------------------------------- the sentence's branches


def test_runs_without_robustness_are_not_measured():
    r = sweep((1.0, True, records(0.41, 0.5, measured=False)), (10.0, False, records(0.40, 0.3, measured=False)))
    assert r is None and finding_words(r) == "not measured"
    assert robustness_sentence("lr", r, 2.0).startswith("**Not measured**: the runs of this sweep carry no robustness")


def test_a_sweep_whose_every_run_diverged_is_all_diverged():
    r = sweep((1.0, True, records(0.4, 0.5, diverged=(0, 1, 2))), (10.0, False, records(0.4, 0.5, diverged=(0, 1, 2))))
    assert r.finding == "all diverged"
    assert robustness_sentence("lr", r, 2.0) == (
        "**All diverged**: every run of this sweep diverged, so there is no network to attack."
    )


def test_differences_within_twice_the_pooled_std_are_within_noise():
    r = sweep(base(), (10.0, False, records(0.30, 0.515)))  # 1.5 pt, noise 2 pt; accuracy falls 11 pt
    assert r.finding == "within noise" and r.effects == [Effect(10.0, -1, 0)]
    assert robustness_sentence("lr", r, 2.0) == (
        "**Within noise**: targeted success spans 0.0150 across the values of `lr`, not more than 2 × the pooled "
        "seed std (2 × 0.0100 = 0.0200); no value of `lr` makes the network harder or easier to fool beyond seed "
        "noise."
    )


def test_a_value_fooled_less_often_is_more_robust_and_says_what_accuracy_it_costs():
    r = sweep(base(), (10.0, False, records(0.30, 0.20)), (0.1, False, records(0.41, 0.49)))
    assert r.finding == "more robust" and finding_words(r) == "harder to fool"
    assert r.effects == [Effect(10.0, -1, -1), Effect(0.1, 0, 0)]  # row order: 1.0 (baseline), 10, 0.1 as given
    assert robustness_sentence("lr", r, 2.0) == (
        "**Harder to fool**: targeted success spans 0.3000, more than 2 × the pooled seed std (2 × 0.0100 = "
        "0.0200). Against the baseline: `lr=10`: trades accuracy for robustness; `lr=0.1`: changes neither "
        "beyond noise."
    )


def test_a_value_fooled_more_often_is_less_robust():
    r = sweep(base(), (10.0, False, records(0.41, 0.80)), (100.0, False, records(0.45, 0.85)))
    assert r.finding == "less robust" and finding_words(r) == "easier to fool"
    assert robustness_sentence("lr", r, 2.0).endswith(
        "Against the baseline: `lr=10`: easier to fool at no gain in accuracy; `lr=100`: trades robustness for "
        "accuracy."
    )


def test_values_on_both_sides_of_the_baseline_are_named_on_both_sides():
    r = sweep(base(), (10.0, False, records(0.41, 0.20)), (100.0, False, records(0.41, 0.80)))
    assert r.finding == "both" and finding_words(r) == "harder to fool at some values, easier at others"


def test_one_seed_per_value_makes_no_claim():
    r = sweep(base(offsets=(0.0,)), (10.0, False, records(0.41, 0.2, offsets=(0.0,))))
    assert r.finding == "no claim" and r.effects == [Effect(10.0, None, None)]
    assert "no seed-to-seed noise estimate, so no claim is made" in robustness_sentence("lr", r, 2.0)


@pytest.mark.parametrize(
    "fooled, accuracy, phrase",
    [
        (-1, -1, "trades accuracy for robustness"),
        (-1, 0, "harder to fool at no cost in accuracy"),
        (-1, 1, "harder to fool and more accurate"),
        (1, 1, "trades robustness for accuracy"),
        (1, 0, "easier to fool at no gain in accuracy"),
        (1, -1, "easier to fool and less accurate"),
        (0, 0, "changes neither beyond noise"),
        (0, 1, "changes accuracy only"),
        (None, 0, "no claim"),
    ],
)
def test_each_value_is_named_by_what_it_does_to_robustness_and_to_accuracy(fooled, accuracy, phrase):
    assert effect_phrase(Effect(1.0, accuracy, fooled)) == phrase


# --------------------------------------------------------------------------------------- ranking


def test_sweeps_rank_beyond_noise_first_then_by_spread_leaving_out_the_unmeasured():
    small = sweep(base(), (10.0, False, records(0.41, 0.30)))  # spread 0.2, beyond
    large = sweep(base(), (10.0, False, records(0.41, 0.90)))  # spread 0.4, beyond
    within = sweep(base(), (10.0, False, records(0.41, 0.51)))  # spread 0.01, within
    diverged = sweep((1.0, True, records(0.4, 0.5, diverged=(0, 1, 2))))
    assert robustness_ranking(
        [
            ("m", "within", within),
            ("m", "small", small),
            ("m", "none", None),
            ("m", "diverged", diverged),
            ("m", "large", large),
        ]
    ) == [("m", "large"), ("m", "small"), ("m", "within")]


# ---------------------------------------------------------------- the project: summary and report

FOOLED = {  # (model, entry) -> mean targeted success; each seed adds -NOISE, 0, +NOISE as for accuracy
    ("softmax", "baseline"): 0.50,
    ("softmax", "reg=0.001"): 0.501,
    ("softmax", "reg=0.1"): 0.30,
    ("softmax", "lr=0.001"): 0.70,
    ("softmax", "lr=0.05"): 0.20,
    ("twolayer", "baseline"): 0.60,
    ("twolayer", "hidden_dim=50"): 0.602,
    ("twolayer", "hidden_dim=200"): 0.598,
}


def with_robustness(root: Path) -> None:
    """Adds each run's robustness to make_project's results and reruns the evaluate stage."""
    for (model, entry), fooled in FOOLED.items():
        path = root / layout.ablate_run(model, entry)
        result = read_json(path)
        for rec in result["seeds"]:
            offset = (rec["seed"] - 1) * 0.004
            rec["robustness"] = (
                None
                if rec["diverged"]
                else {"n": 100, "targeted": fooled + offset, "untargeted": 0.9, "median_budget": 91.0 + 100 * offset}
            )
        write_json(path, result)
    argv = sys.argv
    with contextlib.chdir(root):
        sys.argv = ["pipeline/evaluate.py"]
        try:
            runpy.run_path(str(PROJECT / "pipeline" / "evaluate.py"), run_name="__main__")
        finally:
            sys.argv = argv


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    make_project(root)
    with_robustness(root)
    return root, build_report(root)


def test_the_summary_holds_each_sweeps_robustness_as_computed_by_hand(measured):
    root, report = measured
    summary = evaluation.summary_from_json(read_json(root / layout.ABLATION_SUMMARY_JSON))
    assert summary == report.summary
    reg = summary.models["softmax"].sweeps["reg"].robustness
    assert [r.value for r in reg.fooled] == [0.0, 0.001, 0.1]  # the accuracy rows' order (baseline reg = 0)
    assert reg.fooled[2].mean == pytest.approx(0.30) and reg.fooled[2].std == pytest.approx(0.004)
    assert reg.budget[0].mean == pytest.approx(91.0) and reg.budget[0].std == pytest.approx(0.4)
    lr = summary.models["softmax"].sweeps["lr"].robustness
    assert lr.fooled[-1].mean == pytest.approx(statistics.fmean([0.196, 0.204]))  # seed 1 diverged
    assert [reg.finding, lr.finding, summary.models["twolayer"].sweeps["hidden_dim"].robustness.finding] == [
        "more robust",
        "both",
        "within noise",
    ]
    assert summary.robustness_ranking == [("softmax", "lr"), ("softmax", "reg"), ("twolayer", "hidden_dim")]


def test_the_section_agrees_word_for_word_with_the_summary(measured):
    _, report = measured
    summary, title = report.summary, PART_TITLES["robustness"]
    text = section_text(report.markdown, f"## {title}")
    ranking = sweep_table(
        report.markdown, "**Sweeps by how much they move targeted success** (beyond noise first, then by spread):"
    )
    assert [(r[0], r[1]) for r in ranking] == [
        (str(i), f"{m} `{p}`") for i, (m, p) in enumerate(summary.robustness_ranking, 1)
    ]
    for model, s in summary.sweeps():
        r, m = s.robustness, summary.models[model]
        row = next(x for x in ranking if x[1] == f"{model} `{s.param}`")
        assert row[2] == f"{r.verdict.spread:.4f}" and row[3] == finding_words(r)
        sub = section_text(text, f"### {m.title}: `{s.param}`")
        assert robustness_sentence(s.param, r, summary.noise_factor) in sub
        assert sub.count(f"**{finding_words(r).capitalize()}**") == 1
        table = sweep_table(
            sub, sub.splitlines()[[i for i, line in enumerate(sub.splitlines()) if line.startswith("**")][0]]
        )
        assert [c[2] for c in table] == [mean_std_text(f.mean, f.std) for f in r.fooled]
        assert [c[5] for c in table if c[5] != "baseline"] == [effect_phrase(e) for e in r.effects]
    assert "`reg=0.1`: harder to fool at no cost in accuracy" in text
    assert {f"robust_{m}_{s.param}.png" for m, s in summary.sweeps()} <= {f.name for f in report.figures}


def test_without_robustness_the_report_says_it_was_not_measured(tmp_path):
    make_project(tmp_path)
    report = build_report(tmp_path)
    assert all(s.robustness is None for _, s in report.summary.sweeps()) and report.summary.robustness_ranking == []
    text = section_text(report.markdown, f"## {PART_TITLES['robustness']}")
    assert "**Robustness was not measured**" in text
    assert not [f for f in report.figures if f.name.startswith("robust_")]


def test_the_glance_states_the_share_fooled_and_the_first_fooled_image(measured):
    root, report = measured
    glance = section_text(report.markdown, f"## {PART_TITLES['glance']}")
    assert (
        "**Attack**: **16 of 40** correctly classified truck test images (40.0%) are fooled by one targeted "
        "L2 step of 91 toward automobile. The first, test image 11 (the first correctly classified one), goes "
        "from truck (p = 0.91) to automobile (p = 0.62). **The study's claim holds here** for some of them, "
        "not for every image."
    ) in glance
    part4 = section_text(report.markdown, f"## {PART_TITLES['attack']}")
    assert "**16 of 40** correctly classified truck test images (40.0%)" in part4
    assert "The image below is the first one fooled." in part4


def test_the_glance_names_the_studys_image_when_it_is_not_the_one_fooled(measured):
    from scratchnet.study.attack_study import example_sentence
    from scratchnet.study.report.sections import claim_sentence

    root, _ = measured
    shown = read_json(root / layout.ATTACK_EXAMPLE)
    first = {
        **shown["first_correct"],
        "index": 9002,
        "fooled": False,
        "pred_after": "truck",
        "probs_after": {**shown["probs_after"], "truck": 0.54},
    }
    record = {**shown, "index": 9010, "before": 2, "first_correct": first}
    assert example_sentence(record).endswith(
        "The study's image, the first correctly classified truck, test image 9002, is not fooled: truck (p = 0.54)."
    )
    assert claim_sentence({**record, "fooled_count": 0}) == (
        "**The study's claim does not hold here**: the step fools none of them."
    )
    assert claim_sentence({**record, "fooled_count": 40}) == "**The study's claim holds here** for every one of them."


# ------------------------------------------------------------------------------------ dvc plots


def test_the_plots_rows_carry_each_values_targeted_success(measured, tmp_path, monkeypatch):
    _, report = measured
    monkeypatch.chdir(tmp_path)
    write_sweep_plots(report.summary)
    rows = json.loads(layout.sweep_plot_data("softmax", "reg").read_text())
    fooled = report.summary.models["softmax"].sweeps["reg"].robustness.fooled
    assert [(r["value"], r["robust_targeted_mean"], r["robust_targeted_std"]) for r in rows] == [
        (f.value, f.mean, f.std) for f in fooled
    ]


def test_the_sweep_template_draws_accuracy_and_robustness_offline(measured, tmp_path, monkeypatch):
    """The template as DVC fills it for two y fields (dvc_render's datapoints: one per row and
    field, `field` naming it), compiled and drawn by the inlined Vega (vl-convert, no network)."""
    vl_convert = pytest.importorskip("vl_convert")
    _, report = measured
    monkeypatch.chdir(tmp_path)
    write_sweep_plots(report.summary)
    rows = json.loads(layout.sweep_plot_data("softmax", "reg").read_text())
    data = [
        {**r, "dvc_inferred_y_value": r[f], "field": f, "rev": "workspace"}
        for f in ("test_acc_mean", "robust_targeted_mean")
        for r in rows
    ]
    text = (PROJECT / ".dvc/plots/sweep.json").read_text()
    for anchor, value in (
        ("<DVC_METRIC_TITLE>", "results/evaluate/sweeps/softmax.reg.json"),
        ("<DVC_METRIC_X>", "value"),
        ("<DVC_METRIC_Y>", "dvc_inferred_y_value"),
        ("<DVC_METRIC_X_LABEL>", "x"),
        ("<DVC_METRIC_Y_LABEL>", "y"),
    ):
        text = text.replace(anchor, value)
    spec = json.loads(
        text.replace('"<DVC_METRIC_DATA>"', json.dumps(data))
        .replace('"<DVC_METRIC_PLOT_WIDTH>"', "300")
        .replace('"<DVC_METRIC_PLOT_HEIGHT>"', "300")
        .replace('"<DVC_METRIC_COLOR>"', "{}")
    )
    svg = vl_convert.vegalite_to_svg(spec)
    assert "targeted attack success" in svg and "test accuracy" in svg  # the two series' legend
