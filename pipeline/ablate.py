"""ablate stage: every ablation value of both models (params `ablate.*`), each trained once per
seed, as one sweep on the executor the environment names (local processes or a Dask cluster).

    python pipeline/ablate.py
    SCRATCHNET_EXECUTOR=dask DASK_SCHEDULER_ADDRESS=tcp://host:8786 python pipeline/ablate.py

Runs already in the run cache are not trained again. Writes one result per value,
layout.ablate_run(model, entry), all its seeds inside; logs every run to MLflow from here.
"""

import shutil

from scratchnet.files import read_json, write_json
from scratchnet.study import layout
from scratchnet.study.cache import RunCache, project_data_identity
from scratchnet.study.classifier import RunSpec
from scratchnet.study.cli import stage_main
from scratchnet.study.params import ablation_entries, load_params, parse_entry, run_config
from scratchnet.study.runs import SweepLog, load_splits, run_result
from scratchnet.study.sweep import executor_from_env, run_sweep
from scratchnet.study.tracking import TrackingError, check_server


def main() -> None:
    params = load_params()
    check_server()  # an unreachable MLflow server fails the stage here, before any training
    splits = load_splits()
    train_size = len(splits["train"][1])
    epochs = params["ablate"]["epochs"]
    specs = [
        RunSpec(model, entry, run_config(params, model, entry, epochs[model]), seed, params["robustness"])
        for model in params["models"]
        for entry in ablation_entries(params, model)
        for seed in params["ablate"]["seeds"]
    ]
    log = SweepLog(params, read_json(layout.PROVENANCE), train_size)
    with executor_from_env(splits) as executor:  # an unreachable scheduler fails here
        # Only the values params.yaml lists: no file of a removed value survives (DVC deletes
        # this output before the stage runs; this makes it so outside DVC too).
        shutil.rmtree(layout.ABLATE_DIR, ignore_errors=True)
        records = run_sweep(
            specs, executor, cache=RunCache(), data=project_data_identity(params), train_size=train_size, on_record=log
        )
    log.close()  # each sweep's parent run now spans its children
    for model in params["models"]:
        for entry in ablation_entries(params, model):
            param, value = parse_entry(params, model, entry)
            seeds = [records[s] for s in specs if (s.model, s.entry) == (model, entry)]
            write_json(
                layout.ablate_run(model, entry),
                run_result(
                    model, "ablate", entry, param, value, run_config(params, model, entry, epochs[model]), seeds
                ),
            )
    if log.error is not None:
        raise TrackingError(
            f"{log.error} Every run's result is saved (results/ablate and the run "
            "cache); the next `dvc repro` logs the missing runs without training."
        )


if __name__ == "__main__":
    stage_main("ablate", main)
