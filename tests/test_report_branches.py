"""Every branch of the report's wording (issue 23, item 4), on made-up summaries and artifacts.

Each test builds the few objects one sentence reads (rows, a comparison, a distance, the attack's
files) and calls the section function that renders it: no pipeline, no project on disk, and a
figure only where the branch lives in a section that draws one. Each asserts the exact sentence.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from scratchnet.study import layout
from scratchnet.study.analysis import SweepRow as Row
from scratchnet.study.analysis import judge
from scratchnet.study.evaluation import ModelSummary, Summary, Sweep
from scratchnet.study.params import load_params
from scratchnet.study.report import Attack, appendix, sections
from scratchnet.study.report.document import Bullets, Paragraph, Table
from scratchnet.study.reproduction import compare, distance

PROJECT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16  # enough for the report: it checks the signature only
STUDY_ATTACK = {"l2": 91}


def rows(means, values, std=0.01, n=3):
    return [Row(v, m, None if m is None else std, n, n if m is None else 0) for v, m in zip(values, means)]


def study_table(values, accs, conclusion=None):
    return {"rows": [{"value": v, "test_acc": a} for v, a in zip(values, accs)], "conclusion": conclusion}


def comparison(param, ours, table):
    return compare("softmax", param, ours, judge(ours), table)


def texts(blocks) -> list[str]:
    """Every paragraph's text and every bullet, in order."""
    out = []
    for b in blocks:
        out += [b.text] if isinstance(b, Paragraph) else b.items if isinstance(b, Bullets) else []
    return out


def model_summary(name="softmax", sweeps=None, study=None) -> ModelSummary:
    baseline = Row(None, 0.41, 0.004, 3, 0, True)
    return ModelSummary(
        name,
        "softmax classifier",
        "Part 2",
        0.41,
        baseline,
        None if study is None else 0.4107,
        None if study is None else -0.0007,
        0.008,
        None if study is None else True,
        sweeps or {},
        study,
    )


def summary(models, dist=None, study=None) -> Summary:
    return Summary(2.0, models, dist or distance([]), study or {"title": "The study", "attack": STUDY_ATTACK})


def artifacts(summ=None, attack=None, params=None, train=None, provenance=None, processed=None):
    return SimpleNamespace(
        params=params,
        summary=summ or summary({}),
        train=train or {},
        provenance=provenance or {},
        processed=processed or {},
        fit={},
        attack=attack or Attack(),
    )


# ------------------------------------------------------------------------- a sweep's section


def test_a_sweep_the_study_has_no_table_for_says_so():
    assert sections.study_sentences("momentum", None) == ["The study has no table for `momentum`."]


def test_values_only_the_study_ran_are_named_as_not_trained_here():
    ours = rows([0.41, 0.40], [0.001, 0.01])
    c = comparison("lr", ours, study_table([0.001, 0.01, 0.1], [0.41, 0.40, 0.30]))
    assert "The study also reported `lr=0.1` (0.3000), not trained here." in sections.study_sentences("lr", c)


def epochs(lrs, val=(0.30, 0.35, 0.40)):
    return [
        {"epoch": e, "loss": 2.0, "train_acc": v + 0.05, "val_acc": v, "lr": lr}
        for e, (v, lr) in enumerate(zip(val, lrs), 1)
    ]


def test_a_constant_learning_rate_is_said_to_stay_and_a_decaying_one_to_go_from_first_to_last():
    steady = sections.curve_sentences(epochs([0.005, 0.005, 0.005]), {"diverged": False})
    assert steady.endswith(" The learning rate stayed at 0.005.")
    decayed = sections.curve_sentences(epochs([0.005, 0.0045, 0.00405]), {"diverged": False})
    assert decayed.endswith(" The learning rate went from 0.005 to 0.00405.")


def test_a_baseline_that_diverged_after_some_epochs_shows_its_curve_and_the_epoch_it_diverged_in():
    text = sections.curve_sentences(epochs([0.005, 0.005]), {"diverged": True, "diverged_epoch": 3})
    assert text.startswith("After the last epoch (2) train accuracy is 0.4000 and validation accuracy 0.3500")
    assert text.endswith(" The learning rate stayed at 0.005. **The baseline run diverged** in epoch 3.")


