"""The one place that talks to MLflow.

One experiment for the study. One MLflow run per training run, logged after the fact from its
record (`Tracker.log_run`): its hyper-parameters as params, per-epoch `loss`, `train_acc`,
`val_acc`, `lr` at `step=epoch`, the final `test_acc`, the curve as `curve.csv`, and the tags
below. Its start time and duration in MLflow are those of the training, not of the logging.
A run is never logged twice: every run carries its run key (`scratchnet.run_key`), and a key
already in the experiment is not logged again; a run missing from the store (say, after
deleting mlflow.db) is logged again from its record.

The runs of one ablation sweep are children of one parent run per sweep, which spans them
(`Tracker.sweep_parent`, `Tracker.close_parent`). The baseline belongs to every sweep of its
model but can have one parent only, so a sweep's members, baseline included, are marked by a
tag instead: one query (or the UI's search box) finds a sweep with its baseline:

    tags.`scratchnet.in_sweep.twolayer.lr` = 'true'      ordered by metrics.test_acc DESC

and the UI's "Group by" on the tag `scratchnet.entry` shows each value's seeds as one row.

Tags this project sets (the README lists them):

    scratchnet.model            softmax | twolayer
    scratchnet.stage            train | ablate | attack | ablate-sweep (a sweep's parent run)
    scratchnet.sweep            <model>.<key> the run varies ('twolayer.lr'), '<model>.baseline'
    scratchnet.entry            the value tried: 'lr=0.05', or 'baseline'
    scratchnet.in_sweep.<sweep> 'true' on every run a sweep compares, its baseline's included
    scratchnet.seed             the run's seed
    scratchnet.diverged         'true' if training diverged (the run then has no test_acc)
    scratchnet.git_commit       the code's commit ('-dirty' if it had local changes)
    scratchnet.params_hash      hash of the params.yaml the stage ran with (the report cites it)
    scratchnet.dataset          which data: the release or the source's name
    scratchnet.dataset_sha256   the dataset's checksum
    scratchnet.run_key          what the run is, as a hash (the run cache's key); a sweep's
                                parent carries its sweep's key
    scratchnet.dvc_exp          the DVC experiment's name, for runs of `dvc exp run`

Store: `MLFLOW_TRACKING_URI` if set (a shared server), else `sqlite:///<project>/mlflow.db`.
A server that cannot be reached fails the stage at its start (`TrackingError`), before any
training. A failure while logging never loses a run: the caller writes its results first,
and `log_run` raises a `TrackingError` naming the server and the run; the next attempt logs
what is missing and nothing twice.
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from scratchnet.errors import UserError
from scratchnet.files import write_csv

# MLflow itself is imported on first use, not here: its import and store set-up take ~3 s of
# CPU, which an ablation stage spends while its runs train instead of before.

TAG = "scratchnet."  # prefix of the tags this project sets (the stages set model, stage, ...)
SWEEP = TAG + "sweep"
ENTRY = TAG + "entry"
IN_SWEEP = TAG + "in_sweep."  # + '<model>.<key>'
SEED = TAG + "seed"
DIVERGED = TAG + "diverged"
DATASET = TAG + "dataset"
DATASET_SHA256 = TAG + "dataset_sha256"
RUN_KEY = TAG + "run_key"
DVC_EXP = TAG + "dvc_exp"

PARENT = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a run under this parent
TEST_ACC = "test_acc"  # the one metric name for test accuracy, in every run

# MLflow's HTTP client retries an unreachable server for minutes by default; a stage should
# say so within seconds. Applied when a Tracker opens a server, unless the user set them.
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


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
        DATASET: str(provenance.get("dataset", provenance.get("resolved", "unknown"))),
        # A folder source has no archive checksum; the arrays' checksum always exists.
        DATASET_SHA256: str(provenance.get("sha256") or provenance.get("arrays_sha256", "unknown")),
    }


def sweep_tags(model: str, param: str | None, entry: str, swept: Iterable[str]) -> dict[str, str]:
    """Tags placing one ablation run in its sweeps.

    param: the key the run varies, None for the baseline; entry: its name ('lr=0.05' or
    'baseline'); swept: every key the model sweeps. A value run is a member of its own sweep;
    the baseline is a member of every sweep it centres, so one tag query finds a sweep with it.
    """
    members = [param] if param is not None else list(swept)
    return {
        SWEEP: f"{model}.{param or 'baseline'}",
        ENTRY: entry,
        **{f"{IN_SWEEP}{model}.{key}": "true" for key in members},
    }


def dvc_experiment_tags() -> dict[str, str]:
    """The DVC experiment's name, which `dvc exp run` (also `--temp`, `--queue`) hands its stages
    as DVC_EXP_NAME, so its runs can be found by the name `dvc exp show` prints; empty for a
    plain `dvc repro`."""
    name = os.environ.get("DVC_EXP_NAME", "").strip()
    return {DVC_EXP: name} if name else {}


def _ms(seconds: float) -> int:
    """Unix seconds -> MLflow's unix milliseconds."""
    return int(round(seconds * 1000))


