"""Models: exact gradients (float64 central differences, rel err < 1e-7), the reg convention,
input gradients for attacks, construction rules, and save/load without pickle."""

import json
import zipfile

import numpy as np
import pytest

from scratchnet.nn import build_model, load_model
from scratchnet.nn.gradcheck import check_model_gradients, numerical_gradient, rel_error
from scratchnet.nn.losses import softmax_cross_entropy

TOL = 1e-7
D, C = 8, 4
CONFIGS = {
    "softmax": {"kind": "softmax", "init": "gaussian", "init_scale": 0.5},
    "twolayer": {"kind": "twolayer", "hidden_dim": 7, "init": "he"},
    "mlp": {"kind": "mlp", "hidden_dims": [6, 5], "init": "he"},
}


def small_model(kind, seed=0, dtype=np.float64):
    model = build_model(CONFIGS[kind], input_dim=D, num_classes=C, seed=seed, dtype=dtype)
    rng = np.random.default_rng(100 + seed)
    for b in (v for k, v in model.params.items() if k.startswith("b")):
        b += 0.1 * rng.standard_normal(b.shape)  # nonzero biases, so their gradients are tested too
    return model


def batch(n=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, D)), rng.integers(0, C, n)


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CONFIGS)
@pytest.mark.parametrize("reg", [0.0, 0.1])
def test_loss_gradients_match_central_differences(kind, reg):
    X, y = batch()
    errors = check_model_gradients(small_model(kind), X, y, reg)
    assert set(errors) == set(small_model(kind).params)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("kind", CONFIGS)
def test_input_gradient_is_the_gradient_of_the_summed_per_example_losses(kind):
    model, (X, y) = small_model(kind), batch()
    summed_loss = lambda: softmax_cross_entropy(model.scores(X), y, reduction="sum")[0]  # noqa: E731
    assert rel_error(model.input_gradient(X, y), numerical_gradient(summed_loss, X)) < TOL


@pytest.mark.parametrize("kind", CONFIGS)
def test_targeted_input_gradient_matches_central_differences(kind):
    model, (X, _) = small_model(kind), batch()
    target = np.full(len(X), 2)
    toward_target = lambda: softmax_cross_entropy(model.scores(X), target, reduction="sum")[0]  # noqa: E731
    assert rel_error(model.targeted_input_gradient(X, 2), numerical_gradient(toward_target, X)) < TOL


def test_input_gradient_rows_are_each_examples_own_gradient():
    model, (X, y) = small_model("twolayer"), batch()
    together = model.input_gradient(X, y)
    for i in range(len(X)):
        np.testing.assert_allclose(together[i], model.input_gradient(X[i : i + 1], y[i : i + 1])[0], rtol=1e-12)


def test_descending_the_targeted_gradient_moves_inputs_toward_the_target():
    model, (X, _) = small_model("twolayer"), batch()
    before = model.probabilities(X)[:, 3]
    after = model.probabilities(X - 0.05 * model.targeted_input_gradient(X, 3))[:, 3]
    assert np.all(after > before)


def test_targeted_input_gradient_accepts_one_target_per_row():
    model, (X, _) = small_model("softmax"), batch()
    targets = np.arange(len(X)) % C
    np.testing.assert_array_equal(model.targeted_input_gradient(X, targets), model.input_gradient(X, targets))


# --- the loss -------------------------------------------------------------------------------


def test_reg_adds_half_reg_sum_of_squared_weights_and_ignores_biases():
    model, (X, y) = small_model("mlp"), batch()
    weights_sq = sum(np.sum(v**2) for k, v in model.params.items() if k.startswith("W"))
    assert model.loss(X, y, reg=0.3)[0] == pytest.approx(model.loss(X, y)[0] + 0.3 * 0.5 * weights_sq, rel=1e-12)
    _, g0 = model.loss(X, y)
    _, g1 = model.loss(X, y, reg=0.3)
    np.testing.assert_allclose(g1["W2"] - g0["W2"], 0.3 * model.params["W2"], atol=1e-12)
    np.testing.assert_array_equal(g1["b2"], g0["b2"])


