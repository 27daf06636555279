"""train stage: the baseline run of one model (its curve, test accuracy and saved network).

    python pipeline/train.py MODEL    (a model of params.yaml's `models`, e.g. softmax)

Its record also goes to the run cache, so the ablation's identical run (same config and seed)
is not trained again.
"""

import numpy as np

from scratchnet.files import read_json, write_json
from scratchnet.study import layout
from scratchnet.study.cache import RunCache, code_hash, project_data_identity, run_key
from scratchnet.study.classifier import robustness_key, train_classifier
from scratchnet.study.cli import stage_main
from scratchnet.study.identity import config_hash
from scratchnet.study.params import BASELINE, MODELS, load_params, run_config
from scratchnet.study.runs import base_tags, load_splits, log_seed, run_result, write_history_csv
from scratchnet.study.tracking import TAG, Tracker


def example_images(n: int) -> np.ndarray:
    """The first n raw test images, uint8 (n, 32, 32, 3): the logged model's input example
    (MLflow metadata only, so not a DVC dependency of this stage's outputs)."""
    with np.load(layout.RAW_ARRAYS) as raw:
        return raw["x_test"][:n]


def main(model_name: str) -> None:
    params = load_params()
    tracker = Tracker(params["tracking"]["experiment"])  # fails here if the server is down
    config = run_config(params, model_name, "baseline", params["train"]["epochs"][model_name])
    seed = params["train"]["seed"]
    meta = read_json(layout.PROCESSED_META)
    splits = load_splits()

    key = run_key(
        model_name, config, seed, project_data_identity(params), code_hash(), robustness_key(params["robustness"])
    )
    record, facts, model = train_classifier(
        model_name, config, seed, splits, key=key, desc=f"{model_name} baseline", robustness=params["robustness"]
    )
    RunCache().put(record, facts)
    model.save(
        layout.model_path(model_name), metadata={"config": config, "seed": seed, "class_names": meta["class_names"]}
    )
    write_history_csv(layout.train_history(model_name), record["history"])
    # the results first: logging may fail
    write_json(layout.train_run(model_name), run_result(model_name, "train", BASELINE, None, None, config, [record]))

    tags = {
        **base_tags(model_name, "train", read_json(layout.PROVENANCE), config_hash(params)),
        TAG + "sweep": f"{model_name}.baseline",
        TAG + "entry": "baseline",
    }
    error = log_seed(
        tracker,
        record,
        facts,
        model_name=model_name,
        config=config,
        train_size=len(splits["train"][1]),
        run_name=f"{model_name} baseline",
        tags=tags,
        on_logged=lambda run: run.log_model(
            layout.model_path(model_name), meta["class_names"], example=example_images(2)
        ),
    )
    if error is not None:
        raise error
    print(
        f"{model_name}: test accuracy {record['test_acc']} "
        f"({facts['ended'] - facts['started']:.1f} s on {facts['worker']})"
    )


if __name__ == "__main__":
    stage_main("train", main, usage="|".join(MODELS), choices=[MODELS])
