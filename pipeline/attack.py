"""attack stage: fool the trained two-layer network (the study's part 4), then measure how robust it is.

    python pipeline/attack.py

Reads the baseline network (models/twolayer.npz), the raw test images and class names
(data/raw/cifar10.npz), the normalisation statistics (data/processed/stats.npz) and params
`attack`. Writes results/attack/: the study's example (example.json and its three images), the
success-vs-epsilon table (sweep.csv) and figure, and metrics.json (DVC metrics).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchnet.study import layout
from scratchnet.attacks import (
    PixelClassifier, choose_targets, first_correct, fooling_example, robustness_sweep,
    sample_correct,
)
from scratchnet.data import DataError, Normalizer
from scratchnet.errors import MissingInputError
from scratchnet.study.cli import stage_main
from scratchnet.study.identity import config_hash
from scratchnet.files import read_json, write_bytes, write_csv, write_json
from scratchnet.nn import load_model
from scratchnet.study.params import ParamsError, load_params
from scratchnet.study.plots import example_figures, png_bytes, success_figure
from scratchnet.study.runs import base_tags
from scratchnet.study.tracking import Tracker, flatten

MODEL = "twolayer"
SWEEP_COLUMNS = ("norm", "epsilon", "mode", "success_rate", "median_l2", "n")


@dataclass
class AttackOutputs:
    """Everything the stage's MLflow run logs: flat params and metrics, and the files written."""

    params: dict[str, str]
    metrics: dict[str, float]
    artifacts: list[Path]


def load_test_images(path: Path = layout.RAW_ARRAYS) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """-> (x_test (N, 32, 32, 3) uint8 pixels, y_test (N,) int64, class names)."""
    if not Path(path).exists():
        raise MissingInputError(f"{path} not found: run the fetch stage first")
    with np.load(path, allow_pickle=False) as arrays:
        missing = {"x_test", "y_test", "class_names"} - set(arrays.files)
        if missing:
            raise DataError(f"{path} lacks arrays {sorted(missing)}; expected x_test, y_test, class_names")
        return arrays["x_test"], arrays["y_test"].astype(np.int64), [str(c) for c in arrays["class_names"]]


def class_index(class_names: list[str], name: str, key: str) -> int:
    if name not in class_names:
        raise ParamsError(f"params attack.{key} is {name!r}; expected one of {', '.join(class_names)}")
    return class_names.index(name)


def run(attack: dict) -> AttackOutputs:
    """The stage, given params["attack"]; writes every layout.ATTACK_* output."""
    started = time.perf_counter()
    images, labels, class_names = load_test_images()
    if not layout.model_path(MODEL).exists():
        raise MissingInputError(f"{layout.model_path(MODEL)} not found: train the {MODEL} baseline first")
    classifier = PixelClassifier(load_model(layout.model_path(MODEL)), Normalizer.load(layout.STATS))
    predictions = classifier.predict(images)

    # The study's figure: the first correctly classified test image of true_class, one target.
    spec = attack["example"]
    true_label = class_index(class_names, spec["true_class"], "example.true_class")
    target_label = class_index(class_names, spec["target_class"], "example.target_class")
    tick = time.perf_counter()
    index = first_correct(predictions, labels, true_label)
    example = fooling_example(
        classifier, images[index], true_label, target_label, index=index,
        norm=spec["norm"], epsilon=spec["epsilon"], steps=spec["steps"],
    )
    write_json(layout.ATTACK_EXAMPLE, {**example.record(class_names), "seconds": time.perf_counter() - tick})
    for name, fig in example_figures(example, class_names).items():
        write_bytes(layout.ATTACK_IMAGES[name], png_bytes(fig))

    # Beyond it: success vs epsilon on a seeded sample of correctly classified test images.
    sweep_spec = attack["sweep"]
    tick = time.perf_counter()
    sample = sample_correct(predictions, labels, sweep_spec["sample_size"], sweep_spec["seed"])
    targets = choose_targets(labels[sample], sweep_spec["target"], len(class_names), sweep_spec["seed"])
    sweeps = []
    for norm, epsilons in sweep_spec["epsilons"].items():
        for targeted in (True, False):
            sweep = robustness_sweep(
                classifier, images[sample], targets if targeted else labels[sample], norm=norm,
                epsilons=epsilons, steps=sweep_spec["steps"],
                step_fraction=sweep_spec["step_fraction"], targeted=targeted,
            )
            sweeps.append(sweep)
            rates = ", ".join(f"{e:g}: {r:.2f}" for e, r in zip(sweep.epsilons, sweep.success_rate))
            print(f"attack: {sweep.mode} {norm} success by epsilon {{{rates}}}", flush=True)
    sweep_seconds = time.perf_counter() - tick
    write_csv(layout.ATTACK_SWEEP_CSV, [row for s in sweeps for row in s.rows()], SWEEP_COLUMNS)
    for norm in sweep_spec["epsilons"]:  # one table per norm, so `dvc plots` draws it as lines
        by_mode = {s.mode: s for s in sweeps if s.norm == norm}
        write_csv(layout.attack_plot_data(norm), [
            {"epsilon": float(e), "targeted": float(t), "untargeted": float(u)} for e, t, u in
            zip(by_mode["targeted"].epsilons, by_mode["targeted"].success_rate,
                by_mode["untargeted"].success_rate)], ("epsilon", "targeted", "untargeted"))
    marks = {spec["norm"]: (spec["epsilon"], f"study's example (epsilon {spec['epsilon']:g})")}
    write_bytes(layout.ATTACK_SUCCESS_PLOT, png_bytes(success_figure(sweeps, marks=marks)))

    metrics = {
        "test_accuracy": float(np.mean(predictions == labels)),
        "example": {
            "l2": example.l2,
            "linf": example.linf,
            "fooled": example.fooled,
            "target_prob_before": float(example.probs_before[target_label]),
            "target_prob_after": float(example.probs_after[target_label]),
        },
        "sample_size": int(sample.size),
    }
    for sweep in sweeps:
        metrics.setdefault(sweep.mode, {})[sweep.norm] = sweep.metrics()
    metrics["sweep_seconds"] = sweep_seconds
    metrics["seconds"] = time.perf_counter() - started
    write_json(layout.ATTACK_METRICS, metrics)

    return AttackOutputs(
        params={k: str(v) for k, v in flatten(attack).items()},
        metrics={k: float(v) for k, v in flatten(metrics).items() if v is not None},
        artifacts=[layout.ATTACK_EXAMPLE, layout.ATTACK_SWEEP_CSV, layout.ATTACK_METRICS,
                   *layout.ATTACK_IMAGES.values(), layout.ATTACK_SUCCESS_PLOT],
    )


def main() -> None:
    params = load_params()
    tracker = Tracker(params["tracking"]["experiment"])  # fails here if the server is down
    outputs = run(params["attack"])
    m = outputs.metrics
    print(
        f"attack: example L2 = {m['example.l2']:.1f}, fooled = {bool(m['example.fooled'])}; "
        f"{int(m['sample_size'])} images swept in {m['sweep_seconds']:.1f} s"
    )
    tags = base_tags(MODEL, "attack", read_json(layout.PROVENANCE), config_hash(params))
    with tracker.run(f"{MODEL} attack", outputs.params, tags) as run_:
        run_.log_metrics(outputs.metrics)
        for path in outputs.artifacts:
            run_.log_artifact(path, "attack")


if __name__ == "__main__":
    stage_main("attack", main)
