"""train stage: the baseline run of one model (its curve, test accuracy and saved network).

    python pipeline/train.py MODEL    (a model of params.yaml's `models`, e.g. softmax)

It goes through the run cache as a sweep's run does (RunCache.train_once): trained unless the
cache holds its training, measured unless it holds its robustness, so the ablation's identical
run (same config and seed) is not trained again, and a change of params `robustness` reruns this
stage without training.
"""

import numpy as np

from scratchnet.files import read_json, write_json
from scratchnet.study import layout
from scratchnet.study.cache import RunCache, code_hash, project_data_identity, run_key
from scratchnet.study.classifier import RunSpec, here, measure_run, robustness_key, train_classifier
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

    key = run_key(model_name, config, seed, project_data_identity(params), code_hash())
    spec = RunSpec(model_name, BASELINE, config, seed, params["robustness"])
    cache = RunCache()
    cache.root.mkdir(parents=True, exist_ok=True)
    outcome = cache.train_once(
        key,
        lambda: train_classifier(model_name, config, seed, splits, key=key, desc=f"{model_name} baseline"),
        robustness=robustness_key(spec.robustness),
        measure=lambda record, network: measure_run(spec, record, network, splits, here()),
    )
    if outcome.unsaved is not None:  # no file locks here (not POSIX): nothing stored yet
        cache.store(outcome, robustness_key(spec.robustness))
    record, facts, cached, measured, _ = outcome
    model = cache.network(key)  # the network as the run cache keeps it, trained now or before
    assert model is not None, f"run cache entry {key} was stored just now with its network"
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
    how = "from the run cache" if cached else f"{facts['ended'] - facts['started']:.1f} s on {facts['worker']}"
    if measured is not None:
        how += f"; robustness measured in {measured['ended'] - measured['started']:.1f} s"
    print(f"{model_name}: test accuracy {record['test_acc']} ({how})")


if __name__ == "__main__":
    stage_main("train", main, usage="|".join(MODELS), choices=[MODELS])