def test_forward_backward_without_reg_is_the_plain_cross_entropy():
    model, (X, y) = small_model("mlp"), batch()
    loss, grads, scores = model.forward_backward(X, y)
    assert loss == pytest.approx(softmax_cross_entropy(model.scores(X), y)[0], rel=1e-12)
    np.testing.assert_array_equal(scores, model.scores(X))
    _, unregularised, _ = model.forward_backward(X, y, reg=0.0)
    assert all(np.array_equal(grads[k], unregularised[k]) for k in model.params)


def test_fresh_network_loss_is_near_log_of_class_count():
    model = build_model(
        {"kind": "twolayer", "hidden_dim": 50, "init": "gaussian", "init_scale": 1e-3},
        input_dim=D,
        num_classes=10,
        seed=0,
    )
    X, _ = batch(200)
    loss, _ = model.loss(X, np.arange(200) % 10)
    assert loss == pytest.approx(np.log(10), rel=1e-3)


def test_float32_model_computes_in_float32_even_for_float64_inputs():
    model, (X, y) = small_model("twolayer", dtype=np.float32), batch()
    loss, grads = model.loss(X, y, reg=0.1)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.scores(X).dtype == np.float32
    assert model.input_gradient(X, y).dtype == np.float32


def test_predict_in_batches_equals_argmax_of_scores():
    model, (X, _) = small_model("twolayer"), batch(37)
    predicted = model.predict(X, batch_size=8)
    assert predicted.dtype == np.int64
    np.testing.assert_array_equal(predicted, model.scores(X).argmax(axis=1))
    np.testing.assert_allclose(model.probabilities(X).sum(axis=1), 1.0)


# --- construction ---------------------------------------------------------------------------


def test_build_model_shapes_and_defaults():
    model = build_model({"kind": "twolayer", "hidden_dim": 100}, input_dim=3072, num_classes=10, seed=0)
    assert {k: v.shape for k, v in model.params.items()} == {
        "W1": (3072, 100),
        "b1": (100,),
        "W2": (100, 10),
        "b2": (10,),
    }
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert model.config == {"kind": "twolayer", "hidden_dim": 100, "init": "he", "init_scale": 1e-3}
    assert not model.params["b1"].any()
    softmax = build_model({"kind": "softmax"}, input_dim=3072, num_classes=10)
    assert sorted(softmax.params) == ["W1", "b1"]
    mlp = build_model({"kind": "mlp", "hidden_dims": [20, 30, 40]}, input_dim=5, num_classes=3)
    assert [mlp.params[f"W{i}"].shape for i in (1, 2, 3, 4)] == [(5, 20), (20, 30), (30, 40), (40, 3)]


def test_he_and_gaussian_initialisation_have_their_standard_deviations():
    he = build_model({"kind": "twolayer", "hidden_dim": 400, "init": "he"}, input_dim=3072, num_classes=10)
    assert he.params["W1"].std() == pytest.approx(np.sqrt(2 / 3072), rel=0.01)
    assert he.params["W2"].std() == pytest.approx(np.sqrt(2 / 400), rel=0.05)
    small = build_model({"kind": "softmax", "init": "gaussian", "init_scale": 1e-3}, input_dim=3072)
    assert small.params["W1"].std() == pytest.approx(1e-3, rel=0.01)


