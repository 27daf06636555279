"""params.yaml is kept in the form DVC's YAML writer writes, so `dvc exp run -S key=value`
changes the line it sets and nothing else (scratchnet.study.params_form)."""

import difflib
import shutil
from pathlib import Path

import pytest

from scratchnet.study.params_form import normalise

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
FIX = "python -m scratchnet.study.params_form"


@pytest.fixture
def params(tmp_path) -> Path:
    copy = tmp_path / "params.yaml"
    shutil.copy(PARAMS, copy)
    return copy


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_params_yaml_is_unchanged_by_dvcs_yaml_round_trip(params):
    from dvc.utils.serialize import modify_yaml

    with modify_yaml(params):
        pass
    assert params.read_text() == PARAMS.read_text(), f"run `{FIX}`"


def test_params_yaml_is_already_in_the_form_dvc_set_param_writes(params):
    assert not normalise(params), f"params.yaml is not in DVC's form: run `{FIX}`"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("twolayer.hidden_dim=200", ["-  hidden_dim: 100", "+  hidden_dim: 200"]),
        ("data.source=/nope", ["-  source: auto", "+  source: /nope"]),
        # a new sweep needs hydra's `+` (the key is not in the file yet): its key and its one value
        ("+ablate.twolayer.reg=[0.001]", ["+    reg:", "+    - 0.001"]),
    ],
)
def test_a_set_param_edit_changes_only_the_lines_it_sets(params, override, expected):
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` calls

    before = params.read_text()
    apply_overrides(params, [override])
    assert changed_lines(before, params.read_text()) == expected
