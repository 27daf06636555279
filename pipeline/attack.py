"""attack stage: fool the trained two-layer network (the study's part 4), then measure how robust it is.

Reads the baseline network (models/twolayer.npz, with its input scaling), the raw test images and
params `attack`. Writes results/attack/: the study's example run on every correctly classified
test image of its class (example.json, and the three images of the first one it fools), the
success-vs-epsilon tables and figure, and metrics/attack.json; logs one MLflow run with every
sweep's curve.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import NamedTuple

from scratchnet.data import load_raw
from scratchnet.files import read_json, write_bytes, write_csv, write_json
from scratchnet.nn import load_model
from scratchnet.study import layout
from scratchnet.study.attack_study import SWEEP_COLUMNS, attack_study, class_record, sweep_rows
from scratchnet.study.cli import stage_main
from scratchnet.study.identity import config_hash
from scratchnet.study.params import ParamsError, load_params
from scratchnet.study.plots import png_bytes
from scratchnet.study.plots.attack import example_figures, success_figure
from scratchnet.study.runs import base_tags
from scratchnet.study.tracking import Tracker, TrackingError, flatten

MODEL = "twolayer"


class AttackOutputs(NamedTuple):
    """Everything the stage's MLflow run logs: flat params and metrics, and the files written."""

    params: dict[str, str]
    metrics: dict[str, float]
    artifacts: list[Path]


def class_index(class_names: list[str], name: str, key: str) -> int:
    if name not in class_names:
        raise ParamsError(f"params: attack.{key} is {name!r}; expected one of {', '.join(class_names)}")
    return class_names.index(name)


def run(attack: dict) -> AttackOutputs:
    """The stage, given params["attack"]; writes every layout.ATTACK_* output."""
    started = time.perf_counter()
    raw = load_raw(layout.RAW_ARRAYS)
    names = list(raw.class_names)
    spec = attack["example"]
    study = attack_study(
        load_model(layout.model_path(MODEL)),
        raw.x_test,
        raw.y_test,
        true_label=class_index(names, spec["true_class"], "example.true_class"),
        target_label=class_index(names, spec["target_class"], "example.target_class"),
        example=spec,
        sweep=attack["sweep"],
        log=lambda line: print(line, flush=True),
    )
    write_json(layout.ATTACK_EXAMPLE, class_record(study.example, names))
    shown = study.example.shown
    for name, fig in example_figures(shown, names, before=study.example.before).items():
        write_bytes(layout.ATTACK_IMAGES[name], png_bytes(fig))
    write_csv(layout.ATTACK_SWEEP_CSV, [row for s in study.sweeps for row in sweep_rows(s)], SWEEP_COLUMNS)
    for norm in attack["sweep"]["epsilons"]:  # one table per norm, so `dvc plots` draws it as lines
        write_csv(layout.attack_plot_data(norm), study.plot_rows(norm), ("epsilon", "targeted", "untargeted"))
    marks = {spec["norm"]: (spec["epsilon"], f"study's example (epsilon {spec['epsilon']:g})")}
    write_bytes(layout.ATTACK_SUCCESS_PLOT, png_bytes(success_figure(study.sweeps, marks=marks)))
    write_json(layout.ATTACK_METRICS, study.headline())
    print(
        f"attack: {study.example.fooled_count} of {study.example.n} fooled by the example's attack, "
        f"the first test image {shown.index} (L2 = {shown.l2:.1f}, fooled = {shown.fooled}); "
        f"{study.sample.size} images swept; {time.perf_counter() - started:.1f} s"
    )
    return AttackOutputs(
        params={k: str(v) for k, v in flatten(attack).items()},
        metrics={k: float(v) for k, v in flatten(study.details()).items() if v is not None},
        artifacts=[
            layout.ATTACK_EXAMPLE,
            layout.ATTACK_SWEEP_CSV,
            layout.ATTACK_METRICS,
            *layout.ATTACK_IMAGES.values(),
            layout.ATTACK_SUCCESS_PLOT,
        ],
    )


def main() -> None:
    params = load_params()
    tracker = Tracker(params["tracking"]["experiment"])  # fails here if the server is down
    started = time.time()
    outputs = run(params["attack"])
    # What the run is: its params, the network it attacked and what it found.
    network = hashlib.sha256(layout.model_path(MODEL).read_bytes()).hexdigest()
    key = config_hash({"attack": outputs.params, "metrics": outputs.metrics, "model": network})
    try:
        tracker.log_outputs(
            key,
            run_name=f"{MODEL} attack",
            params=outputs.params,
            tags=base_tags(MODEL, "attack", read_json(layout.PROVENANCE), config_hash(params)),
            metrics=outputs.metrics,
            artifacts=outputs.artifacts,
            artifact_path="attack",
            started=started,
            ended=time.time(),
        )
    except TrackingError as err:
        raise TrackingError(f"{err} The attack's results are saved in {layout.ATTACK_DIR}.") from err


if __name__ == "__main__":
    stage_main("attack", main)
