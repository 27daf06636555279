"""Fooling images (issue 5): pixel-space gradients, PGD, the robustness sweep, the attack stage."""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchnet.attacks import (
    SweepResult,
    choose_targets,
    first_correct,
    fooling_example,
    perturbation_norms,
    pgd,
    project,
    robustness_sweep,
    sample_correct,
    steepest_direction,
)
from scratchnet.nn import Normalizer, build_model
from scratchnet.study import layout
from scratchnet.study.attack_study import AttackStudy, attack_study, example_record, sweep_metrics, sweep_rows

D = 3072
ROOT = Path(__file__).resolve().parents[1]


def make_normalizer(seed: int = 0) -> Normalizer:
    """Per-pixel statistics of the kind preprocess computes: mean near mid-grey, std ~ 60."""
    rng = np.random.default_rng(seed)
    return Normalizer("mean_std", mean=rng.uniform(100, 150, D), std=rng.uniform(40, 80, D))


@functools.cache
def make_classifier(kind: str = "twolayer", seed: int = 0, dtype=np.float64):
    """A network that takes pixels: its input normaliser is the one it would be trained with."""
    config = {"kind": kind, "init": "he", "init_scale": 1e-3}
    if kind == "twolayer":
        config["hidden_dim"] = 16
    return build_model(config, input_dim=D, num_classes=10, seed=seed, dtype=dtype, normalizer=make_normalizer(seed))


def flat(images: np.ndarray) -> np.ndarray:
    return np.asarray(images).reshape(len(images), -1)


def random_images(n: int, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) float64 pixels in [0, 255]."""
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3))


def sum_of_losses(model, images: np.ndarray, labels: np.ndarray) -> float:
    loss, _ = model.loss(flat(images), labels)
    return loss * len(images)  # model.loss is the mean; each row's gradient is of its own loss


# --- pixel space -------------------------------------------------------------------------


def test_the_model_the_attack_and_the_mlflow_model_agree_on_what_a_raw_image_maps_to(tmp_path):
    pytest.importorskip("mlflow")
    from scratchnet.study.pyfunc_model import ImageClassifier

    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    model = make_classifier(dtype=np.float32)
    norm = model.normalizer
    by_hand = norm.forward(flat(images))  # the training's scaling, written out
    np.testing.assert_allclose(by_hand, (flat(images) - norm.mean) / norm.std, rtol=1e-5, atol=1e-6)
    expected = model.probabilities(flat(images))
    # rtol 1e-5: the network folds the scaling into its first GEMM on uncentred pixels (issue 26)
    np.testing.assert_allclose(
        expected,
        build_model(model.config, input_dim=D, num_classes=10, seed=0, dtype=np.float32).probabilities(by_hand),
        rtol=1e-5,
    )
    # The attack sees the same probabilities (its zero-budget example is the image itself).
    # (float32 to float32 rounding: BLAS may sum a 2-row and a 4-row batch in another order)
    example = fooling_example(model, images[0], 0, 1, index=0, norm="l2", epsilon=0.0, steps=1)
    np.testing.assert_allclose(example.probs_before, expected[0], rtol=1e-5)
    # The MLflow model loads the saved network and predicts from the same raw pixels.
    model.save(tmp_path / "twolayer.npz")
    served = ImageClassifier()
    served.load_context(
        type(
            "Context",
            (),
            {
                "artifacts": {"network": str(tmp_path / "twolayer.npz")},
                "model_config": {"class_names": [str(c) for c in range(10)]},
            },
        )()
    )
    frame = served.predict(None, images)
    np.testing.assert_allclose(frame[[str(c) for c in range(10)]].to_numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(frame["label"], expected.argmax(axis=1))


@pytest.mark.parametrize("kind", ["softmax", "twolayer"])
def test_pixel_gradient_matches_central_differences(kind):
    classifier = make_classifier(kind)
    images = random_images(3, seed=2).reshape(3, D)
    labels = np.array([0, 3, 9])
    grad = classifier.input_gradient(images, labels)
    assert grad.shape == (3, D) and grad.dtype == np.float64

    h = 1e-3  # pixel units; float64 end to end, so the error is O(h^2) + rounding
    coords = np.random.default_rng(3).choice(3 * D, size=60, replace=False)
    for flat_index in coords:
        i, j = divmod(int(flat_index), D)
        up, down = images.copy(), images.copy()
        up[i, j] += h
        down[i, j] -= h
        numeric = (sum_of_losses(classifier, up, labels) - sum_of_losses(classifier, down, labels)) / (2 * h)
        assert numeric == pytest.approx(grad[i, j], rel=1e-5, abs=1e-10)


# --- PGD ---------------------------------------------------------------------------------


def image_batch(seed: int, kind: str, n: int) -> np.ndarray:
    """Random pixel images, including ones already on the box's faces so clipping is exercised."""
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.uniform(0, 255, (n, D))
    if kind == "saturated":
        return rng.choice([0.0, 255.0], size=(n, D))
    return np.full((n, D), 0.0 if kind == "black" else 255.0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["uniform", "saturated", "black", "white"]),
    n=st.integers(1, 3),
    norm=st.sampled_from(["l2", "linf"]),
    epsilon=st.floats(0, 2000),
    steps=st.integers(1, 4),
    step_ratio=st.floats(0, 3),
    targeted=st.booleans(),
)
def test_pgd_never_leaves_the_epsilon_ball_or_the_pixel_range(
    seed, kind, n, norm, epsilon, steps, step_ratio, targeted
):
    classifier = make_classifier()
    images = image_batch(seed, kind, n)
    labels = np.random.default_rng(seed).integers(0, 10, n)
    adversarial = pgd(
        classifier,
        images,
        labels,
        norm=norm,
        epsilon=epsilon,
        steps=steps,
        step_size=step_ratio * epsilon,
        targeted=targeted,
    )
    assert adversarial.shape == images.shape
    assert adversarial.min() >= 0 and adversarial.max() <= 255
    l2, linf = perturbation_norms(images, adversarial)
    size = l2 if norm == "l2" else linf
    assert np.all(size <= epsilon * (1 + 1e-12) + 1e-12)