class Run:
    """One open MLflow run, for what a stage logs beyond a training record (the attack's
    metrics and figures, a baseline's model). Logging calls never raise mid-stage: the first
    failure is kept in `error` and reported when the run ends, after the caller saved results."""

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

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self._safely(self.client.log_batch, self.run_id, metrics=batch)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self._safely(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_model(self, model_path: Path, class_names: list[str], example: np.ndarray) -> None:
        """Logs a trained network as an MLflow pyfunc model that predicts from raw images.

        example: uint8 (n, 32, 32, 3) real images in [0, 255], stored as the model's input
        example (what the UI shows and `mlflow models serve` users copy); a few images, since
        MLflow keeps them as JSON. The model's signature, output and packaging:
        `scratchnet.study.pyfunc_model`.
        """
        import mlflow

        from scratchnet.study import pyfunc_model

        def log():
            with mlflow.start_run(run_id=self.run_id):
                mlflow.pyfunc.log_model(
                    name="model",
                    python_model=pyfunc_model.script(),
                    model_config={"class_names": list(class_names)},
                    artifacts={"network": str(model_path)},
                    signature=pyfunc_model.signature(class_names),
                    input_example=np.asarray(example, dtype=np.uint8),
                    code_paths=[pyfunc_model.code_path()],
                    pip_requirements=pyfunc_model.requirements(),
                )

        self._safely(log)


class Tracker:
    """The study's experiment on the configured store; fails fast if it is unreachable.

    The stage process is the one writer: worker processes train, this logs their records.
    """

    def __init__(self, experiment: str, root: Path | str = "."):
        self.uri = check_server(root)
        if self.uri.startswith(("http://", "https://")):
            for name, value in HTTP_SETTINGS.items():  # MLflow reads them at each request
                os.environ.setdefault(name, value)
        import mlflow
        from mlflow.tracking import MlflowClient

        # The fluent API (a baseline's `Run.log_model`) logs to the process's current store.
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
        self._logged: dict[str, str] | None = None  # run key -> id of its finished run
        self._members: dict[str, set[str]] = {}  # run id -> its in_sweep tags
        self._partial: dict[str, list[str]] = {}  # run key -> ids of unfinished runs with it
        self._replaced: dict[str, str] = {}  # parent id -> the parent that replaced it

    def logged_keys(self) -> dict[str, str]:
        """{run key: run id} of the finished runs in the experiment, from one search of the
        store on first use, then kept up to date by this tracker's own logging."""
        if self._logged is None:
            logged: dict[str, str] = {}
            for run in self._search(f"tags.`{RUN_KEY}` != ''"):
                key, run_id = run.data.tags[RUN_KEY], run.info.run_id
                if run.info.status == "FINISHED":
                    logged.setdefault(key, run_id)
                    self._members[run_id] = {t for t in run.data.tags if t.startswith(IN_SWEEP)}
                else:  # a logging cut short (the stage died): replaced when the key is logged
                    self._partial.setdefault(key, []).append(run_id)
            self._logged = logged
        return self._logged

    def log_run(
        self,
        record: dict,
        facts: dict,
        *,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, Any],
        parent_run_id: str | None = None,
        on_logged=None,
    ) -> str:
        """Logs one finished training run from its record; returns its MLflow run id.

        record: seed, test_acc (None if diverged), diverged, history (per-epoch dicts: epoch,
        loss, train_acc, val_acc, lr), key (the run cache's key; None logs without a key, so
        without the no-duplicate check). facts: started and ended (unix seconds of the training).
        The run starts and ends at `started` and `ended` (ms); epoch e of n is stamped at
        started + (ended - started) * e / n. If a finished run with the same key is already in
        the experiment, nothing is logged (only the sweeps it newly belongs to, from `tags`,
        are added) and its id is returned. `on_logged(run)` runs before the run is closed:
        the place for a baseline's model. It also runs on an already-logged run that has no
        model yet: the ablation logs the same run (same key) without one when it runs before
        the train stage (`dvc repro ablate` first, or a store refilled from the run cache), and
        the train stage's model must still land on it.

        Raises TrackingError naming the store and the run if it cannot be logged; a partly
        logged run is replaced on the next attempt, never duplicated.
        """
        key = record.get("key")
        if key is not None:
            try:
                found = self.logged_keys().get(key)
            except TrackingError as err:
                raise TrackingError(f"{err} (needed to log run {run_name!r})") from err
            if found is not None:
                self._join_sweeps(found, tags, run_name)
                if on_logged is not None:
                    self._add_model(found, run_name, on_logged)
                return found
        run_tags = {**{k: str(v) for k, v in tags.items()}, **dvc_experiment_tags(),
                    SEED: str(record["seed"]), DIVERGED: str(bool(record["diverged"])).lower()}
        if key is not None:
            run_tags[RUN_KEY] = key
        if parent_run_id is not None:
            run_tags[PARENT] = self._replaced.get(parent_run_id, parent_run_id)
        try:
            for stale in self._partial.pop(key, []) if key is not None else []:
                self.client.delete_run(stale)
            run_id = self.client.create_run(self.experiment_id, start_time=_ms(facts["started"]),
                                            tags=run_tags, run_name=run_name).info.run_id
        except Exception as err:  # noqa: BLE001 - whatever the store says, name it and the run
            raise TrackingError(
                f"MLflow store {self.uri} refused to create run {run_name!r}: {err}. Its results "
                "are saved; rerun the stage once the store is back to log it."
            ) from err
        try:
            self._log_record(run_id, record, facts, params)
            if on_logged is not None:
                run = Run(self.client, run_id)
                on_logged(run)
                if run.error is not None:
                    raise run.error
            self.client.set_terminated(run_id, "FINISHED", end_time=_ms(facts["ended"]))
        except Exception as err:  # noqa: BLE001
            try:  # shown as FAILED, if the store still answers; a retry replaces it either way
                self.client.set_terminated(run_id, "FAILED", end_time=_ms(facts["ended"]))
            except Exception:  # noqa: BLE001
                pass
            if key is not None:
                self._partial.setdefault(key, []).append(run_id)
            raise TrackingError(
                f"run {run_name!r} ({run_id}) was not fully logged to MLflow at {self.uri}: {err}. "
                "Its results are saved; rerun the stage to log it again."
            ) from err
        if key is not None:
            self.logged_keys()[key] = run_id
            self._members[run_id] = {t for t in run_tags if t.startswith(IN_SWEEP)}
        return run_id

    def _log_record(self, run_id: str, record: dict, facts: dict, params: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param

        started, ended = facts["started"], facts["ended"]
        history = record["history"]
        epochs = max([r["epoch"] for r in history] + [record.get("diverged_epoch") or 0]) or 1
        metrics = [Metric(name, float(value), _ms(started + (ended - started) * r["epoch"] / epochs),
                          int(r["epoch"]))
                   for r in history for name, value in r.items()
                   if name != "epoch" and value is not None]
        if record["test_acc"] is not None:
            metrics.append(Metric(TEST_ACC, float(record["test_acc"]), _ms(ended), 0))
        param_list = [Param(k, str(v)) for k, v in params.items()]
        # One request in the usual case; MLflow takes at most 100 params and 1000 entries each.
        while param_list or metrics:
            batch_params, param_list = param_list[:100], param_list[100:]
            room = 1000 - len(batch_params)
            batch_metrics, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, metrics=batch_metrics, params=batch_params)
        if history:  # a run that diverged in its first epoch has no curve
            with tempfile.TemporaryDirectory() as tmp:
                curve = Path(tmp) / "curve.csv"
                write_csv(curve, history, list(history[0]))
                self.client.log_artifact(run_id, str(curve))

    def _add_model(self, run_id: str, run_name: str, on_logged) -> None:
        """on_logged(run) on a logged run without a model; the run keeps its status and times
        (MLflow reopens a run to log a model into it, and would end it now)."""
        try:
            logged = self.client.get_run(run_id)
            if logged.outputs.model_outputs:
                return
            run = Run(self.client, run_id)
            on_logged(run)
            if run.error is not None:
                raise run.error
            self.client.set_terminated(run_id, logged.info.status, end_time=logged.info.end_time)
        except Exception as err:  # noqa: BLE001 - whatever the store says, name it and the run
            raise TrackingError(f"MLflow store {self.uri}: run {run_name!r} ({run_id}) is logged, "
                                f"but its model could not be added to it: {err}") from err

    def _join_sweeps(self, run_id: str, tags: dict[str, Any], run_name: str) -> None:
        """Adds the in_sweep tags a logged run lacks: a baseline joins a sweep added later."""
        from mlflow.entities import RunTag

        have = self._members.setdefault(run_id, set())
        new = [t for t in tags if t.startswith(IN_SWEEP) and t not in have]
        if not new:
            return
        try:
            self.client.log_batch(run_id, tags=[RunTag(t, str(tags[t])) for t in new])
        except Exception as err:  # noqa: BLE001
            raise TrackingError(f"MLflow store {self.uri} refused to tag run {run_name!r} "
                                f"({run_id}) with its sweeps: {err}") from err
        have.update(new)

    def sweep_parent(self, name: str, key: str, tags: dict[str, Any], *, start: float | None = None) -> str:
        """The id of the parent run grouping a sweep, created on first use.

        key: the sweep's fixed part as a hash (model, varied key, baseline hyper-parameters,
        data): values added later to the same sweep join the same parent; a changed baseline
        starts a new group, since its runs are no longer comparable with the old ones.
        start: unix seconds the parent starts at if created (default now); `close_parent`
        moves it to its children's span.
        """
        found = self.logged_keys().get(key)
        if found is not None:
            return found
        at = _ms(time.time() if start is None else start)
        run_id = self._create_parent(name, {**{k: str(v) for k, v in tags.items()},
                                            **dvc_experiment_tags(), RUN_KEY: key}, at, at)
        self.logged_keys()[key] = run_id
        return run_id

    def close_parent(self, run_id: str, start: float, end: float) -> str:
        """Makes a sweep's parent span its children: from the earliest child start to the
        latest child end, over `start`/`end` (unix seconds) and every child in the store,
        so a later call with new children widens it. Returns the parent's id.

        MLflow cannot move a run's start; when it must move, the parent is replaced by one
        that starts right, its children are moved under it, and the old one is deleted.
        The returned id is then new: record it (log_run maps the old one to it).
        """
        from mlflow.entities import RunTag

        run_id = self._replaced.get(run_id, run_id)
        try:
            parent = self.client.get_run(run_id)
            children = self._search(f"tags.`{PARENT}` = '{run_id}'")
            first = min([_ms(start)] + [c.info.start_time for c in children])
            last = max([_ms(end)] + [c.info.end_time for c in children if c.info.end_time])
            if parent.info.start_time != first:
                old = run_id
                run_id = self._create_parent(parent.info.run_name, dict(parent.data.tags), first, last)
                for child in children:
                    self.client.log_batch(child.info.run_id, tags=[RunTag(PARENT, run_id)])
                self.client.delete_run(old)
                for replaced in [k for k, v in self._replaced.items() if v == old] + [old]:
                    self._replaced[replaced] = run_id
                logged = self.logged_keys()
                for key in [k for k, v in logged.items() if v == old]:
                    logged[key] = run_id
            else:
                self.client.set_terminated(run_id, "FINISHED", end_time=last)
        except TrackingError:
            raise
        except Exception as err:  # noqa: BLE001
            raise TrackingError(f"MLflow store {self.uri} refused to update parent run {run_id}: {err}") from err
        return run_id

    def _create_parent(self, name: str, tags: dict[str, str], start_ms: int, end_ms: int) -> str:
        try:
            run_id = self.client.create_run(self.experiment_id, start_time=start_ms, tags=tags,
                                            run_name=name).info.run_id
            self.client.set_terminated(run_id, "FINISHED", end_time=end_ms)
        except Exception as err:  # noqa: BLE001
            raise TrackingError(f"MLflow store {self.uri} refused to create parent run {name!r}: {err}") from err
        return run_id

    def _search(self, filter_string: str) -> list:
        """Every active run of the experiment matching `filter_string`, all pages."""
        runs, token = [], None
        try:
            while True:
                page = self.client.search_runs([self.experiment_id], filter_string=filter_string,
                                               max_results=1000, page_token=token)
                runs.extend(page)
                token = page.token
                if not token:
                    return runs
        except Exception as err:  # noqa: BLE001
            raise TrackingError(f"MLflow store {self.uri} refused a search ({filter_string}): {err}") from err

    @contextmanager
    def run(
        self,
        name: str,
        params: dict[str, Any],
        tags: dict[str, Any],
        parent_run_id: str | None = None,
    ) -> Iterator[Run]:
        """A run logged while its stage works (the attack): opened now, closed at the block's end."""
        from mlflow.entities import Param

        all_tags = {**{k: str(v) for k, v in tags.items()}, **dvc_experiment_tags()}
        if parent_run_id:
            all_tags[PARENT] = parent_run_id
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
