"""The one place that talks to MLflow.

One experiment for the study; one run per training run, logged after the fact from its record
and facts (`Tracker.log_run`), created with its training's start and ended with its end.
The README lists what a run holds and the tags set here (the constants below).

A sweep's value runs are children of one parent run per sweep (`sweep_parent`, `close_parent`).
A baseline centres every sweep of its model but has one parent only, so a sweep's members,
baseline included, also carry a tag that one query finds:
tags.`scratchnet.in_sweep.twolayer.lr` = 'true'.

One run per run key (`scratchnet.run_key`), however many stages log at once. Before creating
a run its key is searched; a finished run there is used as it is.
- The project's SQLite store: its writers take turns under an fcntl lock beside it
  (`mlflow.db.lock`) from that search until the run is ended, so no key is created twice, and
  an unfinished run found under the lock was cut short by a dead stage: it is replaced.
- A server, maybe shared by several machines: create, then reconcile. The key is searched
  again; the winner is, in every process, the twin with the earliest start, then the smallest
  run id (a parent that starts first spans every twin's children). The order uses nothing
  that changes after a run is created (not its status), so no two writers can each delete
  the other's twin: a run is deleted only by a writer that sees a better one, and the best
  is never deleted. The others go, their children and experiment tags moved to the winner,
  by whoever sees them; the last writer to look sees every twin, so one run remains. A
  writer holding the id of a twin deleted since looks its key up again. A best twin that
  another writer is still logging is given TWIN_WAIT seconds before it counts as cut short.
"Database is locked": MLflow opens every SQLite session with `PRAGMA busy_timeout = 20000`
(a writer waits up to 20 s for another) and the lock above serialises the study's writers, so
no retry is added here.

The store: tracking_uri; a server that cannot be reached fails the stage at its start
(check_server). A failure while logging never loses a run: the caller writes its results
first, and the Tracker raises a `TrackingError` naming the store and the run; the next
attempt logs what is missing and nothing twice.
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

try:  # the lock a SQLite store's writers share; without it (Windows) reconcile alone
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]  # mypy types the name as the module; None here means no lock

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
DVC_EXP = TAG + "dvc_exp"  # the DVC experiment that logged a run; a parent, which runs of
# several experiments may join, has one tag per experiment whose sweep it groups, + '.<name>'
WORKER = TAG + "worker"  # where a run trained: 'host:pid' or a Dask worker's address

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
        if folder.parent.match(".dvc/tmp/exps"):  # <project>/.dvc/tmp/exps/<tmpdir>
            return folder.parents[3]
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
    database = Path(uri[len("sqlite:///") :])
    return (database.parent / "mlruns").as_uri()


def check_server(root: Path | str = ".", timeout: float = 5.0) -> str:
    """The tracking URI, after checking that an http(s) server there answers (TrackingError if
    not). Needs no MLflow import, so a stage can call it first and fail within a second."""
    uri = tracking_uri(root)
    if not uri.startswith(("http://", "https://")):
        return uri
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
    return uri


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


def dvc_experiment_tags(parent: bool = False) -> dict[str, str]:
    """The DVC experiment's name, which `dvc exp run` (also `--temp`, `--queue`) hands its stages
    as DVC_EXP_NAME, so its runs can be found by the name `dvc exp show` prints; empty for a
    plain `dvc repro`. parent: the form a sweep's parent takes, one tag per experiment, since
    the runs of several experiments may join one parent."""
    name = os.environ.get("DVC_EXP_NAME", "").strip()
    if not name:
        return {}
    return {f"{DVC_EXP}.{name}": "true"} if parent else {DVC_EXP: name}


def _ms(seconds: float) -> int:
    """Unix seconds -> MLflow's unix milliseconds."""
    return int(round(seconds * 1000))


