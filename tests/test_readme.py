"""The README says what is true: its examples that need no study run as written, and what it
quotes (an error line, a prediction, the files its commands leave) matches the code and data.
The blocks that need the tiny study run in tests/test_newcomer_e2e.py."""

from __future__ import annotations

import copy
import subprocess
import tarfile

import pytest
import yaml
from readme_blocks import README, blocks

from scratchnet.data.cifar import CIFAR10_CLASSES
from scratchnet.study.layout import MIRROR
from scratchnet.study.params import ParamsError, load_params, validate

ROOT = README.parent


def test_every_readme_block_is_a_command_an_output_or_skipped_saying_why():
    found = blocks()
    assert {b.lang for b in found} <= {"shell", "python", "yaml"}
    assert all(b.why for b in found if b.marker == "skip")
    assert any(b.marker is None for b in found)


def test_the_librarys_example_runs_as_written():
    (example,) = [b for b in blocks() if b.lang == "python" and "build_model" in b.text]
    scope: dict = {}
    exec(compile(example.text, f"README.md:{example.line}", "exec"), scope)
    assert scope["loss"] > 0 and set(scope["grads"]) == set(scope["model"].params)


def test_the_params_example_is_a_valid_fragment_of_params_yaml():
    (example,) = [b for b in blocks() if b.lang == "yaml" and "models:" not in b.text]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for model, sweeps in yaml.safe_load(example.text)["ablate"].items():
        params["ablate"][model].update(sweeps)
    assert validate(params)["ablate"]["twolayer"]["reg"] == [0.001]


def test_the_mlp_example_added_to_params_yaml_validates():
    (example,) = [b for b in blocks() if b.lang == "yaml" and "models:" in b.text]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    fragment = yaml.safe_load(example.text)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            for sub, v in value.items():
                params[key][sub] = {**params[key][sub], **v} if isinstance(v, dict) and sub in params[key] else v
        else:
            params[key] = value
    checked = validate(params)
    assert checked["models"] == ["softmax", "twolayer", "mlp"]
    assert checked["ablate"]["mlp"]["hidden_dims"] == [[100], [400, 200], [200, 100, 50]]


def test_the_quoted_error_line_is_the_one_a_bad_batch_size_gives():
    (quoted,) = [b for b in blocks() if b.marker == "output" and "params:" in b.text]
    stage_line, dvc_line = quoted.text.strip().splitlines()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["twolayer"]["batch_size"] = 0
    with pytest.raises(ParamsError) as error:
        validate(params)
    assert stage_line == f"source: {error.value}"  # every stage checks all of params.yaml first
    assert dvc_line.startswith("ERROR: failed to reproduce 'source'")  # as tests/test_newcomer_e2e.py sees it


def test_a_batch_size_of_0_in_a_sweep_is_refused_naming_the_value():
    params = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    params["ablate"]["twolayer"]["batch_size"] = [256, 0]
    with pytest.raises(ParamsError, match=r"ablate\.twolayer\.batch_size: .*>= 1; got 0$"):
        validate(params)


def test_the_sample_prediction_names_the_bundled_datas_first_test_image():
    # The image-folder reader orders each split by (class, file name): the first test image is
    # the first file of the first class folder that the mirror's test/ holds.
    with tarfile.open(ROOT / MIRROR) as tar:
        first = min(
            (CIFAR10_CLASSES.index(parts[-2]), parts[-1])
            for parts in (m.name.split("/") for m in tar if m.isfile())
            if "test" in parts
        )
    label, name = first[0], CIFAR10_CLASSES[first[0]]
    text = README.read_text()
    assert f'"label": {label}, "class": "{name}"' in text
    assert text.count('"class": ') == text.count(f'"class": "{name}"') == 2
    assert f"first test image of the bundled data is an {name}" in text


@pytest.mark.parametrize("path", ["dvc_plots/index.html", ".dvc/plots/page.html", "request.json", "image.json"])
def test_what_the_readmes_commands_write_is_git_ignored(path):
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
    assert ignored.returncode == 0, f"{path} is not in .gitignore"


def test_the_params_the_readme_changes_exist():
    params = load_params(ROOT / "params.yaml")
    assert params["twolayer"]["hidden_dim"] != 200 and params["softmax"]["lr"] != 0.01
    assert "reg" not in params["ablate"]["twolayer"]  # so the README's new sweep needs its `+`
