"""Issue 24: the study's example on every correctly classified image of its class, every trained
network's robustness, the attack norm registry, and what the study layer makes of them."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import tiny_runs
import yaml
from tiny_runs import pixel_data

from scratchnet.attacks import (
    NORMS,
    Norm,
    attack_class,
    choose_targets,
    fooling_example,
    pgd,
    register_norm,
    robustness,
    robustness_sample,
    robustness_sweep,
)
from scratchnet.data import PixelStats
from scratchnet.nn import Normalizer, build_model, load_model
from scratchnet.study.attack_study import class_record, example_sentence
from scratchnet.study.cache import robustness_entry_key
from scratchnet.study.classifier import (
    ROBUSTNESS_ARGS,
    RunSpec,
    measure_run,
    robustness_key,
    run_robustness,
    train_classifier,
    train_run,
)
from scratchnet.study.params import ParamsError, validate
from scratchnet.training import train

D = 3072
TRUCK, AUTOMOBILE = 9, 1
CONFIG = {**tiny_runs.CONFIG, "normalize": "mean_std"}
SECTION = {
    "enabled": True,
    "sample_size": 120,
    "seed": 3,
    "norm": "l2",
    "budget": 200.0,
    "grid": [50.0, 400.0, 800.0],
    "steps": 3,
    "step_fraction": 0.5,
}


@functools.cache
def splits() -> dict:
    """As runs.load_splits gives them; a fifth of the test labels wrong, so a network gets those
    wrong whatever it learns (robustness counts only the images it classifies correctly)."""
    train_xy, val_xy, (x_test, y_test) = pixel_data(300, 0), pixel_data(50, 1), pixel_data(200, 2)
    wrong = np.random.default_rng(4).random(len(y_test)) < 0.2
    y_test = np.where(wrong, (y_test + 1) % 10, y_test)
    return {"train": train_xy, "val": val_xy, "test": (x_test, y_test), "stats": PixelStats.fit(train_xy[0])}


@functools.cache
def trained_network():
    """A small two-layer network trained on the pixel data, float64 so that an image attacked
    alone and in a batch gets the same numbers."""
    data = splits()
    model = build_model(
        {"kind": "twolayer", "hidden_dim": 16, "init": "he", "init_scale": 1e-3},
        input_dim=D,
        num_classes=10,
        seed=0,
        dtype=np.float64,
        normalizer=Normalizer("mean_std", data["stats"].mean, data["stats"].std),
    )
    train(
        model,
        *data["train"],
        *data["val"],
        epochs=2,
        lr=0.05,
        lr_decay=0.9,
        batch_size=32,
        reg=0.0,
        seed=0,
        progress=False,
    )
    return model


# --- the study's example on every correctly classified image of its class ------------------


@pytest.mark.parametrize(
    "true, target, norm, epsilon, steps",
    [
        (TRUCK, AUTOMOBILE, "l2", 200.0, 1),  # the study's setting: one L2 step
        (0, 4, "linf", 6.0, 3),  # any classes, another norm, several steps
    ],
)
def test_the_share_and_the_first_fooled_image_equal_a_loop_over_the_images_with_the_one_image_attack(
    true, target, norm, epsilon, steps
):
    model = trained_network()
    x, y = splits()["test"]
    images = x.reshape(-1, 32, 32, 3)
    found = attack_class(
        model, images, y, true_label=true, target_label=target, norm=norm, epsilon=epsilon, steps=steps, batch_size=7
    )  # several batches

    predictions = model.predict(x)
    loop = {
        i: fooling_example(model, images[i], true, target, index=i, norm=norm, epsilon=epsilon, steps=steps)
        for i in range(len(y))
        if y[i] == true and predictions[i] == true
    }
    fooled = [i for i, ex in loop.items() if ex.fooled]
    assert 0 < len(fooled) < len(loop)  # the setting fools some images and not others
    np.testing.assert_array_equal(found.indices, list(loop))
    np.testing.assert_array_equal(found.indices[found.fooled], fooled)
    assert (found.n, found.fooled_count, found.share) == (len(loop), len(fooled), len(fooled) / len(loop))
    assert found.first_fooled.index == fooled[0] and found.before == list(loop).index(fooled[0]) > 0
    assert found.first_correct.index == min(loop) and not found.first_correct.fooled
    for shown in (found.first_fooled, found.first_correct):
        alone = loop[shown.index]
        np.testing.assert_allclose(shown.adversarial, alone.adversarial, rtol=0, atol=1e-9)
        np.testing.assert_allclose(shown.probs_after, alone.probs_after, rtol=1e-9)
        assert (shown.pred_before, shown.pred_after, shown.l2) == pytest.approx(
            (alone.pred_before, alone.pred_after, alone.l2)
        )


def test_a_class_the_network_never_gets_right_is_refused_by_name():
    model = trained_network()
    x, y = splits()["test"]
    with pytest.raises(ValueError, match="no image of class 7 is classified correctly"):
        attack_class(model, x[y != 7], y[y != 7], true_label=7, target_label=1, norm="l2", epsilon=91.0, steps=1)


def test_the_example_record_names_the_shown_image_the_share_and_the_studys_first_image():
    model = trained_network()
    x, y = splits()["test"]
    found = attack_class(
        model, x.reshape(-1, 32, 32, 3), y, true_label=TRUCK, target_label=AUTOMOBILE, norm="l2", epsilon=200.0, steps=1
    )
    names = [f"c{i}" for i in range(10)]
    record = json.loads(json.dumps(class_record(found, names)))  # plain JSON, as written
    assert record["shown"] == "first fooled" and record["index"] == found.first_fooled.index
    assert record["fooled"] is True and record["pred_after"] == "c1" and record["true_class"] == "c9"
    assert (record["attacked"], record["fooled_count"], record["before"]) == (found.n, found.fooled_count, found.before)
    assert record["share"] == found.share
    assert record["first_correct"]["index"] == found.first_correct.index
    assert record["first_correct"]["fooled"] is False
    assert not {"seconds", "started", "ended", "worker"} & set(record)

    nothing = attack_class(
        model, x.reshape(-1, 32, 32, 3), y, true_label=TRUCK, target_label=AUTOMOBILE, norm="l2", epsilon=1.0, steps=1
    )
    record = class_record(nothing, names)
    assert record["shown"] == "first correct" and record["before"] is None and record["fooled_count"] == 0
    assert record["index"] == nothing.first_correct.index


def sentence_record(**changes) -> dict:
    first = {
        "index": 9002,
        "fooled": False,
        "pred_after": "truck",
        "probs_after": {"truck": 0.544, "automobile": 0.448},
    }
    record = {
        "true_class": "truck",
        "target_class": "automobile",
        "norm": "l2",
        "epsilon": 91.0,
        "steps": 1,
        "attacked": 812,
        "fooled_count": 312,
        "share": 312 / 812,
        "shown": "first fooled",
        "before": 2,
        "index": 9010,
        "pred_before": "truck",
        "pred_after": "automobile",
        "probs_before": {"truck": 0.61, "automobile": 0.2},
        "probs_after": {"truck": 0.4, "automobile": 0.52},
        "first_correct": first,
    }
    return {**record, **changes}


def test_the_example_sentence_states_the_share_the_first_fooled_image_and_the_studys_image():
    assert example_sentence(sentence_record()) == (
        "**312 of 812** correctly classified truck test images (38.4%) are fooled by one targeted L2 step "
        "of 91 toward automobile. The first, test image 9010 (2 correctly classified truck images come "
        "before it), goes from truck (p = 0.61) to automobile (p = 0.52). The study's image, the first "
        "correctly classified truck, test image 9002, is not fooled: truck (p = 0.54)."
    )


def test_the_example_sentence_when_the_first_image_is_fooled_or_none_is():
    first_is = sentence_record(before=0, index=9002)
    assert example_sentence(first_is).endswith(
        "The first, test image 9002 (the first correctly classified one), goes from truck (p = 0.61) "
        "to automobile (p = 0.52)."
    )
    one_before = example_sentence(sentence_record(before=1))
    assert "(1 correctly classified truck image comes before it)" in one_before
    none = sentence_record(
        fooled_count=0, share=0.0, shown="first correct", before=None, steps=3, norm="linf", epsilon=8.0
    )
    assert example_sentence(none) == (
        "**0 of 812** correctly classified truck test images (0.0%) are fooled by 3 targeted L∞ steps "
        "of 8 in total toward automobile. The study's image, the first correctly classified truck, "
        "test image 9002, is not fooled: truck (p = 0.54)."
    )


# --- every trained network's robustness -----------------------------------------------------


def test_the_robustness_sample_is_drawn_by_its_seed_alone():
    sample = robustness_sample(10_000, 500, seed=0)
    assert sample.size == 500 and np.all(np.diff(sample) > 0)
    np.testing.assert_array_equal(sample, robustness_sample(10_000, 500, seed=0))
    assert not np.array_equal(sample, robustness_sample(10_000, 500, seed=1))
    np.testing.assert_array_equal(robustness_sample(30, 500, seed=0), np.arange(30))


def test_robustness_counts_the_samples_correct_images_and_the_pgd_that_fools_them():
    model = trained_network()
    x, y = splits()["test"]
    args = {k: SECTION[k] for k in ROBUSTNESS_ARGS}
    numbers = robustness(model, x, y, **args)

    sample = robustness_sample(len(y), SECTION["sample_size"], SECTION["seed"])
    correct = model.predict(x[sample]) == y[sample]
    targets = choose_targets(y[sample], "random", 10, SECTION["seed"])[correct]
    images, labels = x[sample][correct], y[sample][correct]
    assert numbers["n"] == correct.sum() < SECTION["sample_size"]  # the wrong labels are not attacked
    kw = dict(norm="l2", epsilon=200.0, steps=3, step_size=100.0)
    toward = model.predict(pgd(model, images, targets, **kw))
    away = model.predict(pgd(model, images, labels, targeted=False, **kw))
    assert numbers["targeted"] == pytest.approx(np.mean(toward == targets))
    assert numbers["untargeted"] == pytest.approx(np.mean(away != labels))
    assert 0 < numbers["targeted"] < numbers["untargeted"] <= 1
    sweep = robustness_sweep(
        model, images, targets, norm="l2", epsilons=[50, 200, 400, 800], steps=3, step_fraction=0.5
    )
    assert numbers["median_budget"] == sweep.median_min_epsilon in (50, 200, 400, 800)


def test_robustness_has_no_median_budget_when_half_resist_the_whole_grid_and_no_shares_with_no_correct_image():
    model = trained_network()
    x, y = splits()["test"]
    small = robustness(model, x, y, **{**{k: SECTION[k] for k in ROBUSTNESS_ARGS}, "budget": 1.0, "grid": [2.0]})
    assert small["median_budget"] is None and small["n"] > 0
    wrong = robustness(model, x, (model.predict(x) + 1) % 10, **{k: SECTION[k] for k in ROBUSTNESS_ARGS})
    assert wrong == {"n": 0, "targeted": None, "untargeted": None, "median_budget": None}


def test_a_runs_robustness_equals_the_attack_modules_on_the_saved_network(tmp_path):
    spec = RunSpec("twolayer", "baseline", CONFIG, 0, SECTION)
    record, _, model = train_run(spec, splits(), "k" * 64, "host:1")
    assert record["robustness"] is None  # measured apart, on this network or the run cache's copy
    measured, facts = measure_run(spec, record, model, splits(), "host:1")
    assert facts["worker"] == "host:1" and facts["ended"] >= facts["started"]
    model.save(tmp_path / "net.npz")
    x, y = splits()["test"]
    again = robustness(load_model(tmp_path / "net.npz"), x, y, **{k: SECTION[k] for k in ROBUSTNESS_ARGS})
    assert measured == again and again["n"] > 0
    assert all(isinstance(v, (int, float)) for v in again.values())  # numbers, for MLflow's robust_*


def test_robustness_is_none_when_disabled_or_the_run_diverged():
    record, _, model = train_classifier("twolayer", CONFIG, 0, splits(), progress=False)
    off = RunSpec("twolayer", "baseline", CONFIG, 0, {**SECTION, "enabled": False})
    assert measure_run(off, record, model, splits(), "host:1")[0] is None
    assert measure_run(RunSpec("twolayer", "baseline", CONFIG, 0), record, model, splits(), "host:1")[0] is None
    diverged, _, model = train_classifier("twolayer", {**CONFIG, "lr": 1e6}, 0, splits(), progress=False)
    assert diverged["diverged"] and diverged["robustness"] is None
    spec = RunSpec("twolayer", "baseline", {**CONFIG, "lr": 1e6}, 0, SECTION)
    assert measure_run(spec, diverged, model, splits(), "host:1")[0] is None
    assert run_robustness(model, splits()["test"], SECTION, diverged=True) is None


def test_the_robustness_params_key_the_measurement_only_when_it_is_made():
    # (the run key, the training's, takes no robustness at all: tests/test_robustness_cache.py)
    assert robustness_key(None) is None and robustness_key({**SECTION, "enabled": False, "sample_size": 7}) is None
    key = lambda section: robustness_entry_key("k" * 64, robustness_key(section))
    on = key(SECTION)
    assert on != robustness_entry_key("j" * 64, robustness_key(SECTION))  # another run's network
    assert (
        len(
            {
                on,
                key({**SECTION, "sample_size": 500}),
                key({**SECTION, "seed": 1}),
                key({**SECTION, "grid": [50.0]}),
                key({**SECTION, "steps": 4}),
            }
        )
        == 5
    )


# --- params ---------------------------------------------------------------------------------


@pytest.fixture
def raw():
    with open("params.yaml") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("enabled", "yes", "robustness.enabled is 'yes'; expected true or false"),
        ("sample_size", 0, "robustness.sample_size is 0; expected a whole number >= 1"),
        ("norm", "l3", "robustness.norm is 'l3'; expected one of 'l2', 'linf'"),
        ("budget", 0, "robustness.budget is 0; expected a number in (0, inf]"),
        ("grid", [45.5, -1.0], "robustness.grid is [45.5, -1.0]"),
        ("grid", [], "robustness.grid is []"),
        ("steps", 0, "robustness.steps is 0"),
        ("step_fraction", 0.0, "robustness.step_fraction is 0.0"),
    ],
)
def test_a_bad_robustness_param_is_refused_naming_its_key(raw, key, value, says):
    bad = {**raw, "robustness": {**raw["robustness"], key: value}}
    with pytest.raises(ParamsError) as err:
        validate(bad)
    assert says in str(err.value)


def test_a_missing_robustness_key_is_named(raw):
    bad = {**raw, "robustness": {k: v for k, v in raw["robustness"].items() if k != "seed"}}
    with pytest.raises(ParamsError, match=r"missing key robustness\.seed"):
        validate(bad)


def test_the_shipped_robustness_params_measure_the_studys_budget(raw):
    section = validate(raw)["robustness"]
    assert section["enabled"] and section["norm"] == "l2" and section["budget"] == 91.0
    assert section["steps"] == raw["attack"]["sweep"]["steps"]  # the attack sweep's PGD


# --- a norm declared once ---------------------------------------------------------------------


@pytest.fixture
def toy_norm(monkeypatch):
    """A scaled L2 ball (radius epsilon / 2), registered for one test only."""
    monkeypatch.setattr("scratchnet.attacks.NORMS", dict(NORMS))  # the registry as it was, after
    import scratchnet.attacks as attacks

    monkeypatch.setattr("scratchnet.study.plots.attack.NORMS", attacks.NORMS)
    half = lambda delta, epsilon: attacks.NORMS["l2"].project(delta, epsilon / 2)
    return register_norm(
        Norm("half_l2", attacks.NORMS["l2"].steepest, half, title="half-radius L2 ball (toy)", label="L2/2")
    )


def test_a_norm_added_to_the_registry_is_attacked_with_and_drawn_as_its_own_curve(toy_norm):
    from scratchnet.study.plots.attack import success_figure

    model = trained_network()
    x, y = splits()["test"]
    images, labels = x[:40], model.predict(x[:40])
    adversarial = pgd(model, images, labels, norm="half_l2", epsilon=100.0, steps=1, step_size=100.0, targeted=False)
    moved = np.linalg.norm(adversarial - images, axis=1)  # the half ball's radius, less what clips
    assert np.all(moved <= 50.0 + 1e-9) and moved.min() > 45.0
    sweeps = [
        robustness_sweep(
            model, images, labels, norm=name, epsilons=[0, 200, 800], steps=2, step_fraction=0.5, targeted=False
        )
        for name in ("l2", "half_l2")
    ]
    fig = success_figure(sweeps)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(panels) == {NORMS["l2"].title, "half-radius L2 ball (toy)"}
    toy = panels["half-radius L2 ball (toy)"]
    (line,) = [line for line in toy.get_lines() if line.get_label().startswith("untargeted")]
    np.testing.assert_array_equal(line.get_ydata(), sweeps[1].success_rate)
    assert "L2/2" in toy.get_xlabel()


def test_dvc_yaml_draws_every_registered_norms_success_curve():
    # DVC's plots section has no loop: a norm added to the registry needs its line there, and
    # this test says so (the PNG figure, params and the sweep need nothing more).
    from pathlib import Path

    from scratchnet.study import layout

    plots = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["plots"]
    drawn = {
        path for plot in plots for spec in plot.values() if isinstance(spec, dict) for path in (spec.get("y") or {})
    }
    assert {str(layout.attack_plot_data(norm)) for norm in NORMS} <= drawn


def test_the_figure_of_the_first_fooled_image_says_how_many_correct_images_came_before_it():
    from scratchnet.study.plots.attack import example_figures

    model = trained_network()
    x, y = splits()["test"]
    found = attack_class(
        model, x.reshape(-1, 32, 32, 3), y, true_label=TRUCK, target_label=AUTOMOBILE, norm="l2", epsilon=200.0, steps=1
    )
    names = [f"c{i}" for i in range(10)]
    title = example_figures(found.first_fooled, names, before=found.before)["original"].axes[0].get_title()
    assert title == (
        f"test image {found.first_fooled.index}: c9\npredicted c9 "
        f"(p = {found.first_fooled.probs_before[TRUCK]:.2f})\nfirst fooled; {found.before} "
        "correct before it were not"
    )
    plain = example_figures(found.first_correct, names)["original"].axes[0].get_title()
    assert "fooled" not in plain  # the study's image, shown alone, as before
