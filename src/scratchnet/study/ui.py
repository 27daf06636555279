"""`make ui`: the MLflow UI on the project's store, with the URL of the study's runs table.

    python -m scratchnet.study.ui [--port 5000]

MLflow 3 opens an experiment on its GenAI overview (trace, latency and token panels, all empty
for this study); the runs table is `#/experiments/<id>/runs`, so this starts `mlflow ui` on
127.0.0.1 and, once the server answers (its /health), prints that URL first (Ctrl-C stops it).
With MLFLOW_TRACKING_URI pointing at a shared server, there is no UI to start: it prints that
server's runs URL and exits.

It also prints one URL per sweep of params.yaml: the runs table searched for that sweep's runs
with its baseline (the `in_sweep` tag; tracking.sweep_tags) and sorted by test accuracy, best
first. A baseline centres every sweep, so it cannot be a child of each sweep's parent run; this
is the view that puts it beside the values it is compared with.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import urllib.request
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
    names = [f"{model}.{key}" for model in MODELS for key in sweeps(params, model)]
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


def wait_until_answers(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    """Returns once `url` answers 200; UserError if the server exits or stays silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise UserError(f"mlflow ui exited with status {server.returncode} before it answered "
                            f"(its message is above; a port in use? PORT=5001 make ui)")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise UserError(f"mlflow ui did not answer {url} within {seconds:.0f} s")


def serve(uri: str, port: int, text: str) -> int:
    """Runs `mlflow ui` on the store at `uri` and prints `text` once it answers; returns its
    exit status. Ctrl-C reaches the server too (one process group); a kill stops it."""
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", HOST, "--port", str(port), "--workers", "1"])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        wait_until_answers(f"http://{HOST}:{port}/health", server)
        print(text, flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    uri = tracking_uri()
    params = load_params()
    found = experiment_id(uri, params["tracking"]["experiment"])
    served = uri.startswith(("http://", "https://"))
    base = uri if served else f"http://{HOST}:{args.port}"
    if served:
        print(addresses(base, found, params), flush=True)
        return
    sys.exit(serve(uri, args.port, f"MLflow UI on {uri}\n{addresses(base, found, params)}\n(Ctrl-C stops it)"))


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        sys.exit(f"ui: {err}")