def test_same_seed_same_weights_different_seed_different_weights():
    config = {"kind": "twolayer", "hidden_dim": 10}
    a, b, c = (build_model(config, input_dim=20, seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["W1"], c.params["W1"])


def test_float64_model_holds_the_float32_models_numbers():
    config = {"kind": "twolayer", "hidden_dim": 10}
    f32 = build_model(config, input_dim=20, seed=0)
    f64 = build_model(config, input_dim=20, seed=0, dtype=np.float64)
    assert f64.dtype == np.float64
    np.testing.assert_array_equal(f64.params["W1"].astype(np.float32), f32.params["W1"])


@pytest.mark.parametrize(
    "config, message",
    [
        ({"kind": "cnn"}, "unknown model kind 'cnn'"),
        ({"kind": "softmax", "hidden_dim": 10}, "unknown key.*hidden_dim"),
        ({"kind": "twolayer", "hidden_dim": 10, "lr": 0.1}, "unknown key.*lr"),
        ({"kind": "twolayer"}, "needs hidden_dim"),
        ({"kind": "twolayer", "hidden_dim": 0}, "hidden_dim must be a whole number"),
        ({"kind": "mlp", "hidden_dims": 5}, "hidden_dims must be a list"),
        ({"kind": "softmax", "init": "xavier"}, "init must be one of he, gaussian"),
        ({"kind": "softmax", "init_scale": -1.0}, "init_scale must be a positive number"),
        ({"hidden_dim": 3}, "'kind'"),
    ],
)
def test_build_model_rejects_bad_configs_naming_the_problem(config, message):
    with pytest.raises(ValueError, match=message):
        build_model(config, input_dim=4, num_classes=2)


@pytest.mark.parametrize(
    "config, message",
    [
        ("softmax", r"must be a dict with a 'kind' \(softmax, twolayer, mlp\)"),
        ({"kind": "cnn"}, "expected one of softmax, twolayer, mlp"),
        (
            {"kind": "twolayer", "hidden_dim": 10, "lr": 0.1, "seed": 1},
            "unknown key\\(s\\) lr, seed in twolayer model config; allowed: hidden_dim, init, init_scale, kind",
        ),
        ({"kind": "mlp"}, "mlp model config needs hidden_dims"),
        ({"kind": "softmax", "init_scale": True}, "init_scale must be a positive number; got True"),
        ({"kind": "softmax", "init_scale": 0.0}, "init_scale must be a positive number; got 0.0"),
        ({"kind": "twolayer", "hidden_dim": True}, "hidden_dim must be a whole number >= 1; got True"),
        ({"kind": "mlp", "hidden_dims": [4, 0]}, "hidden_dims must be a whole number >= 1; got 0"),
    ],
)
def test_build_model_error_messages_name_the_choices_and_the_bad_value(config, message):
    with pytest.raises(ValueError, match=message):
        build_model(config, input_dim=4, num_classes=2)


@pytest.mark.parametrize(
    "name, value",
    [("input_dim", 0), ("input_dim", True), ("input_dim", 2.5), ("num_classes", 0), ("num_classes", False)],
)
def test_build_model_rejects_sizes_that_are_not_whole_numbers_from_one(name, value):
    sizes = {"input_dim": 4, "num_classes": 2, name: value}
    with pytest.raises(ValueError, match=f"{name} must be a whole number >= 1; got {value!r}"):
        build_model({"kind": "softmax"}, **sizes)


def test_layers_of_size_one_are_allowed():
    model = build_model({"kind": "mlp", "hidden_dims": [1, 1]}, input_dim=1, num_classes=1)
    assert [model.params[f"W{i}"].shape for i in (1, 2, 3)] == [(1, 1), (1, 1), (1, 1)]
    assert build_model({"kind": "twolayer", "hidden_dim": 1}, input_dim=1, num_classes=1).params["W1"].shape == (1, 1)


def test_build_model_defaults_to_cifar10_sizes_and_seed_0():
    model = build_model({"kind": "softmax"})
    assert model.params["W1"].shape == (3072, 10)
    np.testing.assert_array_equal(model.params["W1"], build_model({"kind": "softmax"}, seed=0).params["W1"])


def test_build_model_rejects_non_float_dtypes():
    with pytest.raises(ValueError, match="float32 or float64"):
        build_model({"kind": "softmax"}, input_dim=4, dtype=np.int32)


# --- save / load ----------------------------------------------------------------------------


def test_save_load_round_trip_keeps_params_config_and_metadata(tmp_path):
    model = build_model(
        {"kind": "mlp", "hidden_dims": [7, 5], "init": "gaussian", "init_scale": 0.01},
        input_dim=D,
        num_classes=C,
        seed=5,
    )
    path = tmp_path / "sub" / "model.npz"
    model.save(path, metadata={"epochs": 3, "lr": 0.1, "history": [{"val_acc": 0.5}]})
    for loaded in (load_model(path),):
        assert loaded.config == model.config
        assert loaded.metadata == {"epochs": 3, "lr": 0.1, "history": [{"val_acc": 0.5}]}
        assert sorted(loaded.params) == sorted(model.params)
        for k in model.params:
            np.testing.assert_array_equal(loaded.params[k], model.params[k])
            assert loaded.params[k].dtype == np.float32
        X, _ = batch()
        np.testing.assert_array_equal(loaded.scores(X), model.scores(X))
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]  # no temp file left behind


