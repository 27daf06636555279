"""Fixtures shared by several test modules.

The tiny study (a copy of the project on a generated 10-class dataset, after the real `dvc
repro`) is built once per session: the pipeline's end-to-end tests, the browser tests and the
serving test all look at the same study rather than each running its own (~90 s each).
Its builders live with the tests that specify the pipeline (test_pipeline_e2e.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    from test_pipeline_e2e import TINY, copy_project, run, set_params, tiny_image_folder_archive

    project = tmp_path_factory.mktemp("study")
    copy_project(project)
    tiny_image_folder_archive(project / "data" / "tiny.tar.gz")
    set_params(project, TINY)
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "tiny study"], project)
    return project


@pytest.fixture(scope="session")
def first_repro(tiny_project):
    from test_pipeline_e2e import BIN, run

    return run([str(BIN / "dvc"), "repro"], tiny_project)
