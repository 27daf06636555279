"""The report: the study rebuilt from the pipeline's artifacts, as Markdown and self-contained HTML.

Each test writes a synthetic project into a temporary folder with the contract's schemas: the
run JSONs of the train and ablate stages, then the evaluate stage's CSVs and metrics made by the
evaluate stage's own functions from those runs, plus provenance, the fit and the attack's files.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import re
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image
from report_reading import section_text, sweep_table

from scratchnet.files import read_json, write_json, write_text
from scratchnet.study import evaluation, layout
from scratchnet.study.analysis import SweepRow as Row
from scratchnet.study.analysis import describe_trend, judge, pooled_std, trend
from scratchnet.study.evaluation import ModelSummary, value_text
from scratchnet.study.params import REGISTRY, load_params
from scratchnet.study.plots.study import x_scale
from scratchnet.study.report import PART_TITLES, ReportError, build_report, write_report
from scratchnet.study.report.sections import (
    accuracy_sentences,
    attack_example,
    fit_sentences,
    rounding_sentence,
    stale_params,
    study_sentences,
    verdict_sentences,
)
from scratchnet.study.reproduction import compare, distance

MODELS = ("softmax", "twolayer")

PROJECT = Path(__file__).resolve().parents[1]
STUDY_TEXT = PROJECT / "reference" / "study-report.txt"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SEEDS = [0, 1, 2]
ENTRIES = {
    "softmax": ["baseline", "reg=0.001", "reg=0.1", "lr=0.001", "lr=0.05"],
    "twolayer": ["baseline", "hidden_dim=50", "hidden_dim=200"],
}
# Test accuracy of each ablation value (mean over seeds); each seed adds -NOISE, 0, +NOISE.
MEANS = {
    ("softmax", "baseline"): 0.410,
    ("softmax", "reg=0.001"): 0.411,
    ("softmax", "reg=0.1"): 0.412,
    ("softmax", "lr=0.001"): 0.400,
    ("softmax", "lr=0.05"): 0.360,
    ("twolayer", "baseline"): 0.510,
    ("twolayer", "hidden_dim=50"): 0.490,
    ("twolayer", "hidden_dim=200"): 0.530,
}


def sweeps_of(entries: list[str]) -> dict[str, list]:
    """['baseline', 'reg=0.1', ...] -> {'reg': [0.1], ...}: params.yaml's ablate.<model>."""
    out: dict[str, list] = {}
    for entry in entries[1:]:
        key, _, value = entry.partition("=")
        out.setdefault(key, []).append(yaml.safe_load(value))
    return out


NOISE = 0.004  # per-seed offset: sample std over the three seeds is exactly NOISE
DIVERGED = ("softmax", "lr=0.05", 1)  # (model, entry, seed) that diverges at epoch 2


