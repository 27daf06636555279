"""The one place that talks to MLflow.

Conventions (DESIGN.md, Tracking): one experiment for the study; one MLflow run per training
run with its hyper-parameters as params, per-epoch `loss`, `train_acc`, `val_acc`, `lr` at
`step=epoch`, the final `test_acc`, the curve as an artifact, and tags naming the model, stage,
sweep, varied value, seed, git commit and dataset. The runs of one ablation sweep are children
of one parent run per sweep, so `mlflow ui` shows them as a group that can be compared at once.

Store: `MLFLOW_TRACKING_URI` if set (a shared server), else `sqlite:///<project>/mlflow.db`.
A server that cannot be reached fails the stage at its start (`TrackingError`) rather than
after an hour of training; a failure during a run never loses the run's results: the stage
writes its artifacts first and then reports which runs did not reach MLflow.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

# MLflow retries an unreachable server for minutes by default; a study run should say so fast.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

from scratchnet.study.identity import config_hash, git_commit  # noqa: E402,F401 (re-exported)
from scratchnet.errors import UserError

# MLflow itself is imported on first use, not here: its import and store set-up take ~3 s of
# CPU, which an ablation stage spends while its seeds train instead of before (pipeline/ablate.py).

TAG = "scratchnet."  # prefix of the tags this project sets


class TrackingError(UserError, RuntimeError):
    """MLflow could not be reached or refused a write; the message says which and what to do."""


def project_root(root: Path | str = ".") -> Path:
    """The project whose store a stage run from `root` tracks into (an absolute path).

    `dvc exp run --temp` and `--queue` run each experiment in a temporary copy of the project,
    `<project>/.dvc/tmp/exps/<tmpdir>/`, deleted afterwards; a store there would be thrown away
    with it. DVC tells its commands where the real project is: it sets `DVC_ROOT` for every
    stage command, to the original project's root for experiments (dvc/repo/experiments/queue/
    base.py). So: `DVC_ROOT` when the stage runs where DVC started it (root is the working
    directory), else `root`; either way, a temporary workspace maps to the project holding it.
    """
    path = Path(root).resolve()
    dvc_root = os.environ.get("DVC_ROOT", "").strip()
    if dvc_root and path == Path.cwd().resolve():
        path = Path(dvc_root).resolve()
    for folder in (path, *path.parents):
        # <project>/.dvc/tmp/exps/<tmpdir>: DVC's temporary experiment workspace
        if folder.parent.name == "exps" and folder.parent.parent.name == "tmp" \
                and folder.parent.parent.parent.name == ".dvc":
            return folder.parent.parent.parent.parent
    return path


def tracking_uri(root: Path | str = ".") -> str:
    """`MLFLOW_TRACKING_URI` if set, else the project's own SQLite store, `<project>/mlflow.db`
    (project_root: the same store for `dvc repro`, `dvc exp run` and `--temp`/`--queue`)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{(project_root(root) / 'mlflow.db').as_posix()}"


def artifact_root(uri: str) -> str | None:
    """Where the runs of a local SQLite store keep their artifacts: `mlruns/` beside the
    database, as a file URI; None for any other store (a server decides for itself).

    MLflow freezes an experiment's artifact location, as an absolute path, when it creates the
    experiment, from the working directory of that process (`./mlruns`). Run from a DVC
    temporary workspace that is a folder deleted after the run, so the Tracker passes this
    location explicitly when it creates the experiment.
    """
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///"):])
    return (database.parent / "mlruns").as_uri()


def check_artifact_location(uri: str, experiment: str, location: str) -> None:
    """TrackingError if a local store's experiment keeps its artifacts outside the store's
    folder: the store was copied from another project, and its runs would write their
    artifacts into that project's mlruns/ (MLflow cannot move an experiment's location)."""
    root = artifact_root(uri)
    if root is None or not location.startswith("file:"):
        return
    if location == root or location.startswith(root.rstrip("/") + "/"):
        return
    database = uri[len("sqlite:///"):]
    raise TrackingError(
        f"MLflow store {database}: experiment {experiment!r} keeps its artifacts in {location}, "
        f"outside this project (the store was copied from another project?), so new runs would "
        f"write there. Move mlflow.db and mlruns/ away to start a fresh store here, or set "
        f"tracking.experiment in params.yaml to a new name."
    )


def dvc_experiment_tags() -> dict[str, str]:
    """{"scratchnet.dvc_experiment": name} when DVC runs the stage as part of an experiment
    (`dvc exp run`, `--temp`, `--queue`; DVC sets DVC_EXP_NAME), so its runs can be found by
    the name `dvc exp show` prints; empty for a plain `dvc repro`."""
    name = os.environ.get("DVC_EXP_NAME", "").strip()
    return {TAG + "dvc_experiment": name} if name else {}


def check_server(root: Path | str = ".", timeout: float = 5.0) -> str:
    """The tracking URI, after checking that an http(s) server there answers (TrackingError if
    not). Needs no MLflow import, so a stage can call it first and fail within a second."""
    uri = tracking_uri(root)
    if uri.startswith(("http://", "https://")):
        _check_health(uri, timeout)
    return uri


