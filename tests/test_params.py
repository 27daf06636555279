"""params.yaml is validated before any work: every bad value names its key and the allowed range."""

import copy

import pytest
import yaml

from scratchnet.study.params import (
    REGISTRY,
    ParamsError,
    ablation_entries,
    load_params,
    model_config,
    model_schema,
    parse_entry,
    run_config,
    schema,
    validate,
)


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


# ------------------------------------------------------------------------------ the model registry

MLP = {
    "hidden_dims": [32, 16],
    "normalize": "mean",
    "lr": 0.05,
    "lr_decay": 0.9,
    "batch_size": 64,
    "reg": 0.0,
    "init": "he",
    "init_scale": 0.001,
}


def with_mlp(raw):
    raw["models"].append("mlp")
    raw["mlp"] = dict(MLP)
    raw["train"]["epochs"]["mlp"] = 3
    raw["ablate"]["epochs"]["mlp"] = 3
    raw["ablate"]["mlp"] = {"hidden_dims": [[64], [32, 32, 16]], "lr": [0.01]}
    return raw


def test_a_registered_model_runs_once_listed_in_models_with_its_sections(raw):
    params = validate(with_mlp(raw))
    assert params["models"] == ["softmax", "twolayer", "mlp"]
    assert ablation_entries(params, "mlp") == ["baseline", "hidden_dims=[64]", "hidden_dims=[32, 32, 16]", "lr=0.01"]
    assert parse_entry(params, "mlp", "hidden_dims=[64]") == ("hidden_dims", [64])
    assert model_config(params, "mlp") == {"kind": "mlp", "init": "he", "init_scale": 0.001, "hidden_dims": [32, 16]}


def test_a_model_section_is_checked_by_its_registry_entry(raw):
    raw = with_mlp(raw)
    raw["mlp"]["hidden_dims"] = [32, 0]
    with pytest.raises(
        ParamsError,
        match=r"mlp.hidden_dims is \[32, 0\]; expected a list of at least 1 items, each a whole number >= 1",
    ):
        validate(raw)


def test_a_model_not_listed_in_models_has_no_section(raw):
    raw["mlp"] = dict(MLP)
    with pytest.raises(ParamsError, match="unknown key mlp"):
        validate(raw)
    with pytest.raises(ParamsError, match=r"mlp is not in models \(softmax, twolayer\)"):
        run_config(load_params("params.yaml"), "mlp", "baseline", epochs=1)  # `train.py mlp` before adding it
    raw = yaml.safe_load(open("params.yaml"))
    raw["models"] = ["softmax", "resnet"]
    with pytest.raises(
        ParamsError, match=r"models is \['softmax', 'resnet'\]; expected a list .* one of 'mlp', 'softmax', 'twolayer'"
    ):
        validate(raw)


def test_allowed_values_come_from_the_code_that_defines_them(raw):
    from scratchnet.attacks import NORMS, TARGET_RULES
    from scratchnet.nn.init import INITS
    from scratchnet.nn.normalize import METHODS

    section = model_schema("softmax")
    assert f"one of {', '.join(repr(m) for m in sorted(METHODS))}" == section["normalize"].describe
    assert f"one of {', '.join(repr(i) for i in sorted(INITS))}" == section["init"].describe
    attack = schema(["softmax"])["attack"]
    assert set(attack["sweep"]["epsilons"]) == set(NORMS)
    assert attack["sweep"]["target"].describe == f"one of {', '.join(repr(t) for t in sorted(TARGET_RULES))}"


def test_the_sweeps_cost_model_asks_the_registry():
    from scratchnet.study.runs import RunSpec
    from scratchnet.study.sweep import cost

    config = {"epochs": 1, "batch_size": 1000}
    assert cost(RunSpec("softmax", "baseline", config, 0), 1) == 10 + 40 + 1
    assert cost(RunSpec("twolayer", "baseline", {**config, "hidden_dim": 100}, 0), 1) == 110 + 40 + 1
    wide = cost(RunSpec("mlp", "baseline", {**config, "hidden_dims": [100, 100]}, 0), 1)
    assert wide == pytest.approx(100 + (100 * 100 + 100 * 10) / 3072 + 40 + 1)
    assert set(REGISTRY) >= {"softmax", "twolayer", "mlp"}
