"""ablate stage: one ablation value of one model, trained once per seed.

    python pipeline/ablate.py softmax reg=0.001      (or `baseline`)

Each value is its own DVC stage (dvc.yaml's matrix over params `ablate.<model>`), so adding or
editing one value reruns only that value's runs.
"""

import time

from scratchnet.study import layout
from scratchnet.study.cli import stage_main
from scratchnet.study.params import MODELS, ParamsError, load_params, parse_entry, run_config
from scratchnet.files import read_json, write_json
from scratchnet.study.runs import SeedRuns, base_tags, load_splits, log_seed, summarise
from scratchnet.study.identity import config_hash
from scratchnet.study.tracking import TAG, Tracker, TrackingError, check_server


def main(model_name: str, entry: str) -> None:
    started = time.perf_counter()
    params = load_params()
    if entry not in params["ablate"][model_name]:
        raise ParamsError(f"params: ablate.{model_name} has no entry {entry!r}")
    check_server()  # an unreachable MLflow server fails the stage here, before any training
    param, value = parse_entry(params, model_name, entry)
    config = run_config(params, model_name, entry, params["ablate"]["epochs"][model_name])
    provenance = read_json(layout.PROVENANCE)
    sweep = f"{model_name}.{param or 'baseline'}"
    tags = {**base_tags(model_name, "ablate", provenance, config_hash(params)), TAG + "sweep": sweep}
    # The sweep's fixed part: its runs are comparable while this stays the same.
    baseline = {k: v for k, v in params[model_name].items() if k != param}
    parent_key = config_hash({"sweep": sweep, "baseline": baseline, "epochs": config["epochs"],
                              "data": tags[TAG + "dataset_sha256"], "preprocess": params["preprocess"]})

    splits = load_splits()
    with SeedRuns(model_name, config, params["ablate"]["seeds"], splits, desc=f"{model_name} {entry}") as runs:
        # MLflow is opened while the seeds train, not before: its import and the store's set-up
        # (~3 s of one core) then share the cores with training instead of leaving one idle.
        tracker = Tracker(params["tracking"]["experiment"])
        parent = tracker.parent_run(
            f"{model_name} sweep: {param or 'baseline'}", parent_key,
            {**tags, TAG + "stage": "ablate-sweep"},
        )
        records = [r for r, _ in runs.results()]
    errors = []
    for record in records:
        error = log_seed(
            tracker, record, model_name=model_name, config=config,
            train_size=len(splits["train"][1]),
            run_name=f"{model_name} {entry} seed {record['seed']}",
            tags={**tags, TAG + "varied": param or "none", TAG + "value": value},
            parent_run_id=parent,
        )
        if error is not None:
            errors.append(str(error))

    mean, std = summarise(records)
    write_json(layout.ablate_run(model_name, entry), {
        "model": model_name, "stage": "ablate", "run": entry, "param": param, "value": value,
        "config": config, "seeds": records, "test_acc_mean": mean, "test_acc_std": std,
        "mlflow_parent_run_id": parent, "mlflow_experiment_id": tracker.experiment_id,
        "tracking_uri": tracker.uri, "seconds": time.perf_counter() - started,
    })
    if errors:
        raise TrackingError(f"{model_name} {entry}: " + "; ".join(errors))
    print(f"{model_name} {entry}: test accuracy {mean} ± {std} over {len(records)} seeds")


if __name__ == "__main__":
    stage_main("ablate", main, usage="softmax|twolayer baseline|key=value", choices=[MODELS, None])