def png(colour=(200, 30, 30), size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def history(epochs: int, final_val: float) -> list[dict]:
    return [
        {
            "epoch": e,
            "loss": 2.3 / e,
            "train_acc": final_val * (0.6 + 0.45 * e / epochs),
            "val_acc": final_val * (0.6 + 0.4 * e / epochs),
            "lr": 0.005 * 0.9 ** (e - 1),
        }
        for e in range(1, epochs + 1)
    ]


def run_json(model: str, entry: str, stage: str, seeds: list[int], accs: list, config: dict) -> dict:
    """A result as the train and ablate stages write it (BRIEF contract 2)."""
    param, _, raw = entry.partition("=")
    records = [
        {
            "key": f"{model}-{stage}-{entry}-{seed}".replace("=", ""),
            "seed": seed,
            "test_acc": a,
            "final_val_acc": a,
            "diverged": a is None,
            "diverged_epoch": 2 if a is None else None,
            "history": history(config["epochs"], a or 0.1),
        }
        for seed, a in zip(seeds, accs)
    ]
    return {
        "model": model,
        "stage": stage,
        "run": entry,
        "param": param if raw else None,
        "value": yaml.safe_load(raw) if raw else None,
        "config": config,
        "seeds": records,
    }


def make_project(
    root: Path, means: dict = MEANS, noise: float = NOISE, attack: bool = True, diverged_baseline: str | None = None
) -> dict:
    """Writes every artifact the report reads under `root`; returns the params used.
    diverged_baseline: a model whose train-stage baseline diverges in its first epoch."""
    params = load_params(PROJECT / "params.yaml")
    params["ablate"].update(seeds=SEEDS, **{m: sweeps_of(e) for m, e in ENTRIES.items()})
    params["train"]["epochs"] = {"softmax": 6, "twolayer": 4}
    params["ablate"]["epochs"] = {"softmax": 3, "twolayer": 3}
    write_text(root / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    (root / layout.STUDY_NUMBERS).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / layout.STUDY_NUMBERS, root / layout.STUDY_NUMBERS)

    counts = {s: {c: n for c in CLASSES} for s, n in (("train", 5000), ("test", 1000))}
    write_json(
        root / layout.PROVENANCE,
        {
            "source": "auto",
            "dataset": "CIFAR-10 (bundled mirror)",
            "format": "image-folder",
            "location": "data/mirror/cifar-10-jpeg.tar.gz",
            "file": "data/mirror/cifar-10-jpeg.tar.gz",
            "md5": "0" * 32,
            "sha256": "a" * 64,
            "arrays_sha256": "b" * 64,
            "counts": counts,
            "fell_back": True,
            "reason": "the official release could not be fetched: <timeout>",
            "seconds": 4.5,
            "mirror": "the <bundled> mirror",
        },
    )
    write_json(
        root / layout.PROCESSED_META,
        {
            "class_names": CLASSES,
            "counts": {
                "train": {c: 4900 for c in CLASSES},
                "val": {c: 100 for c in CLASSES},
                "test": {c: 1000 for c in CLASSES},
            },
            "normalize": "mean_std",
            "seed": 0,
            "val_size": 1000,
            "train_limit": None,
            "test_limit": None,
            "provenance": {},
            "seconds": 2.0,
        },
    )
    xs = [i / 10 for i in range(11)]
    write_json(
        root / layout.FIT_RESULT,
        {
            "lr": 1e-4,
            "steps": 5,
            "losses": [9.0, 4.0, 2.0, 1.2, 1.05, 1.01],
            "optimum_loss": 1.0,
            "final_loss": 1.01,
            "problem": {"description": "a degree-5 polynomial fit to noisy points", "degree": 5},
            "x": xs,
            "y": [x * x for x in xs],
            "fitted": [x * x + 0.01 for x in xs],
            "optimum_fitted": [x * x for x in xs],
            "seconds": 0.5,
        },
    )

    for model in MODELS:
        base = {**params[model], "epochs": params["train"]["epochs"][model]}
        accs = [None if model == diverged_baseline else means[(model, "baseline")]]
        train = run_json(model, "baseline", "train", [0], accs, base)
        if model == diverged_baseline:
            train["seeds"][0]["history"] = []  # diverged in epoch 2 of ... none completed: the history is empty
        write_json(root / layout.train_run(model), train)
        for entry in ENTRIES[model]:
            key, _, raw = entry.partition("=")
            config = {**params[model], "epochs": params["ablate"]["epochs"][model]}
            if raw:
                config[key] = yaml.safe_load(raw)
            accs = [means[(model, entry)] + (s - 1) * noise for s in SEEDS]
            if (model, entry) == DIVERGED[:2]:
                accs[DIVERGED[2]] = None
            write_json(root / layout.ablate_run(model, entry), run_json(model, entry, "ablate", SEEDS, accs, config))

    argv = sys.argv
    with contextlib.chdir(root):  # the evaluate stage's outputs, made by the stage itself
        sys.argv = ["pipeline/evaluate.py"]  # as DVC runs it: no arguments
        try:
            runpy.run_path(str(PROJECT / "pipeline" / "evaluate.py"), run_name="__main__")
        finally:
            sys.argv = argv

    if attack:
        probs = {c: 0.01 for c in CLASSES}
        write_json(
            root / layout.ATTACK_EXAMPLE,
            {
                "index": 11,
                "true_class": "truck",
                "target_class": "automobile",
                "norm": "l2",
                "epsilon": 91.0,
                "steps": 1,
                "step_size": 91.0,
                "l2": 91.0,
                "linf": 7.25,
                "probs_before": {**probs, "truck": 0.91},
                "probs_after": {**probs, "automobile": 0.62, "truck": 0.29},
                "pred_before": "truck",
                "pred_after": "automobile",
                "fooled": True,
                "pred_after_uint8": "automobile",
                "fooled_after_uint8": True,
                "seconds": 3.0,
                "shown": "first fooled",
                "before": 0,
                "attacked": 40,
                "fooled_count": 16,
                "share": 0.4,
            },
        )
        first = read_json(root / layout.ATTACK_EXAMPLE)
        write_json(root / layout.ATTACK_EXAMPLE, {**first, "first_correct": dict(first)})  # (class_record's shape)
        rows = ["norm,epsilon,mode,success_rate,median_l2,n"]
        for eps, rate in ((0, 0.0), (50, 0.2), (100, 0.6), (200, 0.95)):
            rows.append(f"l2,{eps},targeted,{rate},{'' if rate == 0 else eps * 0.9},100")
        write_text(root / layout.ATTACK_SWEEP_CSV, "\n".join(rows) + "\n")
        write_json(root / layout.ATTACK_METRICS, {"fooled": 0.6})
        for path in layout.ATTACK_IMAGES.values():
            (root / path).write_bytes(png())
        (root / layout.ATTACK_DIR / "success_vs_epsilon.png").write_bytes(png((0, 0, 200), (64, 48)))
    return params


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One synthetic project, its report built and written (shared: building renders figures)."""
    root = tmp_path_factory.mktemp("project")
    make_project(root)
    report = build_report(root)
    write_report(report, root)
    return root, report


# ------------------------------------------------------------------------------ the whole report


def test_every_section_is_present_in_order_in_markdown_and_html(built):
    root, report = built
    markdown = (root / layout.REPORT_MD).read_text()
    html = (root / layout.REPORT_HTML).read_text()
    titles = [
        PART_TITLES["glance"],
        PART_TITLES["distance"],
        PART_TITLES["fit"],
        REGISTRY["softmax"].part,
        REGISTRY["twolayer"].part,
        PART_TITLES["attack"],
        PART_TITLES["provenance"],
        PART_TITLES["mlflow"],
    ]
    positions = [markdown.index(f"\n## {title}\n") for title in titles]  # the answer first, the appendix last
    assert positions == sorted(positions)
    for title in titles:
        assert f"<h2>{title}</h2>" in html
    for model in ("softmax classifier", "two-layer network"):
        for param in {"softmax classifier": ("reg", "lr"), "two-layer network": ("hidden_dim",)}[model]:
            assert f"### {model}: `{param}`" in markdown


def test_every_figure_file_exists_and_is_a_valid_png(built):
    root, report = built
    markdown = (root / layout.REPORT_MD).read_text()
    referenced = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    expected = {
        "reproduction.png",
        "fit.png",
        "curve_softmax.png",
        "curve_twolayer.png",
        "sweep_softmax_reg.png",
        "sweep_softmax_lr.png",
        "sweep_twolayer_hidden_dim.png",
        "attack_original.png",
        "attack_adversarial.png",
        "attack_difference.png",
        "attack_success_vs_epsilon.png",
    }
    assert {Path(r).name for r in referenced} == expected
    for rel in referenced:
        path = root / layout.REPORT_MD.parent / rel
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
        with Image.open(path) as image:
            image.verify()
    assert sorted(p.name for p in (root / layout.REPORT_FIGURES).iterdir()) == sorted(expected)


def test_every_number_in_the_ablation_tables_equals_the_summary_csv(built):
    root, report = built
    markdown = (root / layout.REPORT_MD).read_text()
    study = yaml.safe_load((root / layout.STUDY_NUMBERS).read_text())
    summary = evaluation.pd.read_csv(root / layout.ABLATION_SUMMARY_CSV)
    names = {"softmax": "softmax classifier", "twolayer": "two-layer network"}
    for (model, param), sweep in summary.groupby(["model", "param"], sort=False):
        rows = sweep_table(markdown, f"### {names[model]}: `{param}`")
        assert len(rows) == len(sweep)
        by_value = {row[0].replace(" (baseline)", ""): row for row in rows}
        for csv_row in sweep.itertuples():
            cells = by_value[f"{float(csv_row.value):g}"]
            assert cells[0].endswith("(baseline)") == bool(csv_row.is_baseline)
            assert cells[1] == f"{csv_row.test_acc_mean:.4f} ± {csv_row.test_acc_std:.4f}"
            assert cells[2].split()[0] == str(csv_row.n_seeds)
            theirs = [
                r["test_acc"]
                for r in study[model]["ablations"].get(param, {}).get("rows", [])
                if math.isclose(r["value"], float(csv_row.value))
            ]
            if theirs:
                assert cells[3] == f"{theirs[0]:.4f}"
                assert cells[4] == f"{csv_row.test_acc_mean - theirs[0]:+.4f}"
            else:
                assert cells[3] == cells[4] == "—"


def test_html_is_self_contained_with_every_image_embedded(built):
    root, report = built
    html = (root / layout.REPORT_HTML).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"<link\b|<script\b|@import|url\(", html, re.I)
    sources = re.findall(r"""<img [^>]*src="([^"]+)\"""", html)
    assert len(sources) == len(report.figures) == 11
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")


def test_text_from_artifacts_is_escaped_in_html_and_markdown(built):
    root, report = built
    html = (root / layout.REPORT_HTML).read_text()
    markdown = (root / layout.REPORT_MD).read_text()
    for text in (html, markdown):  # a provenance field, shown verbatim but inert
        assert "the &lt;bundled&gt; mirror" in text
        assert "<bundled>" not in text


def test_provenance_states_the_data_params_and_numerical_environment_and_nothing_about_the_run(built):
    root, report = built
    text = section_text(report.markdown, f"## {PART_TITLES['provenance']}")
    assert "**The official CIFAR-10 release was not used**" in text  # fell_back: true
    assert "a" * 64 in text  # the archive's sha256
    assert "params hash" in text and "| NumPy |" in text and "| BLAS |" in text
    assert "<timeout>" not in report.markdown and "&lt;timeout&gt;" not in report.markdown  # a network error's text
    assert "seconds" not in text and "4.5" not in text


def test_the_report_is_the_same_bytes_from_the_same_artifacts(built, tmp_path):
    root, report = built
    shutil.copytree(root, tmp_path / "copy")
    again = build_report(tmp_path / "copy")  # another path, another time: the same report
    assert again.markdown == report.markdown and again.html == report.html
    assert [f.png for f in again.figures] == [f.png for f in report.figures]
    assert not re.search(r"\b20\d\d-\d\d-\d\d|\d+(\.\d+)? s\b|\bmin\b \d\d s|host|pid", report.markdown)


def test_test_accuracy_is_compared_with_the_studys(built):
    root, report = built
    text = section_text(report.markdown, f"## {REGISTRY['softmax'].part}")
    assert "**Test accuracy: 41.00%**" in text and "the study reported 41.07%" in text
    assert "0.07 percentage points below it" in text
    text = section_text(report.markdown, f"## {REGISTRY['twolayer'].part}")
    assert "**Test accuracy: 51.00%**" in text and "the study reported 51.40%" in text


def test_fit_section_states_lr_and_gap_to_the_optimum(built):
    text = section_text(built[1].markdown, f"## {PART_TITLES['fit']}")
    for says in (
        "learning rate lr = 0.0001 — the study's own choice.",
        "ended 0.01 above it (1.00% of the optimum)",
        "The loss decreased at every step.",
    ):
        assert says in text


def test_diverged_runs_are_named_in_their_sweep(built):
    root, report = built
    text = section_text(report.markdown, "### softmax classifier: `lr`")
    assert "Diverged runs: `lr=0.05` seed 1 (epoch 2)." in text
    assert "| 0.05 | 0.3600 ± 0.0057 | 3 (1 diverged) |" in text
    assert "No run of this sweep diverged." in section_text(report.markdown, "### softmax classifier: `reg`")


def test_each_table_points_to_its_mlflow_runs_by_tag_and_run_key(built):
    _, report = built
    tag = "tag `scratchnet.in_sweep.softmax.reg` = `true`"
    assert f"the runs of this table carry the {tag}" in section_text(report.markdown, "### softmax classifier: `reg`")
    mlflow = section_text(report.markdown, f"## {PART_TITLES['mlflow']}")
    assert "`make ui`" in mlflow and "tags.\"scratchnet.run_key\" = '<run key>'" in mlflow
    assert "| softmax classifier baseline (curve, test accuracy) | `softmax-train-baseline-0` |" in mlflow
    assert f"| softmax classifier sweep `reg` | 9 runs, {tag} |" in mlflow


def test_attack_section_shows_images_norms_probabilities_and_success(built):
    root, report = built
    text = section_text(report.markdown, f"## {PART_TITLES['attack']}")
    assert "L2 = 91.00 and L∞ = 7.25" in text
    assert "The study's single step moved its image by L2 = 91; ours is 1.00 × that." in text
    assert "| truck (true) | 0.9100 | 0.2900 |" in text
    assert "| automobile (target) | 0.0100 | 0.6200 |" in text
    assert "l2, targeted: half of the images are fooled from ε = 100, 90% from ε = 200" in text
    assert "| l2 | targeted | 50 | 20.00% | 45.00 | 100 |" in text


def test_a_failed_attack_is_reported_as_failed():
    example = {
        "index": 3,
        "true_class": "truck",
        "target_class": "automobile",
        "norm": "l2",
        "epsilon": 91.0,
        "steps": 1,
        "l2": 90.6,
        "linf": 5.9,
        "probs_before": {"automobile": 0.001, "truck": 0.997},
        "probs_after": {"automobile": 0.002, "truck": 0.986},
        "pred_before": "truck",
        "pred_after": "truck",
        "fooled": False,
        "pred_after_uint8": "truck",
        "fooled_after_uint8": False,
    }
    text = " ".join(b.text for b in attack_example(example, {"l2": 91}) if hasattr(b, "text"))
    assert "predicts **truck** (p = 0.986): the attack failed" in text
    assert "classified as truck." in text and "undoes" not in text
    assert "ours is 1.00 × that" in text  # 90.6 / 91


# ---------------------------------------------------------------------- interpretation from numbers


def reg_sentences(markdown: str) -> str:
    return section_text(markdown, "### softmax classifier: `reg`")


def test_interpretation_flips_from_within_noise_to_beyond_noise_when_the_numbers_do(built, tmp_path):
    # reg means 0.410, 0.411, 0.412 with seed std 0.004: spread 0.002 <= 2 x 0.004 -> within noise
    _, within = built
    text = reg_sentences(within.markdown)
    assert "**Within noise**: the means span 0.0020" in text and "Beyond noise" not in text
    assert "Trend: test accuracy increases as `reg` grows — but within noise." in text

    # the same means with seed std 0.0004: the spread is now 2.5 x the noise threshold
    make_project(tmp_path, noise=0.0004)
    beyond = build_report(tmp_path)
    text = reg_sentences(beyond.markdown)
    assert "**Beyond noise**: the means span 0.0020" in text and "Within noise" not in text
    assert "Trend: test accuracy increases as `reg` grows." in text


def rows(means, std=0.01, n=3, values=None):
    values = values or list(range(len(means)))
    return [Row(v, m, std, n, 0, i == 0) for i, (v, m) in enumerate(zip(values, means))]


def comparison(param, ours, study, conclusion=None):
    """Our rows against the study's table ({value, test_acc} rows), as evaluate compares them."""
    return compare("softmax", param, ours, judge(ours), {"rows": study, "conclusion": conclusion})