def _check_health(uri: str, timeout: float) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                raise TrackingError(f"MLflow server at {uri} answered {response.status} to {url}")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"MLflow tracking server {uri} (from MLFLOW_TRACKING_URI) is unreachable: {reason}. "
            "Start the server, or unset MLFLOW_TRACKING_URI to track into ./mlflow.db."
        ) from None


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}: MLflow params and metrics are flat, dotted keys."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def dataset_tags(provenance: dict) -> dict[str, str]:
    """Tags that say which data a run saw (the report and the UI both show them)."""
    return {
        TAG + "dataset": str(provenance.get("dataset", provenance.get("resolved", "unknown"))),
        # A folder source has no archive checksum; the arrays' checksum always exists.
        TAG + "dataset_sha256": str(provenance.get("sha256") or provenance.get("arrays_sha256", "unknown")),
        TAG + "dataset_source": str(provenance.get("location", provenance.get("source", "unknown"))),
    }


class Run:
    """One open MLflow run. Logging calls never raise mid-training: the first failure is kept
    in `error` and reported by `Tracker.run` when the run ends, after the caller saved results."""

    def __init__(self, client, run_id: str):  # client: mlflow.tracking.MlflowClient
        self.client = client
        self.run_id = run_id
        self.error: Exception | None = None

    def _safely(self, fn, *args, **kwargs) -> None:
        if self.error is not None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any store failure is reported at run end
            self.error = err

    def log_history(self, history: list[dict]) -> None:
        """Every epoch record at once, each at step=epoch (one request, not one per epoch)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(r["epoch"]))
                 for r in history for k, v in r.items() if k != "epoch" and v is not None]
        for start in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics a request
            self._safely(self.client.log_batch, self.run_id, metrics=batch[start:start + 1000])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self._safely(self.client.log_batch, self.run_id, metrics=batch)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._safely(lambda: [self.client.set_tag(self.run_id, k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self._safely(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_model(self, model_path: Path, stats_path: Path, class_names: list[str]) -> None:
        """Logs a trained network as an MLflow pyfunc model that predicts from raw images."""
        import mlflow

        from scratchnet.study.pyfunc_model import ImageClassifier

        def log():
            with mlflow.start_run(run_id=self.run_id):
                mlflow.pyfunc.log_model(
                    name="model",
                    python_model=ImageClassifier(class_names),
                    artifacts={"network": str(model_path), "stats": str(stats_path)},
                    pip_requirements=["numpy", "pandas", "scratchnet"],
                )

        self._safely(log)


class Tracker:
    """Opens the study's experiment on the configured store; fails fast if it is unreachable."""

    def __init__(self, experiment: str, root: Path | str = "."):
        self.uri = check_server(root)
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(self.uri)
        try:
            exp = mlflow.get_experiment_by_name(experiment)
            if exp is None:  # created with its artifacts beside the store (artifact_root)
                try:
                    mlflow.create_experiment(experiment, artifact_location=artifact_root(self.uri))
                except mlflow.exceptions.MlflowException as err:
                    if err.error_code != "RESOURCE_ALREADY_EXISTS":  # a queued twin created it first
                        raise
            exp = mlflow.set_experiment(experiment)
        except Exception as err:  # noqa: BLE001
            raise TrackingError(f"MLflow store {self.uri} refused experiment {experiment!r}: {err}") from err
        check_artifact_location(self.uri, experiment, exp.artifact_location)
        self.experiment_id = exp.experiment_id
        self.client = MlflowClient(self.uri)

    def parent_run(self, name: str, key: str, tags: dict[str, Any]) -> str:
        """The id of the parent run grouping a sweep, created on first use.

        `key` identifies the sweep's fixed part (model, varied key, baseline hyper-parameters):
        later values added to the same sweep join the same parent; a changed baseline starts a
        new group, since its runs are no longer comparable with the old ones.
        """
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG}parent_key` = '{key}'",
            max_results=1,
        )
        if found:
            return found[0].info.run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={**{k: str(v) for k, v in tags.items()}, TAG + "parent_key": key},
        )
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    @contextmanager
    def run(
        self,
        name: str,
        params: dict[str, Any],
        tags: dict[str, Any],
        parent_run_id: str | None = None,
    ) -> Iterator[Run]:
        from mlflow.entities import Param

        all_tags = {k: str(v) for k, v in tags.items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        try:
            created = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
            self.client.log_batch(
                created.info.run_id,
                params=[Param(k, str(v)) for k, v in params.items()],
            )
        except Exception as err:  # noqa: BLE001
            raise TrackingError(f"MLflow store {self.uri} refused to start run {name!r}: {err}") from err
        run = Run(self.client, created.info.run_id)
        status = "FAILED"
        try:
            yield run
            status = "FINISHED"
        finally:
            try:
                self.client.set_terminated(run.run_id, status=status)
            except Exception as err:  # noqa: BLE001
                run.error = run.error or err
        if run.error is not None:
            raise TrackingError(
                f"run {name!r} ({run.run_id}) was not fully logged to MLflow at {self.uri}: "
                f"{run.error}. Its results are saved in the stage's outputs."
            )
