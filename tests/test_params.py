"""params.yaml is validated before any work: every bad value names its key and the allowed range."""

import copy

import pytest
import yaml

from scratchnet.study.params import ParamsError, ablation_entries, load_params, parse_entry, run_config, validate


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
    assert params["ablate"]["softmax"]["lr"] == [0.001, 0.01, 0.05]
    assert ablation_entries(params, "softmax")[:2] == ["baseline", "reg=0.001"]


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


def test_ablation_values_are_checked_like_the_key_they_change(raw):
    raw["ablate"]["twolayer"]["lr_decay"].append(1.2)
    with pytest.raises(ParamsError, match=r"ablate.twolayer.lr_decay: lr_decay must be a number in \(0, 1\]"):
        validate(raw)


@pytest.mark.parametrize(
    "sweep, values, says",
    [
        ("momentum", [0.9], "ablate.softmax.momentum sweeps an unknown key; keys of softmax:"),
        ("lr", 0.01, "ablate.softmax.lr is 0.01; expected a list of values"),
        ("lr", [], "ablate.softmax.lr is []; expected a list of values"),
        ("reg", [0.001, "1e-3"], "ablate.softmax.reg lists 0.001 twice"),
        ("batch_size", [64, 0.5], "ablate.softmax.batch_size: batch_size must be a whole number >= 1"),
    ],
)
def test_a_bad_sweep_is_refused_naming_it(raw, sweep, values, says):
    raw["ablate"]["softmax"][sweep] = values
    with pytest.raises(ParamsError) as err:
        validate(raw)
    assert says in str(err.value)


def test_a_swept_value_equal_to_the_baseline_is_the_baseline_run(raw):
    # `dvc exp run -S softmax.lr=0.01` makes the lr sweep's 0.01 the baseline: no error, no second run.
    raw["softmax"]["lr"] = 0.01
    entries = ablation_entries(validate(raw), "softmax")
    assert "lr=0.01" not in entries and "lr=0.005" not in entries
    assert entries.count("baseline") == 1 and "lr=0.001" in entries and "lr=0.05" in entries


def test_a_model_may_have_no_sweeps(raw):
    raw["ablate"]["twolayer"] = {}
    assert ablation_entries(validate(raw), "twolayer") == ["baseline"]


def test_an_entry_changes_one_key_of_the_baseline(raw):
    params = validate(raw)
    assert parse_entry(params, "softmax", "lr=1e-3") == ("lr", 0.001)
    assert parse_entry(params, "twolayer", "hidden_dim=50") == ("hidden_dim", 50)
    config = run_config(params, "twolayer", "hidden_dim=50", epochs=7)
    assert config == {**params["twolayer"], "hidden_dim": 50, "epochs": 7}