def _robust(metrics: dict) -> dict[str, float]:
    """The robust_* numbers of `metrics` (name -> value), as floats."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if k.startswith("robust_") and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _same(a: float | None, b: float) -> bool:
    return a == b or (a is not None and np.isnan(a) and np.isnan(b))


def _rank(run) -> tuple:
    """The reconcile rule's order among the runs of one key (module docstring)."""
    return run.info.start_time or 0, run.info.run_id


class Tracker:
    """The study's experiment on the configured store; fails fast if it is unreachable.

    The stage process is the one writer: worker processes train, this logs their runs.
    """

    LOCK_WAIT = 600.0  # s a writer waits for another stage's lock on a SQLite store
    TWIN_WAIT = 10.0  # s a server-side twin being logged elsewhere is given to finish

    def __init__(self, experiment: str, root: Path | str = "."):
        self.uri = check_server(root)
        if self.uri.startswith(("http://", "https://")):
            for name, value in HTTP_SETTINGS.items():  # MLflow reads them at each request
                os.environ.setdefault(name, value)
        sqlite = self.uri.startswith("sqlite:///")
        self.lock = Path(self.uri[len("sqlite:///") :] + ".lock") if sqlite and fcntl else None
        self._locked = False
        import mlflow
        from mlflow.tracking import MlflowClient

        # The fluent API (a baseline's model: pyfunc_model.log) logs to the process's current store.
        mlflow.set_tracking_uri(self.uri)
        # a new store's tables are created by one stage
        with self._fails(f"MLflow store {self.uri} refused experiment {experiment!r}"), self._exclusive():
            exp = mlflow.get_experiment_by_name(experiment)
            if exp is None:  # created with its artifacts beside the store (artifact_root)
                try:
                    mlflow.create_experiment(experiment, artifact_location=artifact_root(self.uri))
                except mlflow.exceptions.MlflowException as err:
                    if err.error_code != "RESOURCE_ALREADY_EXISTS":  # a twin stage created it first
                        raise
            exp = mlflow.set_experiment(experiment)
        # A local store's experiment whose artifacts are outside the store's folder: the store
        # was copied from another project, whose mlruns/ its runs would write into (MLflow
        # cannot move an experiment's location).
        mlruns, location = artifact_root(self.uri), exp.artifact_location
        if mlruns and location.startswith("file:") and location != mlruns and not location.startswith(mlruns + "/"):
            raise TrackingError(
                f"MLflow store {self.uri.removeprefix('sqlite:///')}: experiment {experiment!r} keeps its artifacts in "
                f"{location}, outside this project (the store was copied from another project?), so new runs "
                "would write there. Move mlflow.db and mlruns/ away to start a fresh store here, or set "
                "tracking.experiment in params.yaml to a new name."
            )
        self.experiment_id = exp.experiment_id
        self.client = MlflowClient(self.uri)
        self._logged: dict[str, str] | None = None  # run key -> id of its finished run
        self._members: dict[str, set[str]] = {}  # run id -> its in_sweep tags
        self._robust: dict[str, dict[str, float]] = {}  # run id -> its latest robust_* metrics
        self._parents: dict[str, set[str]] = {}  # a parent's key -> every id this tracker used

    @contextmanager
    def _fails(self, message: str) -> Iterator[None]:
        """Any error of the store inside becomes a TrackingError '<message>: <error>'."""
        try:
            yield
        except TrackingError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever the store says, name it
            raise TrackingError(f"{message}: {err}") from err

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This project's writers one at a time on a SQLite store (fcntl lock beside it; the
        kernel drops it with a dead holder); nothing on a server."""
        if self.lock is None or self._locked:
            yield
            return
        with open(self.lock, "a") as handle:
            deadline = time.monotonic() + self.LOCK_WAIT
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TrackingError(
                            f"MLflow store {self.uri}: another stage held {self.lock} for "
                            f"{self.LOCK_WAIT:.0f} s; is one stuck? (a stopped stage drops it)"
                        ) from None
                    time.sleep(0.02)
            self._locked = True
            try:
                yield
            finally:
                self._locked = False
                fcntl.flock(handle, fcntl.LOCK_UN)

    def logged_keys(self) -> dict[str, str]:
        """{run key: run id} of the finished runs in the experiment, from one search of the store
        on first use, then kept up to date by this tracker's own logging."""
        if self._logged is None:
            logged: dict[str, str] = {}
            for run in sorted(self._search(f"tags.`{RUN_KEY}` != ''"), key=_rank):
                if run.info.status == "FINISHED":
                    logged.setdefault(run.data.tags[RUN_KEY], run.info.run_id)
                    self._members[run.info.run_id] = {t for t in run.data.tags if t.startswith(IN_SWEEP)}
                    self._robust[run.info.run_id] = _robust(run.data.metrics)
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
        on_logged: Callable[[str], None] | None = None,
    ) -> str:
        """Logs one finished training run once; returns the id of its key's MLflow run.

        record: key (the run cache's), seed, test_acc (None if diverged), diverged,
        diverged_epoch, history (per-epoch dicts: epoch, loss, train_acc, val_acc, lr),
        robustness (None or {name: number}).
        facts: started and ended (unix seconds of the training: the run's start and end; epoch
        e of n is stamped at started + (ended - started) * e / n) and worker (a tag).
        on_logged(run_id): a baseline's model (pyfunc_model.log), logged before the run ends.
        A run whose key is logged already is not logged again: it only joins the sweeps of
        `tags` it lacks and gets `on_logged`'s model if it has none (the ablation logs the
        baseline's run without one when it runs before the train stage); and, the key being
        the training's, a network measured again with other params `robustness` takes the new
        robust_* values (_remeasured). TrackingError as the module docstring says.
        """
        from mlflow.entities import Metric

        started, ended = facts["started"], facts["ended"]
        history = record["history"]
        epochs = max([r["epoch"] for r in history] + [record.get("diverged_epoch") or 0]) or 1
        metrics = [
            Metric(name, float(value), _ms(started + (ended - started) * r["epoch"] / epochs), int(r["epoch"]))
            for r in history
            for name, value in r.items()
            if name != "epoch" and value is not None
        ]
        robust = _robust({f"robust_{k}": v for k, v in flatten(record.get("robustness") or {}).items()})
        finals = robust if record["test_acc"] is None else {TEST_ACC: record["test_acc"], **robust}
        metrics += [Metric(name, float(value), _ms(ended), 0) for name, value in finals.items()]
        run_tags = {
            **tags,
            SEED: record["seed"],
            DIVERGED: str(bool(record["diverged"])).lower(),
            WORKER: facts["worker"],
        }
        if parent_run_id is not None:
            run_tags[PARENT] = parent_run_id

        written = []

        def write(run_id: str) -> None:
            written.append(run_id)
            self._robust[run_id] = robust
            self._write(run_id, params, metrics)
            if history:  # a run that diverged in its first epoch has no curve
                with tempfile.TemporaryDirectory() as tmp:
                    curve = Path(tmp) / "curve.csv"
                    write_csv(curve, history, list(history[0]))
                    self.client.log_artifact(run_id, str(curve))
            if on_logged is not None:
                on_logged(run_id)

        run_id = self._log(record["key"], run_name, run_tags, started, ended, write, on_logged)
        if not written:
            self._remeasured(run_id, robust, run_name)
        return run_id

    def _remeasured(self, run_id: str, robust: dict[str, float], name: str) -> None:
        """A logged run's robust_* metrics become `robust` (measured now) if they differ: the
        run, the UI's table and its compare view show the current measurement, the earlier one
        stays in each metric's history. A number the new measurement lacks is logged as NaN. A
        run not measured now (robustness off) keeps its last measurement."""
        from mlflow.entities import Metric

        if not robust:
            return
        with self._fails(
            f"MLflow store {self.uri}: run {name!r} ({run_id}) is logged, but its new robustness "
            "could not be added to it"
        ):
            if run_id not in self._robust:  # found by its key's search, not in logged_keys()
                self._robust[run_id] = _robust(self.client.get_run(run_id).data.metrics)
            new = {k: robust.get(k, float("nan")) for k in self._robust[run_id].keys() | robust.keys()}
            if all(_same(self._robust[run_id].get(k), v) for k, v in new.items()):
                return
            self.client.log_batch(run_id, metrics=[Metric(k, v, _ms(time.time()), 0) for k, v in new.items()])
        self._robust[run_id] = new

    def log_outputs(
        self,
        key: str,
        *,
        run_name: str,
        params: dict[str, Any],
        tags: dict[str, Any],
        metrics: dict[str, float],
        artifacts: Iterable[Path],
        artifact_path: str | None,
        started: float,
        ended: float,
    ) -> str:
        """Logs a stage's own run once per key (the attack): its params, metrics and files, from
        `started` to `ended` (unix seconds). Returns the key's run id; TrackingError as log_run."""
        from mlflow.entities import Metric

        def write(run_id: str) -> None:
            self._write(run_id, params, [Metric(k, float(v), _ms(ended), 0) for k, v in metrics.items()])
            for path in artifacts:
                self.client.log_artifact(run_id, str(path), artifact_path)

        return self._log(key, run_name, tags, started, ended, write)

    def _log(
        self,
        key: str,
        name: str,
        tags: dict[str, Any],
        started: float,
        ended: float,
        write: Callable[[str], None],
        on_logged=None,
    ) -> str:
        """The run `name` of `key`, created (start `started`), written by write(run_id) and ended
        (`ended`) unless the key is logged already; then only joined (_join)."""
        tags = {**{k: str(v) for k, v in tags.items()}, **dvc_experiment_tags(), RUN_KEY: key}
        with self._exclusive():
            try:
                run_id = self.logged_keys().get(key)
                created = False
                if run_id is None:
                    run_id, created = self._once(key, partial(self._create, name, tags, started))
            except TrackingError as err:
                raise TrackingError(f"{err} (needed to log run {name!r})") from err
            except Exception as err:  # noqa: BLE001 - whatever the store says, name it and the run
                raise TrackingError(
                    f"MLflow store {self.uri} refused to create run {name!r}: {err}. Its results "
                    "are saved; rerun the stage once the store is back to log it."
                ) from err
            if created:
                found = self._fill(run_id, key, name, write, ended)
                created, run_id = found == run_id, found
            if created:
                self._members[run_id] = {t for t in tags if t.startswith(IN_SWEEP)}
            else:  # the winner this writer knows may have lost to a twin created elsewhere since
                run_id = self._on_winner(key, run_id, lambda r: self._join(r, tags, name, on_logged))
            self.logged_keys()[key] = run_id
        return run_id

    def _create(self, name: str, tags: dict[str, str], start: float, end: float | None = None) -> str:
        """A new run's id, started at `start` (unix seconds); if `end` is given, also ended then."""
        run_id = self.client.create_run(self.experiment_id, start_time=_ms(start), tags=tags, run_name=name).info.run_id
        if end is not None:
            self.client.set_terminated(run_id, "FINISHED", end_time=_ms(end))
        return run_id

    def _once(self, key: str, create: Callable[[], str], start: float | None = None) -> tuple[str, bool]:
        """(the id of `key`'s one run, whether create() made it now), by the reconcile rule of
        the module docstring. start: a parent's, which a best twin starting later loses to a
        new run."""
        mine: str | None = None
        deadline = time.monotonic() + (0 if self.lock else self.TWIN_WAIT)
        for _ in range(100):  # a bound, not a rule: each turn deletes a twin, waits or creates
            twins = self._twins(key)
            best = twins[0] if twins else None
            if mine is not None and best is not None and best.info.run_id == mine:
                self._retire(twins, mine)  # later parents too: children and experiments moved
                return mine, True
            if best is not None and (start is None or best.info.start_time <= _ms(start)):
                if best.info.status == "FINISHED":
                    self._retire(twins, best.info.run_id)  # ours too, if we made one
                    return best.info.run_id, False
                if best.info.status == "RUNNING" and time.monotonic() < deadline:
                    time.sleep(0.5)
                else:
                    self._retire([best], None)  # cut short
                continue
            mine = create()  # none yet, or only later parents; or ours was cut short meanwhile
            if self.lock is not None:  # no other writer under the lock: the twins are those seen
                self._retire(twins, mine)
                return mine, True
        raise TrackingError(f"MLflow store {self.uri}: the runs of key {key} kept changing; rerun the stage")

    def _retire(self, twins: list, winner: str | None) -> None:
        """Deletes every run of `twins` but the winner, moving its children and its experiment
        tags (a parent's `scratchnet.dvc_exp.<name>`) to the winner."""
        for twin in twins:
            loser = twin.info.run_id
            if loser == winner:
                continue
            if winner is not None:
                self._adopt(winner, loser)
            try:
                self.client.delete_run(loser)
            except Exception:  # noqa: BLE001 - deleted by another writer's reconcile meanwhile
                pass
            if winner is None:
                continue
            try:  # read after the delete: a tag its writer added until then is kept
                tags = self.client.get_run(loser).data.tags
            except Exception:  # noqa: BLE001
                tags = twin.data.tags
            try:
                self._tag(winner, {k: v for k, v in tags.items() if k.startswith(DVC_EXP + ".")})
            except Exception:  # noqa: BLE001 - the winner itself lost to a better twin meanwhile:
                pass  # its own retirer moves its tags; each writer re-tags its own at close_parent

    def _adopt(self, parent: str, old: str) -> None:
        """The children of run `old` become children of `parent`."""
        for child in self._search(f"tags.`{PARENT}` = '{old}'"):
            self._tag(child.info.run_id, {PARENT: parent})

    def _fill(self, run_id: str, key: str, name: str, write, ended: float) -> str:
        """write(run_id), then the run ends at `ended`. Returns run_id, or the key's winner if
        another writer's reconcile deleted this run meanwhile (a server)."""
        try:
            write(run_id)
            self.client.set_terminated(run_id, "FINISHED", end_time=_ms(ended))
            return run_id
        except Exception as err:  # noqa: BLE001
            twins = self._twins(key) if self.lock is None else []
            if twins and run_id not in {t.info.run_id for t in twins}:
                return twins[0].info.run_id
            try:  # shown as FAILED, if the store still answers; a retry replaces it either way
                self.client.set_terminated(run_id, "FAILED", end_time=_ms(ended))
            except Exception:  # noqa: BLE001
                pass
            raise TrackingError(
                f"run {name!r} ({run_id}) was not fully logged to MLflow at {self.uri}: {err}. "
                "Its results are saved; rerun the stage to log it again."
            ) from err

    def _join(self, run_id: str, tags: dict[str, str], name: str, on_logged) -> None:
        """A logged run joins the sweeps of `tags` it lacks and gets on_logged's model if it has
        none, keeping its status and times (MLflow reopens a run to log a model, and would end it
        now)."""
        have = self._members.setdefault(run_id, set())
        new = {t: tags[t] for t in tags if t.startswith(IN_SWEEP) and t not in have}
        with self._fails(
            f"MLflow store {self.uri}: run {name!r} ({run_id}) is logged, but its sweeps or model could not be "
            "added to it"
        ):
            self._tag(run_id, new)
            have.update(new)
            if on_logged is None:
                return
            logged = self.client.get_run(run_id)
            assert logged.outputs is not None  # a run read from a store carries its outputs, maybe none
            if not logged.outputs.model_outputs:
                on_logged(run_id)
                self.client.set_terminated(run_id, logged.info.status, end_time=logged.info.end_time)

    def _write(self, run_id: str, params: dict[str, Any], metrics: list) -> None:
        from mlflow.entities import Param

        param_list = [Param(k, str(v)) for k, v in params.items()]
        # One request in the usual case; MLflow takes at most 100 params and 1000 entries each.
        while param_list or metrics:
            batch_params, param_list = param_list[:100], param_list[100:]
            room = 1000 - len(batch_params)
            batch_metrics, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, metrics=batch_metrics, params=batch_params)

    def sweep_parent(self, name: str, key: str, tags: dict[str, Any], start: float) -> str:
        """The id of the parent run grouping a sweep: its key's one run, found or created.

        key: the sweep's fixed part as a hash (runs.SweepLog.parent): values added later join
        its parent; a changed baseline starts a new one. start: unix seconds a new parent starts
        at and, until close_parent, ends at; no later than any child it will hold. A parent of
        the key that starts later (created first by a stage running at once that began later)
        is replaced by one starting at `start`: MLflow cannot move a start. The running DVC
        experiment is added to the parent's (dvc_experiment_tags).
        """
        tags = {**{k: str(v) for k, v in tags.items()}, **dvc_experiment_tags(parent=True), RUN_KEY: key}
        with self._fails(f"MLflow store {self.uri} refused to create parent run {name!r}"), self._exclusive():
            run_id, created = self._once(key, partial(self._create, name, tags, start, start), start)
            if not created:
                run_id = self._on_winner(key, run_id, lambda r: self._tag(r, dvc_experiment_tags(parent=True)))
        self._parents.setdefault(key, set()).add(run_id)
        return run_id

    def close_parent(self, key: str) -> str:
        """Ends the sweep's parent of `key` at its last child's end, over every child in the
        store (an earlier stage's and other writers' included). Children this tracker filed
        under a parent that another writer's reconcile has since replaced move to the winner.
        Returns the parent's id."""

        def close(run_id: str) -> None:
            winner = self.client.get_run(run_id)
            for used in self._parents.get(key, set()) - {run_id}:
                self._adopt(run_id, used)
            ends = [c.info.end_time or 0 for c in self._search(f"tags.`{PARENT}` = '{run_id}'")]
            self.client.set_terminated(run_id, "FINISHED", end_time=max([winner.info.end_time or 0, *ends]))
            self._tag(run_id, dvc_experiment_tags(parent=True))

        with self._fails(f"MLflow store {self.uri} refused to close parent run of key {key}"), self._exclusive():
            twins = self._twins(key)
            if not twins:
                raise TrackingError(
                    f"MLflow store {self.uri}: the parent run of sweep key {key} "
                    "was deleted while the stage ran; rerun the stage to log it"
                )
            self._retire(twins, twins[0].info.run_id)
            run_id = self._on_winner(key, twins[0].info.run_id, close)
        self._parents[key] = {run_id}
        return run_id

    def _on_winner(self, key: str, run_id: str, action: Callable[[str], None]) -> str:
        """action(run_id) on the key's winner; returns the id it was done on. On a server a run
        gone during or after the action lost to a better twin since: the action is done again
        on the key's winner now."""
        for _ in range(10):
            try:
                action(run_id)
                if self.lock is not None or self.client.get_run(run_id).info.lifecycle_stage == "active":
                    return run_id
            except Exception:  # noqa: BLE001
                if self.lock is not None:
                    raise
            twins = self._twins(key)
            if not twins:
                break
            run_id = twins[0].info.run_id
        raise TrackingError(f"MLflow store {self.uri}: the run of key {key} was deleted while it was being logged")

    def _tag(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _twins(self, key: str) -> list:
        """Every active run of the experiment with run key `key`, the best (_rank) first."""
        return sorted(self._search(f"tags.`{RUN_KEY}` = '{key}'"), key=_rank)

    def _search(self, filter_string: str) -> list:
        """Every active run of the experiment matching `filter_string`, all pages."""
        runs: list  # mlflow.entities.Run, every page's
        runs, token = [], None
        with self._fails(f"MLflow store {self.uri} refused a search ({filter_string})"):
            while True:
                page = self.client.search_runs(
                    [self.experiment_id], filter_string=filter_string, max_results=1000, page_token=token
                )
                runs.extend(page)
                token = page.token
                if not token:
                    return runs
