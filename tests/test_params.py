"""params.yaml is validated before any work: every bad value names its key and the allowed range."""

import copy

import pytest
import yaml

from scratchnet.study.params import ParamsError, load_params, parse_entry, run_config, validate


@pytest.fixture
def raw():
    with open("params.yaml") as f:
        return yaml.safe_load(f)


def with_value(raw, dotted, value):
    changed = copy.deepcopy(raw)
    *parents, last = dotted.split(".")
    node = changed
    for key in parents:
        node = node[key]
    node[last] = value
    return changed


def test_the_shipped_params_are_valid():
    params = load_params("params.yaml")
    assert params["twolayer"]["hidden_dim"] == 100
    assert "baseline" in params["ablate"]["softmax"]


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("softmax.lr", -0.1, "softmax.lr is -0.1; expected a number in (0, inf]"),
        ("twolayer.batch_size", 0, "twolayer.batch_size is 0; expected a whole number >= 1"),
        ("softmax.lr_decay", 1.5, "softmax.lr_decay is 1.5; expected a number in (0, 1]"),
        ("softmax.lr_decay", 0, "softmax.lr_decay is 0"),
        ("twolayer.hidden_dim", 2.5, "twolayer.hidden_dim is 2.5; expected a whole number"),
        ("softmax.batch_size", True, "softmax.batch_size is True"),
        ("softmax.normalize", "zscore", "softmax.normalize is 'zscore'; expected one of 'mean', 'mean_std'"),
        ("twolayer.normalize", None, "twolayer.normalize is None; expected one of 'mean', 'mean_std'"),
        ("ablate.seeds", [], "ablate.seeds is []"),
        ("ablate.seeds", [0, 0], "no repeats"),
        ("attack.sweep.epsilons.l2", [-1.0], "attack.sweep.epsilons.l2 is [-1.0]"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key_and_the_range(raw, key, value, says):
    with pytest.raises(ParamsError, match=None) as err:
        validate(with_value(raw, key, value))
    assert says in str(err.value)


def test_an_unknown_key_is_refused_with_the_known_ones(raw):
    with pytest.raises(ParamsError, match=r"unknown key softmax\.learning_rate; known keys here: batch_size"):
        validate(with_value(raw, "softmax.learning_rate", 0.1))


def test_a_missing_key_is_refused(raw):
    del raw["twolayer"]["hidden_dim"]
    with pytest.raises(ParamsError, match=r"missing key twolayer\.hidden_dim"):
        validate(raw)


def test_ablation_entries_are_checked_like_the_key_they_change(raw):
    raw["ablate"]["twolayer"].append("lr_decay=1.2")
    with pytest.raises(ParamsError, match=r"ablate.twolayer entry 'lr_decay=1.2': lr_decay must be a number in \(0, 1\]"):
        validate(raw)


@pytest.mark.parametrize(
    "entry, says",
    [
        ("momentum=0.9", "changes unknown key 'momentum'"),
        ("lr", "must be 'baseline' or 'key=value'"),
        ("reg=0.0", "is the baseline value of softmax.reg"),
        ("reg=1e-3", "'reg=0.001' and 'reg=1e-3' are the same run"),
    ],
)
def test_a_bad_ablation_entry_is_refused(raw, entry, says):
    raw["ablate"]["softmax"].append(entry)
    with pytest.raises(ParamsError) as err:
        validate(raw)
    assert says in str(err.value)


def test_every_sweep_keeps_its_baseline_row(raw):
    raw["ablate"]["softmax"].remove("baseline")
    with pytest.raises(ParamsError, match="must include 'baseline'"):
        validate(raw)


def test_an_entry_changes_one_key_of_the_baseline(raw):
    params = validate(raw)
    assert parse_entry(params, "softmax", "lr=1e-3") == ("lr", 0.001)
    assert parse_entry(params, "twolayer", "hidden_dim=50") == ("hidden_dim", 50)
    config = run_config(params, "twolayer", "hidden_dim=50", epochs=7)
    assert config == {**params["twolayer"], "hidden_dim": 50, "epochs": 7}
