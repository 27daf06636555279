"""`make ui`: the MLflow UI on the project's store, with the URL of the study's runs table.

    python -m scratchnet.study.ui [--port 5000]

MLflow 3 opens an experiment on its GenAI overview (trace, latency and token panels, all empty
for this study); the runs table is `#/experiments/<id>/runs`, so this prints that URL first and
then becomes `mlflow ui` on 127.0.0.1 (Ctrl-C stops it). With MLFLOW_TRACKING_URI pointing at
a shared server, there is no UI to start: it prints that server's runs URL and exits.

It also prints one URL per sweep of params.yaml: the runs table searched for that sweep's runs
with its baseline (the `in_sweep` tag; tracking.sweep_tags) and sorted by test accuracy, best
first. A baseline centres every sweep, so it cannot be a child of each sweep's parent run; this
is the view that puts it beside the values it is compared with.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlencode

from scratchnet.errors import UserError
from scratchnet.study.params import MODELS, load_params, sweeps
from scratchnet.study.tracking import IN_SWEEP, TEST_ACC, tracking_uri

HOST = "127.0.0.1"  # the UI shows every run: only this machine may reach it


def runs_url(base: str, experiment_id: str) -> str:
    """The page of the experiment's runs table (sweeps as expandable parent rows), in the UI's
    "Model training" mode: its side bar then lists Runs and Models rather than GenAI pages."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def sweep_url(base: str, experiment_id: str, sweep: str) -> str:
    """The runs table showing one sweep (`<model>.<key>`) with its baseline, best test accuracy
    first: the search and sort the UI keeps in its URL (`searchFilter`, `orderByKey`)."""
    query = {"searchFilter": f"tags.`{IN_SWEEP}{sweep}` = 'true'",
             "orderByKey": f"metrics.`{TEST_ACC}`", "orderByAsc": "false"}
    return f"{runs_url(base, experiment_id)}&{urlencode(query)}"


def sweep_urls(base: str, experiment_id: str, params: dict) -> dict[str, str]:
    """sweep_url for every sweep params.yaml's ablate section lists, by `<model>.<key>`."""
    names = [f"{model}.{key}" for model in MODELS if model in params["ablate"]
             for key in sweeps(params, model)]
    return {name: sweep_url(base, experiment_id, name) for name in names}


def addresses(base: str, experiment_id: str, params: dict) -> str:
    """What `make ui` prints: the runs table's URL, then each sweep's (sweep_urls)."""
    lines = [f"Runs of the study: {runs_url(base, experiment_id)}"]
    links = sweep_urls(base, experiment_id, params)
    if links:
        width = max(map(len, links))
        lines.append("Each sweep with its baseline, best test accuracy first:")
        lines += [f"  {name:<{width}}  {url}" for name, url in links.items()]
    return "\n".join(lines)


def experiment_id(uri: str, name: str) -> str:
    """The id of experiment `name` in the store at `uri`; UserError if the study never ran."""
    from mlflow.tracking import MlflowClient

    never_ran = (f"run the study first (`make run` or `dvc repro`); it creates the experiment "
                 f"{name!r} (params.yaml tracking.experiment).")
    database = uri.removeprefix("sqlite:///")
    if database != uri and not Path(database).is_file():  # asking MLflow would create it, empty
        raise UserError(f"there is no MLflow store {database} yet: {never_ran}")

    experiment = MlflowClient(uri).get_experiment_by_name(name)
    if experiment is None:
        raise UserError(f"MLflow store {uri} has no experiment {name!r}: {never_ran}")
    return experiment.experiment_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    uri = tracking_uri()
    params = load_params()
    found = experiment_id(uri, params["tracking"]["experiment"])
    served = uri.startswith(("http://", "https://"))
    base = uri if served else f"http://{HOST}:{args.port}"
    print(("" if served else f"MLflow UI on {uri}\n") + addresses(base, found, params)
          + ("" if served else "\n(Ctrl-C stops it)"), flush=True)
    if served:
        return
    # exec, not a child process: Ctrl-C and a kill reach the server itself
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                              "--host", HOST, "--port", str(args.port), "--workers", "1"])


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        sys.exit(f"ui: {err}")
