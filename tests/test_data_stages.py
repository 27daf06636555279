"""The fetch and preprocess stages as DVC runs them: `python pipeline/<stage>.py` in the project
root, reading params.yaml and writing the layout paths, all or nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from cifar_archives import make_tar, tar_of, tiny_dataset, write_image_folder

from scratchnet.data import CIFAR10_CLASSES, PixelStats, load_raw
from scratchnet.study import layout

ROOT = Path(__file__).resolve().parents[1]


def run_stage(project: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "pipeline" / f"{stage}.py")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def project_with_source(folder: Path, source: Path, **preprocess) -> Path:
    """A project folder whose params.yaml is the real one with data.source = `source`."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["source"] = str(source)
    params["preprocess"].update(preprocess)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stage-data")
    return make_tar(write_image_folder(root / "cifar-10-png", tiny_dataset()), root / "images.tar.gz", top=True)


def test_fetch_then_preprocess_write_every_layout_output(tmp_path, archive):
    project = project_with_source(tmp_path, archive, val_size=5, test_limit=8)

    fetched = run_stage(project, "fetch")
    assert fetched.returncode == 0, fetched.stderr
    processed = run_stage(project, "preprocess")
    assert processed.returncode == 0, processed.stderr

    raw = load_raw(project / layout.RAW_ARRAYS)
    provenance = json.loads((project / layout.PROVENANCE).read_text())
    assert raw.x_train.shape == (30, 32, 32, 3) and provenance["format"] == "image-folder"
    meta = json.loads((project / layout.PROCESSED_META).read_text())
    assert meta["provenance"] == provenance and meta["class_names"] == list(CIFAR10_CLASSES)
    for split, n in {"train": 25, "val": 5, "test": 8}.items():
        x_path, y_path = layout.split_arrays(split)
        assert np.load(project / x_path, mmap_mode="r").shape == (n, 3072)
        assert np.load(project / y_path).shape == (n,)
    assert PixelStats.load(project / layout.STATS).mean.shape == (3072,)
    assert "25 train, 5 val, 8 test" in processed.stdout


def test_a_failing_fetch_names_the_file_and_keeps_the_previous_outputs(tmp_path, archive):
    project = project_with_source(tmp_path, archive)
    assert run_stage(project, "fetch").returncode == 0
    before = {p.name: p.read_bytes() for p in (project / layout.DATA_RAW).iterdir()}

    bad = tar_of(tmp_path / "bad.tar.gz", {"train/cat/0.png": b"not a png"})
    project_with_source(project, bad)
    failed = run_stage(project, "fetch")

    assert failed.returncode != 0
    assert failed.stderr.startswith("fetch: ") and "bad.tar.gz" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert {p.name: p.read_bytes() for p in (project / layout.DATA_RAW).iterdir()} == before


def test_a_failing_first_fetch_writes_nothing(tmp_path):
    project = project_with_source(tmp_path / "project", tmp_path / "absent.tar.gz")
    failed = run_stage(project, "fetch")

    assert failed.returncode != 0 and "absent.tar.gz" in failed.stderr
    assert not (project / layout.RAW_ARRAYS).exists() and not (project / layout.PROVENANCE).exists()


def test_preprocess_without_fetch_says_to_run_fetch(tmp_path, archive):
    project = project_with_source(tmp_path, archive)
    failed = run_stage(project, "preprocess")
    assert failed.returncode != 0
    assert "data/raw/cifar10.npz" in failed.stderr and "run the fetch stage" in failed.stderr
    assert not (project / layout.DATA_PROCESSED).exists()
