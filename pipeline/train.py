"""train stage: the baseline run of one model (its curve, test accuracy and saved network).

    python pipeline/train.py softmax|twolayer
"""

import time

from scratchnet.study import layout
from scratchnet.study.cli import stage_main
from scratchnet.study.identity import config_hash
from scratchnet.files import read_json, write_json
from scratchnet.study.params import MODELS, load_params, run_config
from scratchnet.study.runs import base_tags, fit_seed, load_splits, log_seed, write_history_csv
from scratchnet.study.tracking import TAG, Tracker


def main(model_name: str) -> None:
    started = time.perf_counter()
    params = load_params()
    tracker = Tracker(params["tracking"]["experiment"])  # fails here if the server is down
    config = run_config(params, model_name, "baseline", params["train"]["epochs"][model_name])
    seed = params["train"]["seed"]
    meta = read_json(layout.PROCESSED_META)
    splits = load_splits()

    record, model = fit_seed(model_name, config, seed, splits, desc=f"{model_name} baseline")
    model.save(layout.model_path(model_name),
               metadata={"config": config, "seed": seed, "class_names": meta["class_names"]})
    write_history_csv(layout.train_history(model_name), record["history"])

    tags = {**base_tags(model_name, "train", read_json(layout.PROVENANCE), config_hash(params)),
            TAG + "sweep": "baseline"}
    error = log_seed(
        tracker, record, model_name=model_name, config=config, train_size=len(splits["train"][1]),
        run_name=f"{model_name} baseline", tags=tags,
        on_logged=lambda run: run.log_model(layout.model_path(model_name), layout.STATS,
                                            meta["class_names"]),
    )
    write_json(layout.train_run(model_name), {
        "model": model_name, "stage": "train", "run": "baseline", "param": None, "value": None,
        "config": config, "seeds": [record],
        "test_acc_mean": record["test_acc"], "test_acc_std": 0.0,
        "mlflow_parent_run_id": None, "mlflow_experiment_id": tracker.experiment_id,
        "tracking_uri": tracker.uri, "seconds": time.perf_counter() - started,
    })
    if error is not None:
        raise error
    print(f"{model_name}: test accuracy {record['test_acc']}")


if __name__ == "__main__":
    stage_main("train", main, usage="softmax|twolayer", choices=[MODELS])
