"""train stage: the baseline run of one model (its curve, test accuracy and saved network).

    python pipeline/train.py MODEL    (a model of params.yaml's `models`, e.g. softmax)

The baselines of every model in `models` go through the run cache as one small sweep
(sweep.run_sweep, on the executor the environment names, as the ablation's runs do): each is
trained unless the cache holds its training, and measured unless it holds its robustness. DVC
runs one stage at a time, so the first train stage trains every model's baseline side by side,
one per core, where training them stage after stage would leave a core idle; the other train
stages find theirs in the cache (bench/RESULTS.md, "Time outside the sweep"). This stage's
outputs and MLflow run are its own model's alone, and the same bytes whichever stage trained it
(a run's record is keyed by its config, seed, data and code). The ablation's identical run
(same config and seed) is not trained again either.
"""

import numpy as np

from scratchnet.files import read_json, write_csv, write_json
from scratchnet.study import layout
from scratchnet.study.cache import RunCache, project_data_identity
from scratchnet.study.classifier import RunSpec
from scratchnet.study.cli import stage_main
from scratchnet.study.identity import config_hash
from scratchnet.study.params import BASELINE, MODELS, load_params, run_config
from scratchnet.study.runs import base_tags, load_splits, log_seed, run_result
from scratchnet.study.sweep import executor_from_env, run_sweep
from scratchnet.study.tracking import Tracker, check_server, sweep_tags


def log_model(run_id: str, model_name: str, class_names: list[str]) -> None:
    """Logs the saved network into its MLflow run, the first two raw test images, uint8
    (2, 32, 32, 3), as its input example (MLflow metadata only, so not a DVC dependency of this
    stage's outputs)."""
    from scratchnet.study import pyfunc_model  # imports MLflow, as the Tracker has already

    with np.load(layout.RAW_ARRAYS) as raw:
        pyfunc_model.log(run_id, layout.model_path(model_name), class_names, raw["x_test"][:2])


def main(model_name: str) -> None:
    params = load_params()
    check_server()  # an unreachable MLflow server fails the stage here, before any training
    meta = read_json(layout.PROCESSED_META)
    splits = load_splits()
    seed, epochs = params["train"]["seed"], params["train"]["epochs"]
    specs = {
        m: RunSpec(m, BASELINE, run_config(params, m, BASELINE, epochs[m]), seed, params["robustness"])
        for m in params["models"]
    }
    mine = specs[model_name]
    config = mine.config
    facts: dict = {}  # this model's run's, for MLflow
    tracker: Tracker | None = None

    def on_record(spec: RunSpec, record: dict, run_facts: dict, cached: bool) -> None:
        nonlocal tracker
        if spec is mine:
            facts.update(run_facts)
        if tracker is None:  # MLflow's import, at the first finished baseline: beside the others' training
            tracker = Tracker(params["tracking"]["experiment"])

    cache = RunCache()
    with executor_from_env(splits) as executor:  # an unreachable scheduler fails here
        records = run_sweep(
            list(specs.values()),
            executor,
            cache=cache,
            data=project_data_identity(params),
            train_size=len(splits["train"][1]),
            on_record=on_record,
            label="baselines",
        )
    record = records[mine]
    model = cache.network(record["key"])  # the network as the run cache keeps it, trained now or before
    if model is None:
        raise RuntimeError(f"run cache {cache.root}: the network of {mine.name} ({record['key']}) is missing")
    model.save(
        layout.model_path(model_name), metadata={"config": config, "seed": seed, "class_names": meta["class_names"]}
    )
    # what `dvc plots` shows; a run that diverged in its first epoch has a header only
    write_csv(layout.train_history(model_name), record["history"], ("epoch", "loss", "train_acc", "val_acc", "lr"))
    # the results first: logging may fail
    write_json(layout.train_run(model_name), run_result(model_name, "train", BASELINE, None, None, config, [record]))

    assert tracker is not None, "on_record opens it at the first baseline, cached or trained"
    tags = {
        **base_tags(model_name, "train", read_json(layout.PROVENANCE), config_hash(params)),
        **sweep_tags(model_name, None, BASELINE, []),
    }
    log_seed(
        tracker,
        mine,
        record,
        facts,
        train_size=len(splits["train"][1]),
        run_name=f"{model_name} baseline",
        tags=tags,
        on_logged=lambda run_id: log_model(run_id, model_name, meta["class_names"]),
    )


if __name__ == "__main__":
    stage_main("train", main, usage="|".join(MODELS), choices=[MODELS])
