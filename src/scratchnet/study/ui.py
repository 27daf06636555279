"""`make ui`: the MLflow UI on the project's store, with the URL of the study's runs table.

    python -m scratchnet.study.ui [--port 5000]

MLflow 3 opens an experiment on its GenAI overview (trace, latency and token panels, all empty
for this study); the runs table is `#/experiments/<id>/runs`, so this starts `mlflow ui` on
127.0.0.1 and, once the server answers (its /health), prints that URL first (Ctrl-C stops it).
With MLFLOW_TRACKING_URI pointing at a shared server, there is no UI to start: it prints that
server's runs URL and exits.

It also prints one URL per sweep of params.yaml: that sweep's runs with its baseline (the
`in_sweep` tag), best test accuracy first. A baseline centres every sweep, so it cannot be a
child of each sweep's parent run; this view puts it beside the values it is compared with.

Every URL opens with COLUMNS in the table. The UI keeps its search and sort in its URL but its
columns in the browser's storage; what carries both is a saved view (the UI's *Save view*): an
experiment tag `mlflow.sharedViewState.<key>` holding the view's state, opened by
`viewStateShareKey=<key>` in the URL (the UI then ignores search or sort in the URL, so a
view's URL has none). `make ui` saves one view for the study's runs and one per sweep before it
starts the server.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from scratchnet.errors import UserError
from scratchnet.study.params import load_params, sweeps
from scratchnet.study.tracking import IN_SWEEP, TEST_ACC, tracking_uri

HOST = "127.0.0.1"  # the UI shows every run: only this machine may reach it
VIEW_TAG = "mlflow.sharedViewState."  # the MLflow UI's saved views: one experiment tag each
# The table's columns besides run name and times (the UI's keys, `<type>.`<name>``): what a user
# compares, in place of the UI's default Source, Models and Dataset, so that they fit beside the
# UI's assistant panel.
COLUMNS = (f"metrics.`{TEST_ACC}`", "metrics.`val_acc`")
RUNS_VIEW = "scratchnet.runs"


def runs_url(base: str, experiment_id: str) -> str:
    """The page of the experiment's runs table (sweeps as expandable parent rows), in the UI's
    "Model training" mode: its side bar then lists Runs and Models rather than GenAI pages."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def view_state(search: str = "") -> dict:
    """A saved view's state: the runs `search` finds, best test accuracy first, with COLUMNS."""
    return {
        "searchFilter": search,
        "orderByKey": f"metrics.`{TEST_ACC}`",
        "orderByAsc": False,
        "selectedColumns": list(COLUMNS),
    }


def sweep_view(sweep: str) -> tuple[str, dict]:
    """(key, state) of the view of one sweep (`<model>.<key>`) with its baseline."""
    return f"scratchnet.sweep.{sweep}", view_state(f"tags.`{IN_SWEEP}{sweep}` = 'true'")


def _sweep_names(params: dict) -> list[str]:
    """Every sweep params.yaml's ablate section lists, as `<model>.<key>`."""
    return [f"{model}.{key}" for model in params["models"] for key in sweeps(params, model)]


def view_url(base: str, experiment_id: str, key: str) -> str:
    """The runs table as the saved view `key` shows it."""
    return f"{runs_url(base, experiment_id)}&{urlencode({'viewStateShareKey': key})}"


def sweep_url(base: str, experiment_id: str, sweep: str) -> str:
    """The runs table as the saved view of one sweep (`<model>.<key>`) shows it."""
    return view_url(base, experiment_id, sweep_view(sweep)[0])


def sweep_urls(base: str, experiment_id: str, params: dict) -> dict[str, str]:
    """sweep_url for every sweep of params.yaml, by `<model>.<key>`."""
    return {name: sweep_url(base, experiment_id, name) for name in _sweep_names(params)}


def save_views(uri: str, experiment_id: str, params: dict) -> None:
    """Saves the view of the study's runs and one per sweep of params.yaml as the UI's saved
    views of the experiment (its tags), as the UI's *Save view* writes them: {name, createdAt,
    updatedAt, state: the state as JSON text}."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    now = int(time.time() * 1000)
    views = [("every run", RUNS_VIEW, view_state()), *((name, *sweep_view(name)) for name in _sweep_names(params))]
    for name, key, state in views:
        envelope = {"name": f"scratchnet: {name}", "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
        client.set_experiment_tag(experiment_id, VIEW_TAG + key, json.dumps(envelope))


def addresses(base: str, experiment_id: str, params: dict) -> str:
    """What `make ui` prints: the runs table's URL, then each sweep's (sweep_urls)."""
    lines = [f"Runs of the study: {view_url(base, experiment_id, RUNS_VIEW)}"]
    links = sweep_urls(base, experiment_id, params)
    if links:
        width = max(map(len, links))
        lines.append("Each sweep with its baseline, best test accuracy first:")
        lines += [f"  {name:<{width}}  {url}" for name, url in links.items()]
    return "\n".join(lines)


def experiment_id(uri: str, name: str) -> str:
    """The id of experiment `name` in the store at `uri`; UserError if the study never ran."""
    from mlflow.tracking import MlflowClient

    never_ran = (
        f"run the study first (`make run` or `dvc repro`); it creates the experiment "
        f"{name!r} (params.yaml tracking.experiment)."
    )
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
            raise UserError(
                f"mlflow ui exited with status {server.returncode} before it answered "
                f"(its message is above; a port in use? PORT=5001 make ui)"
            )
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
    command = ["mlflow", "ui", "--backend-store-uri", uri, "--host", HOST, "--port", str(port), "--workers", "1"]
    server = subprocess.Popen([sys.executable, "-m", *command])
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
    save_views(uri, found, params)
    if served:
        print(addresses(base, found, params), flush=True)
        return
    sys.exit(serve(uri, args.port, f"MLflow UI on {uri}\n{addresses(base, found, params)}\n(Ctrl-C stops it)"))


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        sys.exit(f"ui: {err}")
