"""ablate stage: every ablation value of both models (params `ablate.*`), each trained once per
seed, as one sweep on the executor the environment names (local processes or a Dask cluster).

    python pipeline/ablate.py
    SCRATCHNET_EXECUTOR=dask DASK_SCHEDULER_ADDRESS=tcp://host:8786 python pipeline/ablate.py

Runs already in the run cache are not trained again. Writes one result per value,
layout.ablate_run(model, entry), all its seeds inside; logs every run to MLflow from here.
"""

import shutil
import sys

from scratchnet.errors import UserError
from scratchnet.files import read_json, write_json
from scratchnet.study import layout
from scratchnet.study.cache import RunCache, project_data_identity
from scratchnet.study.identity import config_hash
from scratchnet.study.params import MODELS, ablation_entries, load_params, parse_entry, run_config
from scratchnet.study.runs import (RunSpec, base_tags, load_splits, log_record, run_params,
                                   summarise)
from scratchnet.study.sweep import executor_from_env, run_sweep
from scratchnet.study.tracking import TAG, Tracker, TrackingError, check_server


def main() -> None:
    params = load_params()
    check_server()  # an unreachable MLflow server fails the stage here, before any training
    splits = load_splits()
    specs = [RunSpec(model, entry, run_config(params, model, entry, params["ablate"]["epochs"][model]), seed)
             for model in MODELS for entry in ablation_entries(params, model)
             for seed in params["ablate"]["seeds"]]
    # Only the values params.yaml lists: no file of a removed value survives (DVC also deletes
    # this output before the stage runs; this makes it so outside DVC too).
    shutil.rmtree(layout.ABLATE_DIR, ignore_errors=True)
    log = SweepLog(params, train_size=len(splits["train"][1]))
    with executor_from_env(splits) as executor:
        records = run_sweep(specs, executor, cache=RunCache(), data=project_data_identity(params),
                            train_size=len(splits["train"][1]), on_record=log)
    for model in MODELS:
        for entry in ablation_entries(params, model):
            write_entry(params, model, entry, [records[s] for s in specs
                                               if (s.model, s.entry) == (model, entry)], log)
    if log.error is not None:
        raise TrackingError(f"{log.error} Every run's result is saved (results/ablate and the run "
                            "cache); the next `dvc repro` logs the missing runs without training.")


class SweepLog:
    """Logs each finished run to MLflow, under one parent run per sweep (model, varied key).

    The first tracking failure is kept, not raised: the sweep goes on, every result is written,
    and the stage fails at the end naming it (the runs stay in the run cache; the next repro
    logs them without training)."""

    def __init__(self, params: dict, train_size: int):
        self.params = params
        self.train_size = train_size
        self.provenance = read_json(layout.PROVENANCE)
        self.tracker: Tracker | None = None
        self.parents: dict[tuple, str] = {}
        self.error: TrackingError | None = None

    def __call__(self, spec: RunSpec, record: dict, cached: bool) -> None:
        if self.error is not None:
            return
        try:
            self._log(spec, record)
        except TrackingError as err:
            self.error = err

    def sweep_tags(self, spec: RunSpec) -> tuple[str | None, dict]:
        param, value = parse_entry(self.params, spec.model, spec.entry)
        tags = {**base_tags(spec.model, "ablate", self.provenance, config_hash(self.params)),
                TAG + "sweep": f"{spec.model}.{param or 'baseline'}"}
        return param, tags

    def parent(self, spec: RunSpec) -> str | None:
        param, tags = self.sweep_tags(spec)
        if (spec.model, param) not in self.parents:
            # The sweep's fixed part: its runs are comparable while this stays the same.
            baseline = {k: v for k, v in self.params[spec.model].items() if k != param}
            key = config_hash({"sweep": tags[TAG + "sweep"], "baseline": baseline,
                               "epochs": spec.config["epochs"], "data": tags[TAG + "dataset_sha256"],
                               "preprocess": self.params["preprocess"]})
            self.parents[spec.model, param] = self.tracker.parent_run(
                f"{spec.model} sweep: {param or 'baseline'}", key, {**tags, TAG + "stage": "ablate-sweep"})
        return self.parents[spec.model, param]

    def _log(self, spec: RunSpec, record: dict) -> None:
        if self.tracker is None:
            self.tracker = Tracker(self.params["tracking"]["experiment"])
        param, tags = self.sweep_tags(spec)
        _, value = parse_entry(self.params, spec.model, spec.entry)
        log_record(self.tracker, record, run_name=spec.name,
                   params=run_params(spec.model, spec.config, spec.seed, self.train_size),
                   tags={**tags, TAG + "varied": param or "none", TAG + "value": value},
                   parent_run_id=self.parent(spec))


def write_entry(params: dict, model: str, entry: str, records: list[dict], log: SweepLog) -> None:
    param, value = parse_entry(params, model, entry)
    mean, std = summarise(records)
    parent = log.parents.get((model, param))
    write_json(layout.ablate_run(model, entry), {
        "model": model, "stage": "ablate", "run": entry, "param": param, "value": value,
        "config": run_config(params, model, entry, params["ablate"]["epochs"][model]),
        "seeds": records, "test_acc_mean": mean, "test_acc_std": std,
        "mlflow_parent_run_id": parent,
        "mlflow_experiment_id": log.tracker.experiment_id if log.tracker else None,
        "tracking_uri": log.tracker.uri if log.tracker else None,
        # training seconds of its runs (they ran side by side with others: not a wall time)
        "seconds": sum(r["seconds"] for r in records),
    })
    print(f"{model} {entry}: test accuracy {mean} ± {std} over {len(records)} seeds")


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        sys.exit(f"ablate: {err}")