def sweep_sentences(param, ours, study, conclusion):
    """Our verdict, then the comparison with the study's table ({value, test_acc} rows)."""
    return verdict_sentences(param, judge(ours), 2.0) + study_sentences(
        param, comparison(param, ours, study, conclusion) if study else None
    )


def test_best_value_and_trend_follow_the_means():
    text = " ".join(sweep_sentences("lr", rows([0.30, 0.45, 0.40], values=[0.001, 0.01, 0.1]), [], None))
    assert "Best: `lr=0.01` with 0.4500 ± 0.0100; worst: `lr=0.001` with 0.3000 ± 0.0100." in text
    assert "rises then falls as `lr` grows, peaking at `lr=0.01`" in text
    text = " ".join(sweep_sentences("lr", rows([0.45, 0.40, 0.30], values=[0.001, 0.01, 0.1]), [], None))
    assert "Best: `lr=0.001`" in text and "decreases as `lr` grows" in text


def test_equal_means_name_no_best_value():
    text = " ".join(sweep_sentences("reg", rows([0.40, 0.40], values=[0.0, 0.1]), [], None))
    assert "Every value gives the same mean test accuracy, 0.4000." in text
    assert "Best:" not in text and "test accuracy is the same at every value of `reg`" in text


def test_agreement_with_the_study_is_computed_not_assumed():
    study = [{"value": 0.001, "test_acc": 0.41}, {"value": 0.01, "test_acc": 0.40}]
    agree = " ".join(sweep_sentences("lr", rows([0.42, 0.38], values=[0.001, 0.01]), study, "It is so."))
    assert "Ours agrees with the study on the best value" in agree
    assert "ours is on average 0.0050 below the study (differences from -0.0200 to +0.0100)" in agree
    assert "The study concluded: “It is so.”" in agree
    differ = " ".join(sweep_sentences("lr", rows([0.38, 0.42], values=[0.001, 0.01]), study, None))
    assert "Ours finds a different best value: 0.01 where the study has 0.001, beyond our noise." in differ