def test_projection_keeps_points_inside_the_ball_and_pulls_outside_ones_to_its_surface():
    delta = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])  # L2 lengths 5, 0.5, 0; L-inf 4, 0.4, 0
    np.testing.assert_allclose(project(delta, "l2", 1.0), [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]])
    np.testing.assert_allclose(project(delta, "linf", 1.0), [[1.0, 1.0], [0.3, 0.4], [0.0, 0.0]])


def test_projection_shrinks_a_perturbation_shorter_than_one_pixel_to_a_smaller_ball():
    delta = np.array([[0.3, 0.4]])  # L2 length 0.5
    np.testing.assert_allclose(project(delta, "l2", 0.25), [[0.15, 0.2]])


def test_the_steepest_l2_direction_is_the_unit_gradient_and_zero_where_the_gradient_is_zero():
    grad = np.array([[3.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(steepest_direction(grad, "l2"), [[0.6, -0.8], [0.0, 0.0]], rtol=1e-12)
    np.testing.assert_array_equal(steepest_direction(grad, "linf"), [[1.0, -1.0], [0.0, 0.0]])


def test_one_l2_step_moves_the_image_by_exactly_epsilon_when_nothing_clips():
    classifier = make_classifier()
    images = np.full((5, D), 128.0)  # mid-grey: a step of L2 length 20 cannot reach 0 or 255
    labels = np.arange(5)
    for epsilon in (0.5, 20.0):
        adversarial = pgd(classifier, images, labels, norm="l2", epsilon=epsilon, steps=1, step_size=epsilon)
        l2, _ = perturbation_norms(images, adversarial)
        np.testing.assert_allclose(l2, epsilon, rtol=1e-12)


def test_one_linf_step_moves_every_pixel_by_exactly_epsilon_when_nothing_clips():
    classifier = make_classifier()
    images = np.full((2, D), 128.0)
    adversarial = pgd(classifier, images, [1, 2], norm="linf", epsilon=2.0, steps=1, step_size=2.0)
    np.testing.assert_allclose(np.abs(adversarial - images), 2.0)


def test_pgd_clips_to_the_pixel_range_and_keeps_the_rest_of_the_step():
    classifier = make_classifier()
    images = np.zeros((1, D))  # black: every step that would go below 0 is clipped
    adversarial = pgd(classifier, images, [4], norm="linf", epsilon=8.0, steps=1, step_size=8.0)
    direction = -np.sign(classifier.input_gradient(flat(images), [4]))  # descend toward class 4
    np.testing.assert_array_equal(adversarial, np.where(direction > 0, 8.0, 0.0))


def test_pgd_is_deterministic_and_leaves_its_input_untouched():
    classifier = make_classifier()
    images = random_images(3, seed=5)
    before = images.copy()
    first = pgd(classifier, images, [1, 2, 3], norm="l2", epsilon=300.0, steps=5, step_size=75.0)
    second = pgd(classifier, images, [1, 2, 3], norm="l2", epsilon=300.0, steps=5, step_size=75.0)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(images, before)


@pytest.mark.parametrize("norm, epsilon", [("l2", 3000.0), ("linf", 64.0)])
def test_targeted_pgd_with_a_large_budget_reaches_the_target(norm, epsilon):
    classifier = make_classifier("softmax")
    images = random_images(10, seed=6)
    targets = (classifier.predict(flat(images)) + 3) % 10
    adversarial = pgd(classifier, images, targets, norm=norm, epsilon=epsilon, steps=20, step_size=epsilon / 5)
    np.testing.assert_array_equal(classifier.predict(flat(adversarial)), targets)


def test_targeted_steps_raise_the_target_probability_and_untargeted_steps_lower_the_true_one():
    classifier = make_classifier()
    images = random_images(8, seed=7)
    labels = classifier.predict(flat(images))
    targets = (labels + 1) % 10
    rows = np.arange(8)
    p0 = classifier.probabilities(flat(images))
    toward = pgd(classifier, images, targets, norm="l2", epsilon=5.0, steps=1, step_size=5.0)
    away = pgd(classifier, images, labels, norm="l2", epsilon=5.0, steps=1, step_size=5.0, targeted=False)
    assert np.all(classifier.probabilities(flat(toward))[rows, targets] > p0[rows, targets])
    assert np.all(classifier.probabilities(flat(away))[rows, labels] < p0[rows, labels])


def test_pgd_rejects_images_outside_the_pixel_range_and_unknown_norms():
    classifier = make_classifier()
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        pgd(classifier, np.full((1, D), 256.0), [0], norm="l2", epsilon=1.0, steps=1, step_size=1.0)
    with pytest.raises(ValueError, match="norm"):
        pgd(classifier, np.zeros((1, D)), [0], norm="l1", epsilon=1.0, steps=1, step_size=1.0)


def test_pgd_rejects_negative_pixels_nan_and_labels_of_another_length_naming_the_problem():
    classifier = make_classifier()
    for bad in (-1.0, np.nan):
        with pytest.raises(ValueError, match=r"finite pixels in \[0, 255\]"):
            pgd(classifier, np.full((1, D), bad), [0], norm="l2", epsilon=1.0, steps=1, step_size=1.0)
    with pytest.raises(ValueError, match=r"norm must be one of l2, linf; got 'l1'"):
        pgd(classifier, np.zeros((1, D)), [0], norm="l1", epsilon=1.0, steps=1, step_size=1.0)
    with pytest.raises(ValueError, match=r"labels must have one class per image \(2\); got shape \(3,\)"):
        pgd(classifier, np.zeros((2, D)), [0, 1, 2], norm="l2", epsilon=1.0, steps=1, step_size=1.0)


@pytest.mark.parametrize("epsilon, steps, step_size", [(-1.0, 1, 1.0), (1.0, -1, 1.0), (1.0, 1, -1.0)])
def test_pgd_rejects_a_negative_budget_step_count_or_step_size(epsilon, steps, step_size):
    with pytest.raises(ValueError, match=f"must be >= 0; got {epsilon}, {step_size}, {steps}"):
        pgd(make_classifier(), np.zeros((1, D)), [0], norm="l2", epsilon=epsilon, steps=steps, step_size=step_size)


def test_pgd_with_zero_steps_returns_the_image():
    images = random_images(2, seed=14)
    adversarial = pgd(make_classifier(), images, [1, 2], norm="l2", epsilon=5.0, steps=0, step_size=5.0)
    np.testing.assert_array_equal(adversarial, images)


@pytest.mark.parametrize("targeted", [True, False])
def test_a_step_shorter_than_the_budget_moves_by_exactly_the_step_size(targeted):
    classifier = make_classifier()
    images = np.full((3, D), 128.0)
    for step_size in (1.0, 3.0):  # 1.0: a unit step is a step, not "no step"
        adversarial = pgd(
            classifier, images, [0, 1, 2], norm="l2", epsilon=10.0, steps=1, step_size=step_size, targeted=targeted
        )
        np.testing.assert_allclose(perturbation_norms(images, adversarial)[0], step_size, rtol=1e-12)
    adversarial = pgd(
        classifier, images, [0, 1, 2], norm="linf", epsilon=1.0, steps=1, step_size=1.0, targeted=targeted
    )  # a budget of one grey level is a budget, not "no budget"
    np.testing.assert_allclose(np.abs(adversarial - images), 1.0)


# --- the study's example -----------------------------------------------------------------


def test_first_correct_is_the_first_image_of_the_class_the_model_gets_right():
    labels = np.array([9, 1, 9, 9, 9])
    predictions = np.array([1, 1, 0, 9, 9])
    assert first_correct(predictions, labels, 9) == 3
    with pytest.raises(ValueError, match="no image of class 2"):
        first_correct(predictions, labels, 2)


def test_fooling_example_records_a_single_step_of_length_epsilon():
    classifier = make_classifier()
    image = np.full((32, 32, 3), 128.0)
    true = int(classifier.predict(flat(image[None]))[0])
    target = (true + 1) % 10
    example = fooling_example(classifier, image, true, target, index=7, norm="l2", epsilon=91.0, steps=1)
    assert example.step_size == 91.0 and example.adversarial.shape == (32, 32, 3)
    assert example.l2 == pytest.approx(91.0)
    assert example.linf == pytest.approx(np.abs(example.difference).max())
    assert example.probs_after[target] > example.probs_before[target]
    assert example.pred_before == true

    names = [f"class{i}" for i in range(10)]
    record = example_record(example, names)
    assert {
        "index",
        "true_class",
        "target_class",
        "norm",
        "epsilon",
        "steps",
        "l2",
        "linf",
        "probs_before",
        "probs_after",
        "pred_before",
        "pred_after",
        "fooled",
    } <= set(record)
    assert record["true_class"] == names[true] and record["index"] == 7
    assert sum(record["probs_before"].values()) == pytest.approx(1.0)
    assert record["fooled"] == (example.pred_after == target)
    json.dumps(record)  # JSON-serialisable as it stands


def test_a_multi_step_fooling_example_records_its_steps_and_its_predictions():
    classifier = make_classifier()
    image = np.full((32, 32, 3), 128.0)
    true = int(classifier.predict(flat(image[None]))[0])
    target = (true + 3) % 10  # not class 0, so a prediction of 0 by default cannot pass for it
    example = fooling_example(classifier, image, true, target, index=3, norm="linf", epsilon=8.0, steps=4)
    assert example.step_size == 2.0  # epsilon / steps: four steps add up to the budget
    adversarial = flat(example.adversarial[None])
    assert example.pred_after == int(classifier.predict(adversarial)[0]) == target != 0
    assert example.pred_after_uint8 == int(classifier.predict(np.round(adversarial))[0])
    names = [f"class{i}" for i in range(10)]
    record = example_record(example, names)
    assert (record["norm"], record["epsilon"], record["steps"], record["step_size"]) == ("linf", 8.0, 4, 2.0)
    assert record["pred_after"] == names[example.pred_after]
    assert record["pred_after_uint8"] == names[example.pred_after_uint8]
    assert record["fooled_after_uint8"] == (example.pred_after_uint8 == target)


# --- the sweep ---------------------------------------------------------------------------


def test_sample_correct_draws_a_seeded_sample_of_correctly_classified_images_only():
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 10, 500)
    predictions = np.where(rng.random(500) < 0.5, labels, (labels + 1) % 10)
    sample = sample_correct(predictions, labels, 100, seed=0)
    assert sample.size == 100 and np.unique(sample).size == 100
    assert np.all(predictions[sample] == labels[sample]) and np.all(np.diff(sample) > 0)
    np.testing.assert_array_equal(sample, sample_correct(predictions, labels, 100, seed=0))
    assert not np.array_equal(sample, sample_correct(predictions, labels, 100, seed=1))
    everything = sample_correct(predictions, labels, 10_000, seed=0)  # fewer correct than asked
    np.testing.assert_array_equal(everything, np.flatnonzero(predictions == labels))


def test_targets_are_the_next_class_or_a_seeded_uniform_other_class():
    labels = np.repeat(np.arange(10), 300)
    np.testing.assert_array_equal(choose_targets(labels, "next", 10, seed=0), (labels + 1) % 10)
    targets = choose_targets(labels, "random", 10, seed=0)
    assert np.all(targets != labels) and set(np.unique(targets)) == set(range(10))
    np.testing.assert_array_equal(targets, choose_targets(labels, "random", 10, seed=0))
    counts = np.bincount((targets - labels) % 10, minlength=10)[1:]  # offsets 1..9, ~333 each
    assert counts.min() > 250
    with pytest.raises(ValueError, match="target rule"):
        choose_targets(labels, "hardest", 10, seed=0)


def test_an_unknown_target_rule_is_rejected_naming_the_rules():
    with pytest.raises(ValueError, match="target rule must be one of next, random; got 'hardest'"):
        choose_targets(np.arange(3), "hardest", 10, seed=0)


@pytest.mark.parametrize("norm, epsilons", [("l2", [0, 100, 25, 400, 1600]), ("linf", [0, 1, 4, 16, 64])])
def test_success_rate_is_zero_at_epsilon_zero_and_reached_by_the_largest_budget(norm, epsilons):
    classifier = make_classifier()
    images = random_images(40, seed=9)
    labels = classifier.predict(flat(images))  # every image "correctly classified"
    for targeted in (True, False):
        goals = (labels + 1) % 10 if targeted else labels
        sweep = robustness_sweep(
            classifier,
            images,
            goals,
            norm=norm,
            epsilons=epsilons,
            steps=4,
            step_fraction=0.5,
            targeted=targeted,
            batch_size=16,
        )
        np.testing.assert_array_equal(sweep.epsilons, sorted(epsilons))
        assert sweep.success_rate[0] == 0.0
        # (success is non-decreasing by construction: an image fooled at a smaller budget counts
        # as fooled at every larger one, so that is not asserted here: it could not fail)
        assert sweep.success_rate[-1] > 0.5  # the budget grid reaches attacks that work


def test_success_at_epsilon_zero_is_the_rate_already_classified_as_the_target():
    classifier = make_classifier()
    images = random_images(30, seed=10)
    predictions = classifier.predict(flat(images))
    targets = np.where(np.arange(30) % 3 == 0, predictions, (predictions + 1) % 10)  # a third already there
    sweep = robustness_sweep(classifier, images, targets, norm="linf", epsilons=[0], steps=3, step_fraction=0.5)
    assert sweep.success_rate[0] == pytest.approx(np.mean(predictions == targets)) == pytest.approx(1 / 3)
    assert sweep.median_l2[0] == 0.0  # those images need no perturbation at all


def test_the_sweep_records_the_l2_size_of_each_perturbation_whatever_the_norm_of_the_attack():
    classifier = make_classifier()
    images = random_images(4, seed=12)
    targets = (classifier.predict(flat(images)) + 1) % 10
    sweep = robustness_sweep(classifier, images, targets, norm="linf", epsilons=[2.0], steps=2, step_fraction=0.5)
    adversarial = pgd(classifier, images, targets, norm="linf", epsilon=2.0, steps=2, step_size=1.0)
    np.testing.assert_allclose(sweep.l2[0], perturbation_norms(images, adversarial)[0])
    assert sweep.success.dtype == bool


def test_the_sweep_rejects_a_negative_epsilon_naming_the_list():
    with pytest.raises(ValueError, match=r"numbers >= 0; got \[-1.0, 2.0\]"):
        robustness_sweep(
            make_classifier(),
            random_images(1, seed=0),
            [0],
            norm="l2",
            epsilons=[-1.0, 2.0],
            steps=1,
            step_fraction=1.0,
        )


def test_sweep_metrics_are_none_where_no_image_was_fooled():
    sweep = SweepResult(
        norm="l2",
        targeted=True,
        epsilons=np.array([0.0, 1.0]),
        success=np.zeros((2, 3), dtype=bool),
        l2=np.zeros((2, 3)),
    )
    assert sweep_metrics(sweep) == {
        "success_eps_0": 0.0,
        "success_eps_1": 0.0,
        "median_min_epsilon": None,
        "median_l2": None,
    }


def test_sweep_bookkeeping_counts_an_image_fooled_from_its_smallest_successful_epsilon():
    # image 0: fooled at 1, PGD overshoots at 2, fooled again at 4; image 1: only at 4; image 2: never
    sweep = SweepResult(
        norm="l2",
        targeted=True,
        epsilons=np.array([0.0, 1.0, 2.0, 4.0]),
        success=np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 1, 0]], dtype=bool),
        l2=np.array([[0, 0, 0], [0.9, 1.0, 1.0], [2.0, 2.0, 2.0], [0.5, 3.0, 4.0]]),
    )
    np.testing.assert_allclose(sweep.raw_success_rate, [0, 1 / 3, 0, 2 / 3])
    np.testing.assert_allclose(sweep.success_rate, [0, 1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_array_equal(sweep.min_epsilon, [1.0, 4.0, np.inf])
    assert sweep.median_min_epsilon == 4.0
    np.testing.assert_allclose(sweep.median_l2, [np.nan, 0.9, 0.9, (0.5 + 3.0) / 2])
    assert sweep_metrics(sweep) == {
        "success_eps_0": 0.0,
        "success_eps_1": pytest.approx(1 / 3),
        "success_eps_2": pytest.approx(1 / 3),
        "success_eps_4": pytest.approx(2 / 3),
        "median_min_epsilon": 4.0,
        "median_l2": 1.75,
    }
    rows = sweep_rows(sweep)
    assert [r["epsilon"] for r in rows] == [0.0, 1.0, 2.0, 4.0]
    assert set(rows[0]) == {"norm", "epsilon", "mode", "success_rate", "median_l2", "n"}
    assert rows[-1]["mode"] == "targeted" and rows[-1]["n"] == 3


def small_attack_study(log):
    """attack_study on 30 random uint8 images labelled as the classifier sees them."""
    classifier = make_classifier()
    images = np.random.default_rng(13).integers(0, 256, (30, 32, 32, 3)).astype(np.uint8)
    labels = classifier.predict(flat(images))
    sweep = {
        "sample_size": 6,
        "seed": 3,
        "target": "random",
        "steps": 3,
        "step_fraction": 0.5,
        "epsilons": {"l2": [0, 3000], "linf": [0, 64]},
    }
    study = attack_study(
        classifier,
        images,
        labels,
        true_label=int(labels[0]),
        target_label=int(labels[0] + 1) % 10,
        example={"norm": "l2", "epsilon": 91.0, "steps": 1},
        sweep=sweep,
        log=log,
    )
    return classifier, images, labels, sweep, study


def test_the_attack_study_sweeps_a_seeded_sample_toward_seeded_targets_and_away_from_true_labels():
    lines = []
    classifier, images, labels, sweep, study = small_attack_study(lines.append)
    sample = sample_correct(labels, labels, 6, seed=3)
    np.testing.assert_array_equal(study.sample, sample)
    targets = choose_targets(labels[sample], "random", 10, seed=3)
    for i, (norm, targeted) in enumerate([("l2", True), ("l2", False), ("linf", True), ("linf", False)]):
        epsilons = [0, 91, 3000] if norm == "l2" else [0, 64]  # the example's epsilon joins its grid
        expected = robustness_sweep(
            classifier,
            images[sample],
            targets if targeted else labels[sample],
            norm=norm,
            epsilons=epsilons,
            steps=3,
            step_fraction=0.5,
            targeted=targeted,
        )
        assert (study.sweeps[i].norm, study.sweeps[i].targeted) == (norm, targeted)
        np.testing.assert_array_equal(study.sweeps[i].success, expected.success)
        assert expected.success_rate[-1] > 0.5  # large budgets succeed, so the goals matter
        rates = ", ".join(f"{e:g}: {r:.2f}" for e, r in zip(expected.epsilons, expected.success_rate))
        assert lines[i + 1] == f"attack: {expected.mode} {norm} success by epsilon {{{rates}}}"


def test_the_attack_study_reports_each_norms_curves_and_the_examples_numbers():
    _, _, _, _, study = small_attack_study(lambda line: None)
    linf = study.plot_rows("linf")
    assert [row["epsilon"] for row in linf] == [0.0, 64.0]
    assert [row["targeted"] for row in linf] == study.sweeps[2].success_rate.tolist()
    assert [row["untargeted"] for row in linf] == study.sweeps[3].success_rate.tolist()
    ex = study.example.shown
    assert study.details()["example"] == {
        "share": study.example.share,
        "attacked": study.example.n,
        "fooled": ex.fooled,
        "l2": ex.l2,
        "linf": ex.linf,
        "confidence": float(ex.probs_after[ex.target_label]),
    }


def test_the_headline_is_none_when_nothing_was_sampled_or_the_studys_norm_is_not_swept():
    _, _, _, _, study = small_attack_study(lambda line: None)
    empty = SweepResult(
        norm="l2",
        targeted=True,
        epsilons=np.array([0.0, 91.0]),
        success=np.zeros((2, 0), dtype=bool),
        l2=np.zeros((2, 0)),
    )
    nothing_sampled = AttackStudy(
        test_acc=1.0, example=study.example, sample=np.array([], dtype=np.int64), sweeps=[empty]
    )
    assert nothing_sampled.headline() == {"fooled": None}
    other_norm = AttackStudy(
        test_acc=1.0, example=study.example, sample=study.sample, sweeps=[s for s in study.sweeps if s.norm != "l2"]
    )
    assert other_norm.headline() == {"fooled": None}


# --- the stage ---------------------------------------------------------------------------


def load_stage():
    spec = importlib.util.spec_from_file_location("attack_stage", ROOT / "pipeline" / "attack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def test_attack_stage_writes_every_output_from_a_small_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(11)
    names = np.array(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    x_test = rng.integers(0, 256, (60, 32, 32, 3)).astype(np.uint8)
    model = build_model(
        {"kind": "twolayer", "hidden_dim": 16, "init": "he", "init_scale": 1e-3},
        input_dim=D,
        num_classes=10,
        seed=0,
        dtype=np.float32,
        normalizer=make_normalizer(),
    )
    # Label the images as the model sees them: all correct, so image 0 is the one to attack.
    y_test = model.predict(flat(x_test))
    layout.DATA_RAW.mkdir(parents=True)
    np.savez(layout.RAW_ARRAYS, x_test=x_test, y_test=y_test, class_names=names, x_train=x_test[:1], y_train=y_test[:1])
    layout.MODELS.mkdir()
    model.save(layout.model_path("twolayer"))  # the model file carries its input scaling
    truck = int(y_test[0])
    attack = {
        "example": {
            "true_class": str(names[truck]),
            "target_class": str(names[(truck + 1) % 10]),
            "norm": "l2",
            "epsilon": 91.0,
            "steps": 1,
        },
        "sweep": {
            "sample_size": 25,
            "seed": 0,
            "target": "next",
            "steps": 3,
            "step_fraction": 0.5,
            "epsilons": {"linf": [0, 4, 16], "l2": [0, 200, 800]},
        },
    }

    stage = load_stage()
    outputs = stage.run(attack)

    example = json.loads(layout.ATTACK_EXAMPLE.read_text())
    assert example["true_class"] == names[truck] and example["first_correct"]["index"] == 0
    assert example["l2"] == pytest.approx(91.0, rel=0.05)
    assert example["attacked"] == int(np.sum(y_test == truck))  # every one classified correctly
    assert example["share"] == example["fooled_count"] / example["attacked"]
    # a pure function of its inputs: no timing, host or date (BRIEF contract 3)
    assert not {"seconds", "started", "ended", "worker"} & set(example)
    with layout.ATTACK_SWEEP_CSV.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["norm", "epsilon", "mode", "success_rate", "median_l2", "n"]
    # The study's epsilon (L2 91) joins the L2 grid: 3 linf + 4 l2 epsilons, both modes.
    assert len(rows) == 2 * (3 + 4) and {r["mode"] for r in rows} == {"targeted", "untargeted"}
    assert sorted({float(r["epsilon"]) for r in rows if r["norm"] == "l2"}) == [0, 91, 200, 800]
    assert all(r["n"] == "25" for r in rows)
    metrics = json.loads(layout.ATTACK_METRICS.read_text())
    # Only the headline, one short column in `dvc metrics show` and `dvc exp show`: the targeted
    # success rate at the study's budget (L2 91), which the sweep measured.
    targeted = {(r["norm"], float(r["epsilon"])): float(r["success_rate"]) for r in rows if r["mode"] == "targeted"}
    assert metrics == {"fooled": round(targeted["l2", 91.0], 4)}
    assert outputs.metrics["example.share"] == example["share"]  # the example's share: MLflow
    for path in [*layout.ATTACK_IMAGES.values(), layout.ATTACK_SUCCESS_PLOT]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(outputs.artifacts) >= {layout.ATTACK_EXAMPLE, layout.ATTACK_SWEEP_CSV, layout.ATTACK_SUCCESS_PLOT}
    # The MLflow run gets the headline and every curve.
    assert outputs.metrics["example.l2"] == pytest.approx(example["l2"])
    assert outputs.metrics["test_acc"] == 1.0 and "test_accuracy" not in outputs.metrics
    assert outputs.metrics["targeted.l2.success_eps_0"] == 0.0 and outputs.metrics["sample_size"] == 25
    assert outputs.params["example.norm"] == "l2"
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files behind


def test_attack_stage_names_an_unknown_class_in_its_error(tmp_path, monkeypatch):
    stage = load_stage()
    with pytest.raises(ValueError, match="attack.example.true_class is 'lorry'"):
        stage.class_index(["automobile", "truck"], "lorry", "example.true_class")
