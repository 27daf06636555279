"""The attack stage's study side: its records, its headline numbers, the example's sentence.

The numbers come from the core (`scratchnet.attacks`: PGD, the class-wide example, the sweeps);
this module turns them into the stage's records (results/attack/example.json, sweep.csv rows,
metrics/attack.json, the MLflow details) and the sentence a report states about the example.
Classes are named here (the core uses indices); every JSON value is a plain number, string,
bool or None (JSON has no NaN or inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scratchnet.attacks import (
    NORMS,
    ClassAttack,
    FoolingExample,
    SweepResult,
    attack_class,
    choose_targets,
    robustness_sweep,
    sample_correct,
)

SWEEP_COLUMNS = ("norm", "epsilon", "mode", "success_rate", "median_l2", "n")  # sweep_rows


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# The sweep's rows and metrics


def sweep_metrics(sweep: SweepResult) -> dict[str, float | None]:
    """One sweep's MLflow metrics: success_eps_<epsilon> for each epsilon, the median minimal
    epsilon and the median smallest L2 of the fooled images; None where a value is not finite."""
    section = {
        f"success_eps_{np.format_float_positional(e, trim='-')}": _finite(r)
        for e, r in zip(sweep.epsilons, sweep.success_rate)
    }
    section["median_min_epsilon"] = _finite(sweep.median_min_epsilon)
    section["median_l2"] = _finite(sweep.median_l2[-1])  # at the largest budget: every fooled image
    return section


def sweep_rows(sweep: SweepResult) -> list[dict]:
    """One row per epsilon, SWEEP_COLUMNS (layout.ATTACK_SWEEP_CSV)."""
    return [
        dict(zip(SWEEP_COLUMNS, (sweep.norm, float(eps), sweep.mode, float(rate), float(l2), sweep.n)))
        for eps, rate, l2 in zip(sweep.epsilons, sweep.success_rate, sweep.median_l2)
    ]


# --------------------------------------------------------------------------------------------
# The study's example: results/attack/example.json


def example_record(example: FoolingExample, class_names: list[str]) -> dict:
    """One attacked image as JSON: classes by name, norms in pixel units."""
    names = [str(c) for c in class_names]
    return {
        "index": example.index,
        "true_class": names[example.true_label],
        "target_class": names[example.target_label],
        **{k: getattr(example, k) for k in ("norm", "epsilon", "steps", "step_size", "l2", "linf")},
        "probs_before": dict(zip(names, map(float, example.probs_before))),
        "probs_after": dict(zip(names, map(float, example.probs_after))),
        "pred_before": names[example.pred_before],
        "pred_after": names[example.pred_after],
        "fooled": example.fooled,
        "pred_after_uint8": names[example.pred_after_uint8],
        "fooled_after_uint8": example.pred_after_uint8 == example.target_label,
    }


def class_record(attack: ClassAttack, class_names: list[str]) -> dict:
    """layout.ATTACK_EXAMPLE: the attack on every correctly classified image of the true class.

    Top level: the image the figures show (example_record): the first one the attack fools,
    or the first correctly classified one when it fools none (`shown` says which). Beside it:
    `attacked` (the class's correctly classified test images, all attacked), `fooled_count`,
    `share` (fooled_count / attacked), `before` (how many of them precede the shown fooled one;
    None when none is fooled) and `first_correct` (the study's own image, example_record).
    """
    return {
        **example_record(attack.shown, class_names),
        "shown": "first fooled" if attack.first_fooled is not None else "first correct",
        "before": attack.before,
        "attacked": attack.n,
        "fooled_count": attack.fooled_count,
        "share": attack.share,
        "first_correct": example_record(attack.first_correct, class_names),
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _image(record: dict, key: str) -> str:
    """'truck (p = 0.61)': an image's predicted class `key` ('pred_before'/'pred_after') and its p."""
    probs = record["probs_before" if key == "pred_before" else "probs_after"]
    return f"{record[key]} (p = {probs[record[key]]:.2f})"


def example_sentence(record: dict) -> str:
    """What example.json (class_record) says, in one sentence or two, e.g. "**312 of 812**
    correctly classified truck test images (38.4%) are fooled by one targeted L2 step of 91
    toward automobile. The first, test image 9010 (2 correctly classified truck images come
    before it), goes from truck (p = 0.61) to automobile (p = 0.52). The study's image, the
    first correctly classified truck, test image 9002, is not fooled: truck (p = 0.54)."
    """
    true, target, steps = record["true_class"], record["target_class"], int(record["steps"])
    label = NORMS[record["norm"]].label if record["norm"] in NORMS else record["norm"]
    epsilon = float(record["epsilon"])
    attack = (
        f"one targeted {label} step of {epsilon:g}"
        if steps == 1
        else f"{steps} targeted {label} steps of {epsilon:g} in total"
    )
    text = (
        f"**{record['fooled_count']} of {record['attacked']}** correctly classified {true} test images "
        f"({_pct(record['share'])}) are fooled by {attack} toward {target}."
    )
    first = record["first_correct"]
    if record["shown"] == "first fooled":
        before = record["before"]
        came = (
            "the first correctly classified one"
            if before == 0
            else f"1 correctly classified {true} image comes before it"
            if before == 1
            else f"{before} correctly classified {true} images come before it"
        )
        text += (
            f" The first, test image {record['index']} ({came}), goes from {_image(record, 'pred_before')} "
            f"to {_image(record, 'pred_after')}."
        )
        if before == 0:
            return text
    outcome = "fooled" if first["fooled"] else "not fooled"
    return text + (
        f" The study's image, the first correctly classified {true}, test image {first['index']}, "
        f"is {outcome}: {_image(first, 'pred_after')}."
    )


# --------------------------------------------------------------------------------------------
# The attack stage's work: the example, then the sweeps, and their headline numbers


@dataclass(frozen=True)
class AttackStudy:
    """What the attack stage reports. Images in pixel units; classes as indices."""

    test_acc: float  # the attacked model on every test image
    example: ClassAttack
    sample: np.ndarray  # (n,) indices of the swept test images
    sweeps: list[SweepResult]  # per norm in params order: targeted, then untargeted

    def headline(self) -> dict:
        """metrics/attack.json: `fooled`, the targeted success rate on the sample at the study's
        budget (the example's norm and epsilon, which joins that norm's grid), to 4 decimals;
        None when nothing was sampled or that norm is not swept. The example's share stays in
        details(): a sixth headline metric widens the README's `dvc exp show` past 120 columns."""
        norm, epsilon = self.example.norm, self.example.epsilon
        rates = [
            float(s.success_rate[list(s.epsilons).index(epsilon)]) for s in self.sweeps if s.targeted and s.norm == norm
        ]
        return {"fooled": round(rates[0], 4) if rates and not math.isnan(rates[0]) else None}

    def details(self) -> dict:
        """Every number, for the MLflow run (the DVC metrics file keeps only the headline)."""
        ex = self.example.shown
        out: dict = {
            "test_acc": self.test_acc,
            "sample_size": int(self.sample.size),
            "example": {
                "share": self.example.share,
                "attacked": self.example.n,
                **{k: getattr(ex, k) for k in ("fooled", "l2", "linf")},
                "confidence": float(ex.probs_after[ex.target_label]),
            },
        }
        for sweep in self.sweeps:
            out.setdefault(sweep.mode, {})[sweep.norm] = sweep_metrics(sweep)
        return out

    def plot_rows(self, norm: str) -> list[dict]:
        """[{epsilon, targeted, untargeted}] success rates of one norm, one row per epsilon."""
        by_mode = {s.mode: s for s in self.sweeps if s.norm == norm}
        return [
            {"epsilon": float(e), "targeted": float(t), "untargeted": float(u)}
            for e, t, u in zip(
                by_mode["targeted"].epsilons, by_mode["targeted"].success_rate, by_mode["untargeted"].success_rate
            )
        ]


def attack_study(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    true_label: int,
    target_label: int,
    example: dict,
    sweep: dict,
    log=print,
) -> AttackStudy:
    """The study's example and the robustness sweeps against `model`, on test images.

    images: (N, 32, 32, 3) uint8 test pixels; labels: (N,) int64 classes; example, sweep:
    params.yaml's attack.example and attack.sweep. The example's attack runs on every correctly
    classified image of `true_label`; its epsilon joins its norm's sweep grid, so success at the
    study's budget is measured rather than read off a neighbouring epsilon.
    """
    predictions = model.predict(images.reshape(len(images), -1))
    found = attack_class(
        model,
        images,
        labels,
        true_label=true_label,
        target_label=target_label,
        norm=example["norm"],
        epsilon=example["epsilon"],
        steps=example["steps"],
    )
    log(
        f"attack: the example's attack fools {found.fooled_count} of {found.n} correctly classified "
        f"images of class {true_label} ({_pct(found.share)})"
    )
    sample = sample_correct(predictions, labels, sweep["sample_size"], sweep["seed"])
    targets = choose_targets(labels[sample], sweep["target"], model.num_classes, sweep["seed"])
    sweeps = []
    for norm, grid in sweep["epsilons"].items():
        extra = [float(example["epsilon"])] if norm == example["norm"] else []
        for targeted in (True, False):
            result = robustness_sweep(
                model,
                images[sample],
                targets if targeted else labels[sample],
                norm=norm,
                epsilons=sorted(set(grid) | set(extra)),
                steps=sweep["steps"],
                step_fraction=sweep["step_fraction"],
                targeted=targeted,
            )
            sweeps.append(result)
            rates = ", ".join(f"{e:g}: {r:.2f}" for e, r in zip(result.epsilons, result.success_rate))
            log(f"attack: {result.mode} {norm} success by epsilon {{{rates}}}")
    return AttackStudy(test_acc=float(np.mean(predictions == labels)), example=found, sample=sample, sweeps=sweeps)