def test_saved_model_is_a_plain_npz_loadable_without_pickle(tmp_path):
    path = tmp_path / "m.npz"
    small_model("twolayer").save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert {"W1", "b1", "W2", "b2", "__config__", "__metadata__"} <= set(archive.files)
        assert json.loads(str(archive["__config__"]))["kind"] == "twolayer"
        assert all(archive[k].dtype != object for k in archive.files)


def test_save_rejects_metadata_that_is_not_json(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        small_model("softmax").save(tmp_path / "m.npz", metadata={"f": object()})
    assert not list(tmp_path.iterdir())


def test_loading_a_corrupt_or_foreign_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="bad.npz"):
        load_model(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, W1=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="foreign.npz.*not a scratchnet model"):
        load_model(foreign)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_model(tmp_path / "missing.npz")


def test_loading_rejects_params_that_do_not_fit_the_config(tmp_path):
    path = tmp_path / "m.npz"
    small_model("twolayer").save(path)
    with zipfile.ZipFile(path) as z:
        arrays = {name[:-4]: np.load(z.open(name)) for name in z.namelist()}
    arrays["W2"] = np.zeros((3, C))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="W2"):
        load_model(path)


def rewrite_saved(path, **changes):
    """Replaces arrays of a saved model file: the way a damaged or foreign file looks."""
    with zipfile.ZipFile(path) as z:
        arrays = {name[:-4]: np.load(z.open(name)) for name in z.namelist()}
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"b1": np.zeros(3)}, r"W1 \(8, 7\) / b1 \(3,\) do not fit layer sizes \[8, 7, 4\]"),
        ({"b2": np.zeros(C, np.float32)}, "params must share one dtype; W1 is float64, W2/b2 are float64/float32"),
        (
            {
                f"{p}{i}": np.zeros(s, np.int64)
                for p, i, s in [("W", 1, (D, 7)), ("b", 1, 7), ("W", 2, (7, C)), ("b", 2, C)]
            },
            "dtype must be float32 or float64; got int64",
        ),
        (
            {"W3": np.zeros((C, C))},
            r"params \['W1', 'W2', 'W3', 'b1', 'b2'\] do not match a twolayer model "
            r"\(\['W1', 'W2', 'b1', 'b2'\]\)",
        ),
        ({"__metadata__": np.array("[1, 2]")}, "model metadata must be a JSON object; got list"),
        ({"__metadata__": np.array("{not json")}, "missing or corrupt model config/metadata"),
        ({"__config__": np.array('{"kind": "cnn"}')}, "unknown model kind 'cnn'"),
    ],
)
def test_loading_names_the_file_and_what_does_not_fit(tmp_path, change, message):
    path = tmp_path / "m.npz"
    small_model("twolayer").save(path)
    rewrite_saved(path, **change)
    with pytest.raises(ValueError, match=f"m.npz: {message}"):
        load_model(path)