def test_a_model_without_sweeps_says_no_ablation_sweep_is_configured():
    params = load_params(PROJECT / "params.yaml")
    config = {**params["softmax"], "epochs": params["train"]["epochs"]["softmax"]}
    record = {"seed": 0, "diverged": True, "diverged_epoch": 1, "history": []}  # no curve: no figure
    art = artifacts(
        summary({"softmax": model_summary()}), params=params, train={"softmax": {"config": config, "seeds": [record]}}
    )
    said = texts(sections.model_section(art, "softmax"))
    assert "No ablation sweep is configured for this model (`ablate` in params.yaml)." in said
    assert any(t.startswith("One hyper-parameter is changed from the baseline") for t in said)


# ---------------------------------------------------------------------------------- the attack


def success(rates, norm="l2", mode="targeted"):
    return [
        {"norm": norm, "mode": mode, "epsilon": float(e), "success_rate": r, "median_l2": None, "n": 100}
        for e, r in zip((0, 50, 100, 200), rates)
    ]


def test_an_attack_that_never_fools_half_the_images_says_so():
    assert sections.success_sentences(success([0.0, 0.1, 0.2, 0.4]), {}) == [
        "l2, targeted: fewer than half of the images are fooled at every ε; "
        "at the largest budget ε = 200, 40.00% of 100 images."
    ]


def test_an_attack_that_fools_half_but_never_90_percent_says_90_percent_at_no_epsilon():
    assert sections.success_sentences(success([0.0, 0.2, 0.6, 0.8]), {}) == [
        "l2, targeted: half of the images are fooled from ε = 100, 90% at no ε of the grid; "
        "at the largest budget ε = 200, 80.00% of 100 images."
    ]


def test_partly_missing_attack_artifacts_are_each_named_and_the_rest_is_shown():
    sweep = success([0.0, 0.2, 0.6, 0.95])
    attack = Attack(
        example=None,
        sweep=sweep,
        metrics=None,
        images={"original": PNG},
        success_png=None,
        missing=[str(layout.ATTACK_EXAMPLE), str(layout.ATTACK_METRICS)],
    )
    blocks = sections.attack_section(artifacts(summary({}), attack))
    said = texts(blocks)
    assert f"The example's record `{layout.ATTACK_EXAMPLE}` is missing." in said
    assert (
        f"Missing image(s): `{layout.ATTACK_IMAGES['adversarial']}`, `{layout.ATTACK_IMAGES['difference']}`."
    ) in said
    assert "The success-vs-ε figure is missing." in said
    assert any(isinstance(b, Table) and len(b.rows) == 4 for b in blocks)  # the sweep that is there
    assert not any("has not been run" in t for t in said)

    no_sweep = Attack(
        example=None, sweep=None, images={"original": PNG}, success_png=PNG, missing=[str(layout.ATTACK_SWEEP_CSV)]
    )
    said = texts(sections.attack_section(artifacts(summary({}), no_sweep)))
    assert f"The sweep's table `{layout.ATTACK_SWEEP_CSV}` is missing." in said
    assert "The success-vs-ε figure is missing." not in said


# example.json when the step fools no correctly classified truck: the image shown is the first one
FIRST = {
    "index": 9002,
    "true_class": "truck",
    "pred_before": "truck",
    "pred_after": "truck",
    "probs_before": {"truck": 0.61, "automobile": 0.30},
    "probs_after": {"truck": 0.54, "automobile": 0.44},
    "fooled": False,
}
EXAMPLE = {
    **FIRST,
    "target_class": "automobile",
    "norm": "l2",
    "epsilon": 91.0,
    "steps": 1,
    "l2": 90.8,
    "shown": "first correct",
    "before": None,
    "attacked": 574,
    "fooled_count": 0,
    "share": 0.0,
    "first_correct": FIRST,
}


def test_the_glance_says_an_attack_that_failed_did_not_fool_the_network():
    art = artifacts(attack=Attack(example=EXAMPLE))
    assert sections.attack_sentence(art) == (
        "**Attack**: **0 of 574** correctly classified truck test images (0.0%) are fooled by one targeted "
        "L2 step of 91 toward automobile. The study's image, the first correctly classified truck, test image "
        "9002, is not fooled: truck (p = 0.54). "
        "**The study's claim does not hold here**: the step fools none of them."
    )


def test_the_glance_says_the_attack_was_not_run_when_its_example_is_missing():
    assert sections.attack_sentence(artifacts()) == "**Attack**: not run (`dvc repro attack`)."


# -------------------------------------------------------------------- the glance and the distance


def test_no_entry_with_a_result_gives_the_no_entry_sentence():
    diverged = rows([None, None], [0.1, 0.2])
    dist = distance(
        [
            (
                "softmax",
                "lr",
                study_table([0.1, 0.2], [0.4, 0.3]),
                comparison("lr", diverged, study_table([0.1, 0.2], [0.4, 0.3])),
            )
        ]
    )
    assert sections.distance_sentence(dist) == "No ablation entry of the study has a result here to compare with."


