"""train stage: the baseline run of one model (its curve, test accuracy and saved network).

    python pipeline/train.py softmax|twolayer

Its record also goes to the run cache, so the ablation's identical run (same config and seed)
is not trained again.
"""

import time

import numpy as np

from scratchnet.files import read_json, write_json
from scratchnet.study import layout
from scratchnet.study.cache import RunCache, code_hash, project_data_identity, run_key
from scratchnet.study.identity import config_hash
from scratchnet.study.params import MODELS, load_params, run_config
from scratchnet.study.runs import base_tags, fit_seed, here, load_splits, log_seed, write_history_csv
from scratchnet.study.cli import stage_main
from scratchnet.study.tracking import TAG, Tracker


def example_images(n: int) -> np.ndarray:
    """The first n raw test images, uint8 (n, 32, 32, 3): the logged model's input example
    (MLflow metadata only, so not a DVC dependency of this stage's outputs)."""
    with np.load(layout.RAW_ARRAYS) as raw:
        return raw["x_test"][:n]


def main(model_name: str) -> None:
    started = time.perf_counter()
    params = load_params()
    tracker = Tracker(params["tracking"]["experiment"])  # fails here if the server is down
    config = run_config(params, model_name, "baseline", params["train"]["epochs"][model_name])
    seed = params["train"]["seed"]
    meta = read_json(layout.PROCESSED_META)
    splits = load_splits()

    record, model = fit_seed(model_name, config, seed, splits, desc=f"{model_name} baseline")
    record.update(key=run_key(model_name, config, seed, project_data_identity(params), code_hash()),
                  worker=here())
    RunCache().put(record)
    model.save(layout.model_path(model_name),
               metadata={"config": config, "seed": seed, "class_names": meta["class_names"]})
    write_history_csv(layout.train_history(model_name), record["history"])
    result = {
        "model": model_name, "stage": "train", "run": "baseline", "param": None, "value": None,
        "config": config, "seeds": [record],
        "test_acc_mean": record["test_acc"], "test_acc_std": 0.0,
        "mlflow_parent_run_id": None, "mlflow_experiment_id": tracker.experiment_id,
        "tracking_uri": tracker.uri, "seconds": time.perf_counter() - started,
    }
    write_json(layout.train_run(model_name), result)  # the results first: logging may fail

    tags = {**base_tags(model_name, "train", read_json(layout.PROVENANCE), config_hash(params)),
            TAG + "sweep": f"{model_name}.baseline", TAG + "entry": "baseline"}
    error = log_seed(
        tracker, record, {k: record[k] for k in ("started", "ended", "worker")}, model_name=model_name, config=config, train_size=len(splits["train"][1]),
        run_name=f"{model_name} baseline", tags=tags,
        on_logged=lambda run: run.log_model(layout.model_path(model_name), meta["class_names"],
                                            example=example_images(2)),
    )
    if error is not None:
        raise error
    write_json(layout.train_run(model_name), result)  # now with the run's MLflow id
    print(f"{model_name}: test accuracy {record['test_acc']}")


if __name__ == "__main__":
    stage_main("train", main, usage="softmax|twolayer", choices=[MODELS])
