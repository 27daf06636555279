"""Every server or cluster a test starts, started and stopped one way.

A service (an `mlflow server`, `mlflow models serve`, the `make ui` command, a Dask scheduler or
worker) runs in its own process group (`start_new_session=True`), so stopping it reaches every
process it started itself (MLflow's uvicorn/gunicorn workers, a worker's children): SIGTERM to
the group, then SIGKILL to whatever is left after a bounded wait. Use it as a context manager:

    with service([mlflow, "server", "--port", str(port), ...], cwd=tmp_path,
                 ready=f"http://127.0.0.1:{port}/health") as server:
        ...

Every group started is remembered (STARTED); `leftovers()` names what is still alive, and the
suite fails at its end if anything is (tests/conftest.py, pytest_sessionfinish). Waits here are
hang guards only: a service that is up is used at once; only a dead one or one that never comes
up ends the wait, with an error that says which.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent
# Hang guards: far above what a loaded 2-core machine needs (MLflow's first start compiles its
# store's tables in ~10-30 s there), so that only a real hang fails.
READY_SECONDS = 300.0
STOP_SECONDS = 15.0
# Names of the programs whose stray processes the session check looks for.
SERVICE_NAMES = ("mlflow", "gunicorn", "uvicorn", "waitress", "dask", "celery", "huey")

# pgid -> the command that started it: every group started in this process.
STARTED: dict[int, str] = {}


def free_port() -> int:
    """A TCP port nothing listens on now (closed again at once, for a server to take)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One started command in its own process group."""

    def __init__(
        self,
        cmd: Sequence[str | Path],
        *,
        cwd: Path | str,
        env: dict | None = None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text: bool = True,
    ):
        self.command = " ".join(str(c) for c in cmd)
        self.process = subprocess.Popen(
            [str(c) for c in cmd], cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=text, start_new_session=True
        )
        self.pgid = self.process.pid  # a new session's leader: its pid is the group's id
        self.uri: str | None = None  # a server's address, once known
        STARTED[self.pgid] = self.command

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def wait_until_up(self, url: str, seconds: float = READY_SECONDS) -> None:
        """Returns once `url` answers 200; fails at once if the service exits, or after
        `seconds` (a hang guard, not a time limit on the product)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if not self.running:
                raise AssertionError(f"{self.command} exited ({self.process.returncode}) before {url} answered")
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {seconds:.0f} s: {self.command}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the whole group at once (a service that dies mid-test)."""
        _signal_group(self.pgid, signal.SIGKILL)
        self.process.wait(timeout=STOP_SECONDS)

    def stop(self, seconds: float = STOP_SECONDS) -> None:
        """SIGTERM to the group; SIGKILL to what is left of it after `seconds`. Idempotent."""
        _signal_group(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + seconds
        while group_alive(self.pgid) and time.monotonic() < deadline:
            self.process.poll()  # reaps the leader once it exits
            time.sleep(0.1)
        if group_alive(self.pgid):
            _signal_group(self.pgid, signal.SIGKILL)
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass  # left for the session check to name
        # the group's members are reparented to init, which reaps them; wait for that briefly
        deadline = time.monotonic() + seconds
        while group_alive(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def service(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | str,
    env: dict | None = None,
    ready: str | None = None,
    ready_seconds: float = READY_SECONDS,
    **popen,
) -> Iterator[Service]:
    """Starts `cmd` in its own process group, waits for the URL `ready` (if given) to answer,
    yields the Service, and stops the whole group however the block ends."""
    started = Service(cmd, cwd=cwd, env=env, **popen)
    try:
        if ready is not None:
            started.wait_until_up(ready, ready_seconds)
        yield started
    finally:
        started.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether any process of the group runs (zombies waiting for their parent do not)."""
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.info["pid"]) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


# ------------------------------------------------------------------------------- MLflow servers