def test_one_entry_beyond_noise_differs_and_entries_that_diverged_here_are_named():
    table = study_table([0.001, 0.01, 0.1], [0.41, 0.40, 0.39])
    ours = rows([0.41, 0.45, None], [0.001, 0.01, 0.1], std=0.004)  # 0.01: 5 points > 2 x 0.4 points
    dist = distance([("softmax", "lr", table, comparison("lr", ours, table))])
    assert sections.distance_sentence(dist) == (
        "Over the 2 of the study's 3 ablation entries that have a result here, ours is on average **2.50 points** "
        "from the study's test accuracy (worst: softmax `lr=0.01`, +5.00 pt); 1 differs by more than our seed "
        "noise. **0 of 1 sweeps** agree with the study on the best value (or are within our noise of it), "
        "0 on the trend's direction. **Diverged here where the study trained**: softmax `lr=0.1`."
    )


def test_the_glance_table_says_all_diverged_and_no_noise_estimate():
    assert sections.effect_words(judge(rows([None, None], [0.1, 0.2]))) == "all diverged"
    assert sections.effect_words(judge(rows([0.40, 0.41], [0.1, 0.2], std=0.0, n=1))) == "no noise estimate"
    assert sections.effect_words(judge(rows([0.40, 0.41], [0.1, 0.2], std=0.01))) == "within noise"
    assert sections.effect_words(judge(rows([0.40, 0.45], [0.1, 0.2], std=0.01))) == "beyond noise"
    sweeps = {
        p: Sweep(p, r, judge(r), None)
        for p, r in (("lr", rows([None, None], [0.1, 0.2])), ("reg", rows([0.40, 0.41], [0.0, 0.1], std=0.0, n=1)))
    }
    table = sections.verdicts_table(summary({"softmax": model_summary(sweeps=sweeps)}))
    assert table.rows == [
        ["softmax `lr`", "—", "all diverged", "—", "—", "—"],
        ["softmax `reg`", "0.1 (0.4100)", "no noise estimate", "—", "—", "—"],
    ]


def test_the_glance_names_sweeps_and_values_of_the_study_not_trained_here():
    lr = study_table([0.001, 0.01, 0.1], [0.41, 0.40, 0.39])
    ours = rows([0.41, 0.40], [0.001, 0.01])  # 0.1 not trained
    c = comparison("lr", ours, lr)
    reg = study_table([0.0, 0.1], [0.41, 0.41])  # the whole sweep not trained
    dist = distance([("softmax", "lr", lr, c), ("softmax", "reg", reg, None)])
    params = load_params(PROJECT / "params.yaml")
    m = model_summary(sweeps={"lr": Sweep("lr", ours, judge(ours), c)}, study={})
    blocks = sections.opening(artifacts(summary({"softmax": m}, dist), params=params))
    said = texts(blocks)
    assert "Sweeps of the study not run here (`ablate` in params.yaml): softmax `reg` (2 values)." in said
    assert "Values of the study not trained here: softmax `lr=0.1`." in said
    assert "Diverged here where the study trained: none." in said


# ------------------------------------------------------------------------------------ appendix


def provenance_texts(provenance, processed) -> list[str]:
    params = load_params(PROJECT / "params.yaml")
    m = model_summary()
    return texts(
        appendix.provenance(
            artifacts(summary({"softmax": m}), params=params, provenance=provenance, processed=processed)
        )
    )


def test_a_fetch_that_did_not_fall_back_says_the_official_release_was_used():
    said = provenance_texts({"dataset": "CIFAR-10", "fell_back": False}, {"seed": 0})
    assert "The official release was used (no fallback to the bundled mirror)." in said
    assert not any("was not used" in t for t in said)
    said = provenance_texts({"dataset": "CIFAR-10"}, {"seed": 0})  # an older record: nothing said either way
    assert not any("official" in t for t in said)


def test_a_run_on_limited_data_says_it_is_a_reduced_run():
    said = provenance_texts({"fell_back": True}, {"seed": 0, "train_limit": 500, "test_limit": 100})
    assert any(
        t.endswith("validation split drawn with seed 0. **A reduced run**: `train_limit` = 500, `test_limit` = 100.")
        for t in said
    )
    said = provenance_texts({"fell_back": True}, {"seed": 0, "train_limit": None, "test_limit": None})
    assert not any("reduced run" in t for t in said)
