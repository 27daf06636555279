"""Fixtures shared by several test modules, and the session's check that no process is left.

The tiny study (tests/tiny_study.py: a copy of the project on a generated 10-class dataset,
after the real `dvc repro`) is built and run once per session and is read-only from then on:

- `pristine_study` -> TinyStudy(path, repro): the run project and the first `dvc repro`'s output.
  `tiny_project` (its path) and `first_repro` (that output) are the same, by their older names.
  A test may read it (files, `dvc metrics/plots show`, MLflow) but never change it.
- `study_copy` -> Path: a private copy of the pristine run (tmp_path/study) for a test that
  edits params, reruns stages or logs runs; DVC's cache and the run cache are hard-linked, so
  rerunning a stage is as cheap as on the original and nothing is trained again by accident.
- `clone` -> clone(folder) -> Path: the same kind of private copy of any project folder (for a
  module-scoped synthetic project that a test changes, e.g. tests/test_report.py's `built`).

Any test passes alone, in any order (`make test` runs them in random order) and in parallel:
`make test` runs two pytest-xdist workers, which share one pristine study (the first worker to
ask builds it, the other waits for it) and each check their own processes at the end.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from processes import STARTED, kill_leftovers, leftovers, stop_all

_TEMP_ROOT: list[Path] = []  # the session's temporary root, for the leftover check


@dataclass(frozen=True)
class TinyStudy:
    path: Path
    repro: subprocess.CompletedProcess  # the first `dvc repro` (its stdout names what ran)


def _fingerprint(project: Path) -> str:
    """What a test that edits the pristine study would change: params, lock, results."""
    digest = hashlib.sha256()
    for rel in ("params.yaml", "dvc.lock"):
        digest.update((project / rel).read_bytes())
    for path in sorted((project / "results").rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(project).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def _built_once(root: Path) -> TinyStudy:
    """The tiny study in root/study, built and run by the first process to ask (an xdist
    worker, or pytest alone); a later one waits on the lock and reads the same run."""
    from tiny_study import build_tiny_project, dvc, run

    project, repro_file = root / "study", root / "study-repro.json"
    with open(root / "study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if not repro_file.exists():
            if project.exists():
                raise AssertionError(f"the tiny study's first build failed in another worker: {project}")
            project.mkdir()
            repro = run(dvc("repro"), build_tiny_project(project))
            repro_file.write_text(
                json.dumps(
                    {"args": repro.args, "returncode": repro.returncode, "stdout": repro.stdout, "stderr": repro.stderr}
                )
            )
    return TinyStudy(project, subprocess.CompletedProcess(**json.loads(repro_file.read_text())))


@pytest.fixture(scope="session")
def pristine_study(tmp_path_factory) -> Iterator[TinyStudy]:
    # under xdist each worker's temporary root is <session root>/popen-gwN: the study goes in
    # the session root, one for all workers
    root = tmp_path_factory.getbasetemp()
    study = _built_once(root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root)
    project = study.path
    before = _fingerprint(project)
    yield study
    assert _fingerprint(project) == before, "a test changed the pristine tiny study: use study_copy"


@pytest.fixture(scope="session")
def tiny_project(pristine_study) -> Path:
    return pristine_study.path


@pytest.fixture(scope="session")
def first_repro(pristine_study) -> subprocess.CompletedProcess:
    return pristine_study.repro


@pytest.fixture
def clone(tmp_path):
    """clone(folder, name='copy') -> a private copy of `folder` under tmp_path (read-only
    caches hard-linked, a local MLflow store moved with it)."""
    from tiny_study import copy_study

    def make(folder: Path, name: str = "copy") -> Path:
        return copy_study(folder, tmp_path / name)

    return make


@pytest.fixture
def study_copy(pristine_study, clone) -> Path:
    return clone(pristine_study.path, "study")


@pytest.fixture(scope="session", autouse=True)
def _session_temp_root(tmp_path_factory):
    _TEMP_ROOT.append(tmp_path_factory.getbasetemp().resolve())


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    # `timeout` or CI stopping the run with SIGTERM: unwind like Ctrl-C, so every `finally`
    # that stops a service runs; and whatever is still up at exit is stopped all the same.
    signal.signal(signal.SIGTERM, _interrupted)
    atexit.register(stop_all)


_WORKERS_LEFT: list[str] = []  # what the xdist workers found, reported by the controller


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """(xdist controller) A worker is done: keep what its own check found."""
    _WORKERS_LEFT.extend(getattr(node, "workeroutput", {}).get("leftovers", []))


def pytest_sessionfinish(session, exitstatus):
    """Fails the run if a process a test started is still alive (then kills it). An xdist
    worker checks its own processes and hands what it found to the controller, which fails."""
    left = leftovers(_TEMP_ROOT[0] if _TEMP_ROOT else None)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its exit status is not the run's
        workeroutput["leftovers"] = left
    left += _WORKERS_LEFT
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (
            "processes left running by the tests (killed now): \n  "
            + "\n  ".join(left)
            + (f"\n(groups started by tests/processes.py in this process: {len(STARTED)})" if STARTED else "")
        )
        if reporter is not None:
            reporter.write_sep("=", "LEFTOVER PROCESSES", red=True)
            reporter.write_line(message)
        else:
            print(message)
        kill_leftovers(_TEMP_ROOT[0] if _TEMP_ROOT else None)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