def test_one_seed_per_value_gives_no_noise_verdict():
    text = " ".join(sweep_sentences("reg", rows([0.40, 0.41], std=0.0, n=1), [], None))
    assert "no seed-to-seed noise estimate" in text
    assert "Within noise" not in text and "Beyond noise" not in text


def test_pooled_std_weights_each_value_by_its_degrees_of_freedom():
    a = Row(1, 0.5, 0.01, n_seeds=3)  # 2 degrees of freedom
    b = Row(2, 0.5, 0.04, n_seeds=5, n_diverged=3)  # 2 converged seeds: 1 degree of freedom
    assert pooled_std([a, b]) == pytest.approx(math.sqrt((2 * 0.01**2 + 1 * 0.04**2) / 3))
    assert pooled_std([Row(1, 0.5, 0.0, n_seeds=1)]) is None


def test_noise_rule_is_spread_at_most_twice_the_pooled_std():
    at_limit = judge([Row(1, 0.5, 0.125, 3), Row(2, 0.75, 0.125, 3)])  # exact in binary: 0.25 == 2 x 0.125
    assert at_limit.spread == 0.25 and at_limit.pooled_std == 0.125
    assert at_limit.within_noise is True
    above = judge([Row(1, 0.5, 0.125, 3), Row(2, 0.7501, 0.125, 3)])
    assert above.within_noise is False


