"""The tiny study: a copy of the project on a generated 10-class dataset, shrunk by params.yaml
to a few epochs and runs, and the helpers that build, run, copy and read it.

conftest.py builds and runs it once per session (`pristine_study`); a test that changes a
project works on its own copy (`study_copy`, made by `copy_study` below), so every test sees the
same pristine run whatever ran before it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def tiny_image_folder_archive(path: Path, train_per_class: int = 30, test_per_class: int = 8) -> None:
    """train/<class>/*.png and test/<class>/*.png under one top folder; each class a colour,
    so a network learns it in two epochs and the attack has correctly classified images."""
    rng = np.random.default_rng(0)
    colours = rng.integers(30, 225, size=(len(CLASSES), 3))
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            for label, name in enumerate(CLASSES):
                for i in range(count):
                    noise = rng.normal(0, 25, size=(32, 32, 3))
                    pixels = np.clip(colours[label] + noise, 0, 255).astype(np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(pixels).save(buf, format="PNG")
                    info = tarfile.TarInfo(f"tiny-cifar/{split}/{name}/{i:04d}.png")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)


class Replace(dict):
    """An override that replaces the mapping it lands on instead of merging into it."""


TINY = {
    "data": {"source": "data/tiny.tar.gz", "timeout": 1},
    "preprocess": {"val_size": 40},
    "fit": {"steps": 20},
    "softmax": {"batch_size": 32},
    "twolayer": {"hidden_dim": 16, "batch_size": 32, "lr": 0.01},
    "train": {"epochs": {"softmax": 2, "twolayer": 2}},
    "ablate": {
        "seeds": [0, 1],
        "epochs": {"softmax": 2, "twolayer": 2},
        "softmax": Replace({"reg": [0.01]}),
        # lr=1000 diverges: its runs go through every stage as diverged (issue 17)
        "twolayer": Replace({"hidden_dim": [8], "lr": [1000.0]}),
    },
    "attack": {"sweep": {"sample_size": 20, "steps": 3, "epsilons": {"linf": [0, 4, 16], "l2": [0, 200, 800]}}},
}


def merge(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, Replace):
            base[key] = dict(value)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def copy_project(dest: Path) -> None:
    """The repository's files (tracked and new, not ignored) into `dest`: a project never run."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=PROJECT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = PROJECT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


# Variables of the test's own environment that would change what a stage does: the store, the
# run cache, the executor, a DVC experiment's identity.
ISOLATED = (
    "MLFLOW_TRACKING_URI",
    "SCRATCHNET_CACHE",
    "SCRATCHNET_RETRAIN",
    "SCRATCHNET_EXECUTOR",
    "SCRATCHNET_WORKERS",
    "DASK_SCHEDULER_ADDRESS",
    "DVC_ROOT",
    "DVC_EXP_NAME",
)


def environment(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True, timeout: int = 1800):
    result = subprocess.run(cmd, cwd=cwd, env=env or environment(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def dvc(*args: str) -> list[str]:
    return [str(BIN / "dvc"), *args]


def stages_run(output: str) -> set[str]:
    """The stages that ran, apart from `source`: it runs every time (always_changed), hashing
    data.source's files in a second, so that fetch reruns when they change."""
    return set(re.findall(r"Running stage '([^']+)'", output)) - {"source"}


def set_params(project: Path, override: dict) -> None:
    path = project / "params.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), override), sort_keys=False))


def mlflow_runs(project: Path, store: Path | None = None):
    """(client, every run of the study's experiment) in the project's store (or `store`)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store or project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("scratchnet")
    assert experiment is not None, f"no study experiment in {client.tracking_uri}"
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def one_test_image_per_class(project: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (10, 32, 32, 3) uint8, labels (10,)): the first test image of each class. Not
    x_test[:n]: image folders are read class by class, so the first images are all airplanes
    and a model that always answered class 0 would agree on them."""
    raw = np.load(project / "data/raw/cifar10.npz")
    first = [int(np.flatnonzero(raw["y_test"] == c)[0]) for c in range(len(CLASSES))]
    return raw["x_test"][first], raw["y_test"][first]


def build_tiny_project(project: Path) -> Path:
    """A new tiny study in `project` (an empty folder), committed in its own git repository;
    nothing run yet."""
    copy_project(project)
    tiny_image_folder_archive(project / "data" / "tiny.tar.gz")
    set_params(project, TINY)
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "tiny study"], project)
    return project


# ------------------------------------------------------------------------------------ copying

# Files that are only ever replaced whole (never written in place), so a copy may share them
# with the original through a hard link: DVC's content-addressed cache (read-only files) and
# the run cache (entries written atomically, by rename).
SHARED = (".dvc/cache", ".scratchnet")


def copy_study(source: Path, dest: Path) -> Path:
    """A private copy of the project at `source` in `dest`: everything copied but the read-only
    caches (SHARED, hard-linked), and the MLflow store moved with it (its absolute paths point
    into the copy, so the copy's runs write their artifacts into its own mlruns/)."""
    source, dest = source.resolve(), dest.resolve()
    shared = [source / rel for rel in SHARED]

    def copy(src: str, dst: str) -> None:
        if any(Path(src).is_relative_to(root) for root in shared):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, dest, symlinks=True, copy_function=copy)
    relocate_store(dest / "mlflow.db", source, dest)
    return dest


def relocate_store(store: Path, old: Path, new: Path) -> None:
    """Rewrites every absolute path under `old` to `new` in a copied SQLite MLflow store
    (experiments' artifact locations, runs' artifact URIs, logged models' locations)."""
    if not store.exists():
        return
    with sqlite3.connect(store) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [
                row[1]
                for row in db.execute(f'PRAGMA table_info("{table}")')
                if row[2].upper().startswith(("VARCHAR", "TEXT", "CHAR"))
            ]
            for column in columns:
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = REPLACE("{column}", ?, ?) WHERE instr("{column}", ?) > 0',
                    (str(old), str(new), str(old)),
                )
    db.close()
