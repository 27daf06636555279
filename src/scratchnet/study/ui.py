"""`make ui`: the MLflow UI on the project's store, with the URL of the study's runs table.

    python -m scratchnet.study.ui [--port 5000]

MLflow 3 opens an experiment on its GenAI overview (trace, latency and token panels, all empty
for this study); the runs table is `#/experiments/<id>/runs`, so this prints that URL first and
then becomes `mlflow ui` on 127.0.0.1 (Ctrl-C stops it). With MLFLOW_TRACKING_URI pointing at
a shared server, there is no UI to start: it prints that server's runs URL and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from scratchnet.errors import UserError
from scratchnet.study.params import load_params
from scratchnet.study.tracking import tracking_uri

HOST = "127.0.0.1"  # the UI shows every run: only this machine may reach it


def runs_url(base: str, experiment_id: str) -> str:
    """The page of the experiment's runs table (sweeps as expandable parent rows), in the UI's
    "Model training" mode: its side bar then lists Runs and Models rather than GenAI pages."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


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
    found = experiment_id(uri, load_params()["tracking"]["experiment"])
    if uri.startswith(("http://", "https://")):
        print(f"Runs of the study: {runs_url(uri, found)}", flush=True)
        return
    print(f"MLflow UI on {uri}\nRuns of the study: {runs_url(f'http://{HOST}:{args.port}', found)}"
          "\n(Ctrl-C stops it)", flush=True)
    # exec, not a child process: Ctrl-C and a kill reach the server itself
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                              "--host", HOST, "--port", str(args.port), "--workers", "1"])


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        sys.exit(f"ui: {err}")