@pytest.mark.parametrize(
    "means, kind",
    [
        ([1, 2, 3], "increasing"),
        ([3, 2, 2], "decreasing"),
        ([1, 3, 2], "peak"),
        ([3, 1, 2], "valley"),
        ([1, 3, 1, 3], "mixed"),
        ([2, 2], "flat"),
        ([1], "single"),
    ],
)
def test_trend_names_the_direction_of_the_means(means, kind):
    assert trend(list(range(len(means))), means).kind == kind


def test_trend_of_labels_without_order_is_not_claimed():
    assert trend(["gaussian", "he"], [0.4, 0.5]).kind == "unordered"


@pytest.mark.parametrize(
    "values, scale",
    [
        ([0.001, 0.005, 0.01, 0.05], ("log", None)),
        ([0.0, 0.001, 0.01, 0.1], ("symlog", 0.001)),
        ([0.8, 0.9, 0.99, 1.0], ("linear", None)),
        ([128, 256, 512, 1024], ("linear", None)),  # less than a decade
    ],
)
def test_sweep_figures_use_a_log_axis_when_values_span_decades(values, scale):
    assert x_scale(values) == scale


# ----------------------------------------------------------------------------- missing artifacts


def test_a_missing_attack_is_stated_in_its_section_not_fatal(tmp_path):
    make_project(tmp_path, attack=False)
    report = build_report(tmp_path)
    text = section_text(report.markdown, f"## {PART_TITLES['attack']}")
    assert "**The attack stage has not been run**" in text
    assert str(layout.ATTACK_EXAMPLE) in text
    assert not any(f.name.startswith("attack_") for f in report.figures)


def test_a_missing_required_artifact_is_an_error_naming_it(tmp_path):
    make_project(tmp_path, attack=False)
    (tmp_path / layout.FIT_RESULT).unlink()
    with pytest.raises(ReportError, match=re.escape(str(layout.FIT_RESULT))):
        build_report(tmp_path)


def test_a_malformed_summary_is_an_error_naming_it_and_the_fix(tmp_path):
    make_project(tmp_path, attack=False)
    write_json(tmp_path / layout.ABLATION_SUMMARY_JSON, {"softmax": {"reg": [{"value": 0.1}]}})
    with pytest.raises(ReportError, match=r"ablation_summary.json is malformed .*dvc repro evaluate"):
        build_report(tmp_path)


def test_an_attack_image_that_is_not_a_png_is_an_error(tmp_path):
    make_project(tmp_path)
    (tmp_path / layout.ATTACK_IMAGES["original"]).write_bytes(b"GIF89a")
    with pytest.raises(ReportError, match="original.png is not a PNG"):
        build_report(tmp_path)


# -------------------------------------------------------------------------------- writing, stage


def test_writing_replaces_stale_figures_and_leaves_no_temporary_files(built, tmp_path):
    root, report = built
    shutil.copytree(root, tmp_path / "copy")
    stale = tmp_path / "copy" / layout.REPORT_FIGURES / "sweep_softmax_removed.png"
    stale.write_bytes(png())
    write_report(report, tmp_path / "copy")
    names = sorted(p.name for p in (tmp_path / "copy" / layout.REPORT_DIR).rglob("*") if p.is_file())
    assert "sweep_softmax_removed.png" not in names
    assert not [n for n in names if n.endswith(".tmp")]