@contextmanager
def mlflow_server(
    folder: Path,
    *,
    backend: str | None = None,
    serve_artifacts: bool = True,
    env: dict | None = None,
    ready_seconds: float = READY_SECONDS,
) -> Iterator[Service]:
    """An `mlflow server` on a free port of 127.0.0.1 with its store in `folder` (or `backend`)
    and artifacts served from folder/artifacts (or, not served, written there by the clients
    themselves); yields it (its address: `.uri`) once /health
    answers, and stops it (its uvicorn workers included) when the block ends."""
    port = free_port()
    cmd: list[str | Path] = [
        BIN / "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend or f"sqlite:///{folder / 'server.db'}",
        "--workers",
        "1",
        *(
            ["--artifacts-destination", str(folder / "artifacts")]
            if serve_artifacts
            else ["--default-artifact-root", str(folder / "artifacts"), "--no-serve-artifacts"]
        ),
    ]
    # The server's background job runner only slows its start.
    env = {**(env if env is not None else os.environ), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    uri = f"http://127.0.0.1:{port}"
    with service(cmd, cwd=folder, env=env, ready=uri + "/health", ready_seconds=ready_seconds) as server:
        server.uri = uri
        yield server


# --------------------------------------------------------------------------------- Dask clusters


@dataclass
class Cluster:
    """A scheduler and its worker processes (no nanny: the process that dies is the worker)."""

    address: str
    scheduler: Service
    workers: list[Service] = field(default_factory=list)

    def worker_addresses(self) -> list[str]:
        """The addresses of the workers registered with the scheduler now."""
        from distributed import Client

        with Client(self.address, timeout=READY_SECONDS, set_as_default=False) as client:
            return sorted(client.scheduler_info()["workers"])

    def wait_for_workers(self, count: int, seconds: float = READY_SECONDS) -> None:
        """Hang guard: returns as soon as `count` workers are registered."""
        from distributed import Client

        with Client(self.address, timeout=seconds, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=seconds)


@contextmanager
def dask_cluster(
    folder: Path, workers: int = 2, *, preload: Path | None = None, env: dict | None = None
) -> Iterator[Cluster]:
    """`dask scheduler` and `workers` × `dask worker --nthreads 1 --no-nanny` on 127.0.0.1,
    started from the venv's bin in `folder` (workers need no project), each in its own process
    group; yields once every worker is registered; stops the workers, then the scheduler.
    `preload`: a module file every worker imports first (dask's --preload)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**(env if env is not None else os.environ), "OMP_NUM_THREADS": "1"}
    dask = BIN / "dask"
    scheduler = Service(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], cwd=folder, env=env
    )
    cluster = Cluster(address, scheduler)
    try:
        extra = ["--preload", str(preload)] if preload is not None else []
        for _ in range(workers):
            cluster.workers.append(
                Service(
                    [
                        dask,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        *extra,
                    ],
                    cwd=folder,
                    env=env,
                )
            )
        cluster.wait_for_workers(workers)
        yield cluster
    finally:
        for worker in cluster.workers:
            worker.stop()
        scheduler.stop()


# ---------------------------------------------------------------------------- the session check


def stop_all() -> None:
    """SIGKILL to every group started here that still runs (at exit, after an interruption)."""
    for pgid in STARTED:
        if group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)


def leftovers(temp_root: Path | None = None) -> list[str]:
    """Every process a test left running: a group started here that still has a live member,
    a service program among this process's descendants, and any process whose working
    directory lies under `temp_root` (the session's temporary folders: where DVC's detached
    queue workers run). Each as 'pid command'."""
    found: dict[int, str] = {}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline", "status", "cwd"]):
        info = proc.info
        if info["pid"] == me or info["status"] == psutil.STATUS_ZOMBIE or _helper(info["cmdline"]):
            continue
        try:
            pgid = os.getpgid(info["pid"])
        except ProcessLookupError:
            continue
        cwd = info.get("cwd") or ""
        if pgid in STARTED or (temp_root is not None and cwd and Path(cwd).is_relative_to(temp_root)):
            found[info["pid"]] = " ".join(info["cmdline"] or [])
    for proc in psutil.Process(me).children(recursive=True):
        try:
            if _helper(proc.cmdline()):
                continue
            cmdline = " ".join(proc.cmdline())
            if proc.status() != psutil.STATUS_ZOMBIE and any(
                Path(part).name.startswith(SERVICE_NAMES) for part in proc.cmdline()[:3]
            ):
                found[proc.pid] = cmdline
        except psutil.Error:
            continue
    # A process pool's forked workers carry pytest's own command line; left alive they would
    # also hang the interpreter's exit (multiprocessing joins its children at exit).
    for child in multiprocessing.active_children():
        if child.pid is not None:
            found[child.pid] = f"{child.name} (a multiprocessing child of the test process)"
    return [f"{pid} {cmd}" for pid, cmd in sorted(found.items())]


def processes_in(folder: Path) -> list[psutil.Process]:
    """Every live process whose working directory lies under `folder` (a project copy)."""
    folder = Path(folder).resolve()
    found = []
    for proc in psutil.process_iter(["pid", "cwd", "status"]):
        cwd = proc.info.get("cwd")
        if (
            proc.pid != os.getpid()
            and cwd
            and proc.info["status"] != psutil.STATUS_ZOMBIE
            and Path(cwd).is_relative_to(folder)
        ):
            found.append(proc)
    return found


def stop_processes_in(folder: Path, seconds: float = STOP_SECONDS) -> list[str]:
    """Stops what still runs in `folder` (a detached DVC queue worker, say): SIGTERM, then
    SIGKILL after `seconds`. Returns what it had to stop, as 'pid command'."""
    stopped = []
    procs = processes_in(folder)
    for proc in procs:
        try:
            stopped.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=seconds)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=seconds)
    return stopped


def _helper(cmdline: list[str] | None) -> bool:
    """multiprocessing's own forkserver / resource tracker: they live as long as this process."""
    return any("from multiprocessing." in part for part in cmdline or [])


def kill_leftovers(temp_root: Path | None = None) -> None:
    """SIGKILL to every leftover (after the check has named them: the suite still fails)."""
    for entry in leftovers(temp_root):
        pid = int(entry.split(" ", 1)[0])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
