"""A mistake a user can fix reads as one line, `<stage>: <message>`, exit status 1; a bug keeps
its traceback. Each stage runs as DVC runs it: `python pipeline/<stage>.py` in a project folder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
STAGES = sorted(p.stem for p in (PROJECT / "pipeline").glob("*.py"))


def stage(project: Path, name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SCRATCHNET_DEBUG", "DVC_ROOT")}
    return subprocess.run(
        [sys.executable, str(PROJECT / "pipeline" / f"{name}.py"), *args],
        cwd=project,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    """The failure's only stderr line, after checking it is a user error's exit."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def project(folder: Path, **sections) -> Path:
    """A project folder holding the real params.yaml with `sections` merged in (one level)."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def test_a_bad_param_names_its_key(tmp_path):
    failed = stage(project(tmp_path, twolayer={"batch_size": 0}), "train", "twolayer")
    line = one_line(failed)
    assert line.startswith("train: ") and "twolayer.batch_size" in line and ">= 1" in line


def test_a_sweep_of_an_unknown_key_names_the_params_key(tmp_path):
    # `ablate.softmax: [init=1.0]`-style mistakes: a swept key or value the model cannot take.
    line = one_line(stage(project(tmp_path, ablate={"softmax": {"momentum": [0.9]}}), "ablate"))
    assert line.startswith("ablate: ") and "ablate.softmax.momentum" in line and "keys of softmax" in line
    line = one_line(stage(project(tmp_path, ablate={"softmax": {"init": [1.0]}}), "ablate"))
    assert line.startswith("ablate: ") and "ablate.softmax.init" in line and "'gaussian', 'he'" in line


def test_an_unreachable_tracking_server_names_the_variable_and_the_fix(tmp_path):
    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    line = one_line(stage(project(tmp_path), "train", "softmax", MLFLOW_TRACKING_URI=uri))
    assert line.startswith(f"train: MLflow tracking server {uri} (from MLFLOW_TRACKING_URI) is unreachable")
    assert "unset MLFLOW_TRACKING_URI" in line


def test_a_corrupt_data_source_names_the_file(tmp_path):
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 8)
    line = one_line(stage(project(tmp_path, data={"source": "broken.tar.gz"}), "fetch"))
    assert line.startswith("fetch: broken.tar.gz: ") and "corrupt" in line


def test_a_missing_artifact_names_the_file_and_the_stage_to_run(tmp_path):
    folder = project(tmp_path)
    shutil.copytree(PROJECT / "reference", folder / "reference")  # in the repository, not an artifact
    line = one_line(stage(folder, "report"))
    assert line.startswith("report: results/") and "run its stage first" in line
    line = one_line(stage(project(tmp_path), "evaluate"))
    assert line == ("evaluate: results/ablate/softmax/baseline.json is missing; run its stage first (dvc repro)")


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_answers_a_wrong_command_line_with_its_usage(tmp_path, name):
    line = one_line(stage(project(tmp_path), name, "softmax", "baseline", "extra"))
    assert line.startswith(f"{name}: usage: python ") and f"pipeline/{name}.py" in line
    assert line.endswith("(got: softmax baseline extra)")


def test_a_model_name_that_is_not_a_model_is_a_usage_error(tmp_path):
    line = one_line(stage(project(tmp_path), "train", "resnet"))
    assert line.endswith("train.py softmax|twolayer|mlp (got: resnet)")  # the registry's models


def test_scratchnet_debug_shows_the_traceback_of_a_user_error(tmp_path):
    failed = stage(project(tmp_path, twolayer={"batch_size": 0}), "train", "twolayer", SCRATCHNET_DEBUG="1")
    assert failed.returncode == 1
    assert "Traceback (most recent call last)" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("scratchnet.study.params.ParamsError: ")


def test_an_unexpected_error_keeps_its_traceback(tmp_path):
    """A bug is not a user error: the one-line treatment would hide where it happened."""
    script = tmp_path / "buggy.py"
    script.write_text(
        "from scratchnet.study.cli import stage_main\n"
        "def main():\n"
        "    return {}['missing key']\n"
        "stage_main('buggy', main)\n"
    )
    failed = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "Traceback (most recent call last)" in failed.stderr
    assert "return {}['missing key']" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == "KeyError: 'missing key'"


def test_a_stage_that_succeeds_exits_0_and_says_nothing_on_stderr(tmp_path):
    done = stage(project(tmp_path, fit={"steps": 3}), "fit")
    assert done.returncode == 0 and done.stderr == ""
    assert (tmp_path / "results/fit/fit.json").is_file()