def test_the_report_stage_script_writes_both_files_from_the_project_root(tmp_path, monkeypatch):
    make_project(tmp_path, attack=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pipeline/report.py"])  # as DVC runs it: no arguments
    runpy.run_path(str(PROJECT / "pipeline" / "report.py"), run_name="__main__")
    assert (tmp_path / layout.REPORT_MD).read_text().startswith("# scratchnet")
    assert (tmp_path / layout.REPORT_HTML).read_text().startswith("<!DOCTYPE html>")


# ------------------------------------------------------------------------------ the study's numbers


def test_study_numbers_hold_the_studys_published_results():
    study = yaml.safe_load((PROJECT / layout.STUDY_NUMBERS).read_text())
    assert "study-report.txt" in study["source"]
    assert study["softmax"]["test_acc"] == 0.4107 and study["twolayer"]["test_acc"] == 0.514
    assert study["attack"]["l2"] == 91 and study["fit"]["lr"] == 1e-4
    tables = {
        m: {p: {r["value"]: r["test_acc"] for r in t["rows"]} for p, t in study[m]["ablations"].items()} for m in MODELS
    }
    assert tables["softmax"]["reg"] == {0.0: 0.4098, 0.001: 0.4103, 0.01: 0.4101, 0.1: 0.4108}
    assert tables["twolayer"]["hidden_dim"] == {50: 0.503, 100: 0.514, 150: 0.518, 200: 0.5272}
    assert sum(len(t) for m in MODELS for t in tables[m].values()) == 32


def test_every_study_number_is_printed_in_the_study_text():
    text = STUDY_TEXT.read_text()
    study = yaml.safe_load((PROJECT / layout.STUDY_NUMBERS).read_text())
    for model in MODELS:
        for param, table in study[model]["ablations"].items():
            for row in table["rows"]:
                assert re.search(rf"\t{re.escape(repr(row['test_acc']))}\n", text), (model, param, row)
            assert table["conclusion"] in text


# ------------------------------------------------------------------- the distance from the study


def independent_distance(root: Path) -> tuple[dict, list, int, int]:
    """The distance from the study computed with pandas over the summary CSV, apart from
    study/reproduction.py: {(model, param, value): ours − study}, the entries beyond noise, the
    sweeps agreeing on the best value, and the sweeps compared."""
    summary = evaluation.pd.read_csv(root / layout.ABLATION_SUMMARY_CSV)
    study = yaml.safe_load((root / layout.STUDY_NUMBERS).read_text())
    diffs, beyond, agreeing, sweeps = {}, [], 0, 0
    for model in MODELS:
        for param, table in study[model]["ablations"].items():
            ours = summary[(summary.model == model) & (summary.param == param)]
            if ours.empty:
                continue
            dof = ours.n_seeds - ours.n_diverged - 1
            dof = dof.where(dof > 0, 0)
            noise = 2 * math.sqrt((dof * ours.test_acc_std.fillna(0) ** 2).sum() / dof.sum())
            shared = {}
            for row in table["rows"]:
                match = ours[[math.isclose(v, row["value"]) for v in ours.value]]
                if len(match) and not math.isnan(match.test_acc_mean.iloc[0]):
                    d = match.test_acc_mean.iloc[0] - row["test_acc"]
                    diffs[(model, param, row["value"])] = d
                    beyond += [(model, param, row["value"])] if abs(d) > noise else []
                    shared[row["value"]] = (match.test_acc_mean.iloc[0], row["test_acc"])
            sweeps += 1
            if len(shared) < 2:  # one shared value says nothing about the best
                continue
            our_best = max(shared, key=lambda v: shared[v][0])
            their_best = max(shared, key=lambda v: shared[v][1])
            agreeing += our_best == their_best or shared[our_best][0] - shared[their_best][0] <= noise
    return diffs, beyond, agreeing, sweeps


def test_the_distance_section_equals_an_independent_computation_over_the_summary_csv(tmp_path):
    # hidden_dim=200 lands 0.6 points above the study, between 1x and 2x its sweep's seed std
    root = tmp_path
    make_project(root, means={**MEANS, ("twolayer", "hidden_dim=200"): 0.5332}, attack=False)
    report = build_report(root)
    diffs, beyond, agreeing, sweeps = independent_distance(root)
    mean_abs = sum(abs(d) for d in diffs.values()) / len(diffs)
    worst = max(diffs, key=lambda k: abs(diffs[k]))

    text = section_text(report.markdown, f"## {PART_TITLES['distance']}")
    assert f"Mean |ours − study| over {len(diffs)} entries: **{100 * mean_abs:.2f} pt**" in text
    assert f"worst {worst[0]} `{worst[1]}={worst[2]:g}`: {100 * diffs[worst]:+.2f} pt." in text
    assert f"Beyond our noise: {len(beyond)} of {len(diffs)}: " in text
    assert f"on the best value (or within our noise of it): {agreeing} of {sweeps}" in text
    rows = sweep_table(report.markdown, f"## {PART_TITLES['distance']}")
    by_entry = {(r[0], r[1].strip("`"), float(r[2])): r for r in rows}
    for key, d in diffs.items():
        assert by_entry[key][5] == f"{100 * d:+.2f} pt"
        assert by_entry[key][6] == ("**beyond**" if key in beyond else "within")
    assert len(beyond) >= 1 and len(beyond) < len(diffs)  # the example exercises both verdicts


def test_the_evaluate_stage_writes_the_few_headline_metrics_with_the_same_distance(built):
    root, report = built
    diffs, _, agreeing, _ = independent_distance(root)
    metrics = read_json(root / layout.STUDY_METRICS)
    # the baselines' test accuracy, and the distance over both models' entries
    assert metrics == {
        "acc": {model: MEANS[(model, "baseline")] for model in MODELS},
        "gap": round(sum(abs(d) for d in diffs.values()) / len(diffs), 4),
        "agree": agreeing,
    }
    assert metrics["agree"] >= 1  # twolayer hidden_dim: 200 is best in both


def test_the_report_opens_with_the_answer_and_cites_the_study_by_its_title(built):
    root, report = built
    glance = section_text(report.markdown, f"## {PART_TITLES['glance']}")
    title = yaml.safe_load((PROJECT / layout.STUDY_NUMBERS).read_text())["title"]
    intro = report.markdown[: report.markdown.index(f"## {PART_TITLES['glance']}")]
    assert f"A reproduction of the study “{title}”" in intro and "../shared" not in report.markdown
    assert glance.split("\n\n")[1].startswith("Over the 9 of the study's 32 ablation entries")  # the answer first
    assert (
        "| softmax classifier | 41.00% | 0.4100 ± 0.0040 (3 seeds) | 41.07% | -0.07 pt | within noise (2 × std = 0.80 pt) |"
        in glance
    )
    assert "| softmax `lr` | 0.005 (0.4100) | beyond noise | 0.001 (0.4090) | no | no |" in glance
    assert "| twolayer `hidden_dim` | 200 (0.5300) | beyond noise | 200 (0.5272) | yes | yes |" in glance
    assert "fools 60.00% of 100 test images" in glance  # the sweep at eps 100, the first >= the study's 91
    assert "![" in glance and "reproduction.png" in glance
    first_screen = report.markdown[: report.markdown.index(f"## {PART_TITLES['distance']}")]
    assert "sha256" not in first_screen and "mlflow" not in first_screen.lower()


# ------------------------------------------------------- every branch of the interpretation (issue 17)


def baseline(test_acc, study, seeds: Row) -> ModelSummary:
    """A model's summary as evaluate makes it: the gap to the study against 2 x the seeds' std."""
    noise = 2 * seeds.std if seeds.n_converged >= 2 else None
    diff = test_acc - study
    return ModelSummary(
        "softmax",
        "softmax classifier",
        "Part 2",
        test_acc,
        seeds,
        study,
        diff,
        noise,
        None if noise is None else abs(diff) <= noise,
        {},
        {},
    )


def test_the_baseline_gap_to_the_study_is_judged_against_our_seed_noise():
    seeds = Row(None, 0.410, 0.004, 3, 0, True)  # noise: 2 x 0.4 = 0.8 points
    within = accuracy_sentences(baseline(0.4150, 0.4107, seeds), 30, 2.0)
    assert "ours is 0.43 percentage points above it" in within
    assert "the difference from the study is within noise (0.43 vs 2 × std = 0.80 points)" in within
    beyond = accuracy_sentences(baseline(0.4000, 0.4107, seeds), 30, 2.0)
    assert "1.07 percentage points below it" in beyond and "larger than the noise (1.07 vs" in beyond
    one_seed = accuracy_sentences(baseline(0.4000, 0.4107, Row(None, 0.40, 0.0, 1, 0, True)), 30, 2.0)
    assert "noise" not in one_seed


def test_an_entry_is_beyond_noise_only_when_its_gap_exceeds_twice_the_pooled_seed_std():
    study = [{"value": 0.001, "test_acc": 0.40}, {"value": 0.005, "test_acc": 0.41}, {"value": 0.05, "test_acc": 0.30}]
    ours = [Row(0.001, 0.4075, 0.005, 3), Row(0.005, 0.4101, 0.005, 3, 0, True), Row(0.05, None, None, 3, 3)]
    c = comparison("lr", ours, study)
    dist = distance([("softmax", "lr", {"rows": study}, c)])
    by_value = {e.value: e for e in dist.entries}
    assert by_value[0.001].beyond_noise is False  # 0.75 points <= 2 x 0.5
    assert by_value[0.005].beyond_noise is False
    assert by_value[0.05].diverged and by_value[0.05].diff is None and by_value[0.05].beyond_noise is None
    assert [e.value for e in dist.diverged] == [0.05]
    assert dist.mean_abs == pytest.approx((0.0075 + 0.0001) / 2)
    narrow = [Row(v.value, v.mean, 0.001 if v.std else None, v.n_seeds, v.n_diverged, v.is_baseline) for v in ours]
    assert [e.value for e in comparison("lr", narrow, study).entries if e.beyond_noise] == [0.001]  # 0.75 > 2 x 0.1


def test_a_sweep_agrees_on_the_best_value_when_ours_at_the_studys_best_is_within_noise():
    study_best_at_1 = [{"value": 1, "test_acc": 0.50}, {"value": 2, "test_acc": 0.45}]
    close = [Row(1, 0.495, 0.004, 3), Row(2, 0.50, 0.004, 3)]  # 0.5 points <= 2 x 0.4
    far = [Row(1, 0.480, 0.004, 3), Row(2, 0.50, 0.004, 3)]  # 2 points > 0.8
    assert comparison("reg", close, study_best_at_1).best_agrees is True
    assert comparison("reg", far, study_best_at_1).best_agrees is False
    diverged = comparison("reg", [Row(1, None, None, 3, 3), Row(2, None, None, 3, 3)], study_best_at_1)
    assert diverged.best_agrees is None
    assert distance([("softmax", "reg", {"rows": study_best_at_1}, diverged)]).agree_best == 0
    one_shared = comparison("reg", [Row(1, 0.50, 0.004, 3), Row(3, 0.40, 0.004, 3)], study_best_at_1)
    assert one_shared.best_agrees is None  # value 1 is "best" of one: no claim


def test_tied_best_values_are_named_as_tied():
    text = " ".join(verdict_sentences("lr", judge(rows([0.42, 0.42, 0.40], values=[0.0, 0.2, 0.1])), 2.0))
    assert "Best: `lr=0` with 0.4200 ± 0.0100 (tied with 1 other value(s))" in text


def test_a_sweep_whose_every_run_diverged_claims_nothing():
    diverged = [Row(0.1, None, None, 3, 3), Row(0.2, None, None, 3, 3)]
    assert verdict_sentences("lr", judge(diverged), 2.0) == [
        "Every run of this sweep diverged; there is nothing to compare."
    ]
    text = " ".join(study_sentences("lr", comparison("lr", diverged, [{"value": 0.1, "test_acc": 0.41}])))
    assert "no claim on the best value" in text and "on average" not in text


def test_the_studys_spread_is_set_against_our_noise():
    study = [{"value": 0.1, "test_acc": 0.410}, {"value": 0.2, "test_acc": 0.404}]  # spread 0.006
    quiet = " ".join(study_sentences("reg", comparison("reg", rows([0.41, 0.41], std=0.004), study)))  # noise 0.008
    assert (
        "The study's values span 0.0060 from one run per value; against our seed noise (0.0080) that spread is within noise."
        in quiet
    )
    loud = " ".join(study_sentences("reg", comparison("reg", rows([0.41, 0.41], std=0.002), study)))  # noise 0.004
    assert "that spread is larger than noise." in loud


def test_params_changed_after_training_are_named_as_stale():
    params = load_params(PROJECT / "params.yaml")
    config = {**params["softmax"], "epochs": params["train"]["epochs"]["softmax"]}
    assert stale_params(params, "softmax", config) == []
    params["softmax"]["lr"] = 0.01
    assert stale_params(params, "softmax", config) == ["`lr` = 0.01 in params.yaml, 0.005 in the run"]


def test_a_diverging_fit_is_reported_as_diverged():
    fit = {"lr": 0.5, "steps": 3, "losses": [1.0, 10.0, float("inf")], "optimum_loss": 0.1, "final_loss": float("inf")}
    text = fit_sentences(fit, study_lr=1e-4)
    assert "lr = 0.5; the study used lr = 0.0001." in text
    assert "gradient descent diverged at this learning rate" in text and "optimum" not in text
    rising = fit_sentences({**fit, "losses": [1.0, 0.5, 0.6], "final_loss": 0.6}, study_lr=None)
    assert "The loss rose at 1 of 2 steps." in rising


@pytest.mark.parametrize(
    "fooled, fooled_uint8, says",
    [
        (True, True, ": still fooled."),
        (True, False, ": the rounding undoes the attack."),
        (False, True, ": the rounding makes it succeed."),
        (False, False, "classified as truck."),
    ],
)
def test_the_8_bit_rounding_outcome_is_stated(fooled, fooled_uint8, says):
    example = {
        "fooled": fooled,
        "fooled_after_uint8": fooled_uint8,
        "pred_after_uint8": "automobile" if fooled_uint8 else "truck",
    }
    assert rounding_sentence(example).endswith(says)
    assert rounding_sentence({"fooled": fooled}) == ""  # an example from before the check was recorded


def test_a_diverged_baseline_is_reported_without_a_curve_or_a_test_accuracy(tmp_path):
    make_project(tmp_path, attack=False, diverged_baseline="twolayer")
    report = build_report(tmp_path)
    text = section_text(report.markdown, f"## {REGISTRY['twolayer'].part}")
    assert "**The baseline run diverged** in epoch 2: no epoch completed." in text
    assert "**Test accuracy**: none — the baseline run diverged. The study reported 51.40%." in text
    assert "| two-layer network | diverged |" in section_text(report.markdown, f"## {PART_TITLES['glance']}")
    assert "curve_twolayer.png" not in {f.name for f in report.figures}


# ------------------------------------------------------------- one verdict, one value (issue 22)


def table_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split(" | ")]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| :") and not line.startswith("| ---")
    ]


