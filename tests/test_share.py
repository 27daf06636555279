"""The README's recipe for sharing the study: a real local-folder DVC remote between two git
clones of the tiny study. The first pushes after its run; the second pulls and has every
output, `dvc status` reports nothing but the always-rerun `source` stage, and `dvc repro`
trains nothing."""

from __future__ import annotations

import pytest
from tiny_study import dvc, run, stages_run

pytestmark = pytest.mark.e2e


def test_a_second_clone_pulls_every_output_from_the_remote_and_reproduces_nothing(pristine_study, clone, tmp_path):
    first, second, remote = clone(pristine_study.path, "first"), tmp_path / "second", tmp_path / "remote"
    run(dvc("remote", "add", "-d", "shared", str(remote)), first)
    run(["git", "add", "-A"], first)
    run(["git", "commit", "-q", "-m", "the study, run; DVC remote: shared"], first)
    run(dvc("push"), first)

    run(["git", "clone", "-q", str(first), str(second)], tmp_path)
    assert not (second / "results").exists()
    run(dvc("pull"), second)
    outputs = [
        "data/raw/cifar10.npz",
        "data/processed/X_train.npy",
        "models/twolayer.npz",
        "results/evaluate/ablation_summary.json",
        "report/report.html",
    ]
    assert [p for p in outputs if not (second / p).is_file()] == []
    for path in outputs:
        assert (second / path).read_bytes() == (first / path).read_bytes()

    status = run(dvc("status"), second).stdout
    changed = [line for line in status.splitlines() if line and not line.startswith((" ", "\t"))]
    assert changed in ([], ["source:"]), status  # source: always changed, by design
    again = run(dvc("repro"), second)
    assert stages_run(again.stdout) == set(), again.stdout
    assert run(dvc("status"), second).stdout == status
    assert run(["git", "status", "--porcelain"], second).stdout == ""