def yes_no(flag):
    return "—" if flag is None else "yes" if flag else "no"


@pytest.mark.parametrize("noise", [NOISE, 0.0004])  # mixed verdicts, then mostly beyond noise
def test_every_agreement_trend_and_noise_word_of_the_report_is_the_summarys_value(noise, tmp_path):
    make_project(tmp_path, noise=noise)
    report = build_report(tmp_path)
    summary = report.summary
    glance = {r[0]: r for r in table_rows(section_text(report.markdown, f"## {PART_TITLES['glance']}"))}
    distance_rows = {
        (r[0], r[1]): r
        for r in table_rows(section_text(report.markdown, f"## {PART_TITLES['distance']}"))
        if len(r) == 8
    }
    seen = set()
    for model, sweep in summary.sweeps():
        m = summary.models[model]
        v, c = sweep.verdict, sweep.study
        row = glance[f"{model} `{sweep.param}`"]
        effect = {None: "no noise estimate", True: "within noise", False: "beyond noise"}[v.within_noise]
        assert row[2] == effect and row[4] == yes_no(c.best_agrees) and row[5] == yes_no(c.trend_agrees)
        assert distance_rows[(model, f"`{sweep.param}`")][4] == yes_no(c.best_agrees)
        assert distance_rows[(model, f"`{sweep.param}`")][5] == c.ours_trend.kind
        assert distance_rows[(model, f"`{sweep.param}`")][7] == yes_no(c.trend_agrees)
        text = section_text(report.markdown, f"### {m.title}: `{sweep.param}`")
        assert ("**Within noise**" in text) == (v.within_noise is True)
        assert ("**Beyond noise**" in text) == (v.within_noise is False)
        assert ("Ours agrees with the study on the best value" in text) == (c.best_agrees is True)
        assert ("Ours finds a different best value" in text) == (c.best_agrees is False)
        assert ("no claim on the best value" in text) == (c.best_agrees is None)
        assert f"Trend: {describe_trend(v.trend, sweep.param, value_text)}" in text
        seen.add(c.best_agrees)
    for m in summary.models.values():
        text = section_text(report.markdown, f"## {m.part}")
        word = "within noise" if m.within_noise else "larger than the noise"
        assert f"the difference from the study is {word}" in text
        assert glance[m.title][5].startswith("within noise" if m.within_noise else "beyond noise")
    assert seen >= {True, False}  # the example exercises both agreement verdicts
    agree = sum(1 for _, s in summary.sweeps() if s.study.best_agrees)
    assert f"**{agree} of {summary.distance.sweeps} sweeps** agree" in report.markdown
    assert read_json(tmp_path / layout.STUDY_METRICS)["agree"] == agree
