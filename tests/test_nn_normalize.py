"""Input scaling (issue 10): each model normalises its own mini-batches of uint8 pixels, the
same as normalising the whole array first, and carries its scaling through save and load.
Issue 26: the scaling is folded into the first layer's GEMM, equal to scaling first."""

import re
from pathlib import Path

import numpy as np
import pytest

from scratchnet.nn import Normalizer, build_model, load_model
from scratchnet.nn.gradcheck import numerical_gradient, rel_error
from scratchnet.nn.layers import affine_backward, affine_forward, scaled_affine_backward, scaled_affine_forward
from scratchnet.nn.losses import softmax_cross_entropy
from scratchnet.training import accuracy, train

D, C = 12, 3


def pixels(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, D)).astype(np.uint8), rng.integers(0, C, n)


def stats(seed=0):
    """Per-pixel statistics of the kind preprocess stores (float64, pixel units)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(100, 150, D), rng.uniform(40, 80, D)


def normalizer(method="mean_std"):
    return Normalizer(method, *stats())


def test_the_two_methods_are_the_documented_formulas():
    x, _ = pixels(5)
    mean, std = stats()
    np.testing.assert_allclose(normalizer("mean").forward(x, np.float64), (x - mean) / 255, rtol=1e-13)
    np.testing.assert_allclose(normalizer("mean_std").forward(x, np.float64), (x - mean) / std, rtol=1e-13)
    assert normalizer().forward(x).dtype == np.float32


def test_a_std_below_one_grey_level_is_floored():
    flat = Normalizer("mean_std", np.zeros(D), np.full(D, 1e-6))
    np.testing.assert_array_equal(flat.forward(np.full((1, D), 3, np.uint8), np.float64), 3.0)


def test_an_unknown_method_is_rejected_naming_the_choices():
    with pytest.raises(ValueError, match="normalize must be one of mean, mean_std; got 'zscore'"):
        Normalizer("zscore", *stats())


# float64: the folded first layer (nn.layers.scaled_affine_forward) sums in another order than
# scaling first, so equal to rounding; float32: the uncentred GEMM keeps a few bits less.
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_training_on_uint8_batches_equals_training_on_the_whole_array_normalised_first(dtype, tolerance):
    X, y = pixels(90)
    X_val, y_val = pixels(20, seed=1)
    norm = normalizer()
    config = {"kind": "twolayer", "hidden_dim": 8}
    per_batch = build_model(config, input_dim=D, num_classes=C, seed=0, dtype=dtype, normalizer=norm)
    up_front = build_model(config, input_dim=D, num_classes=C, seed=0, dtype=dtype)
    options = dict(epochs=3, lr=0.05, lr_decay=0.9, batch_size=16, reg=0.01, seed=0, progress=False)
    a = train(per_batch, X, y, X_val, y_val, **options)
    b = train(up_front, norm.forward(X, dtype), y, norm.forward(X_val, dtype), y_val, **options)
    for k in per_batch.params:
        np.testing.assert_allclose(per_batch.params[k], up_front.params[k], rtol=tolerance, atol=tolerance)
    for ra, rb in zip(a.history, b.history, strict=True):
        assert ra.keys() == rb.keys()
        np.testing.assert_allclose([ra[k] for k in ra], [rb[k] for k in rb], rtol=tolerance)
    assert accuracy(per_batch, X_val, y_val) == accuracy(up_front, norm.forward(X_val, dtype), y_val)


@pytest.mark.parametrize("kind", ["softmax", "twolayer"])
def test_the_input_gradient_is_in_pixel_units(kind):
    config = {"kind": kind, "hidden_dim": 5} if kind == "twolayer" else {"kind": kind}
    model = build_model(config, input_dim=D, num_classes=C, seed=1, dtype=np.float64, normalizer=normalizer())
    x, y = pixels(4)
    x = x.astype(np.float64)
    summed = lambda: softmax_cross_entropy(model.scores(x), y, reduction="sum")[0]  # noqa: E731
    # Pixels are ~100 and gradients ~1e-3 per pixel: a step of 1e-3 grey levels keeps the
    # rounding error of the differences well below the tolerance.
    assert rel_error(model.input_gradient(x, y), numerical_gradient(summed, x, h=1e-3)) < 1e-7


@pytest.mark.parametrize("method", ["mean", "mean_std"])
def test_a_model_saved_with_one_scaling_is_loaded_and_used_with_it(tmp_path, method):
    model = build_model({"kind": "softmax"}, input_dim=D, num_classes=C, seed=0, normalizer=normalizer(method))
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.normalizer == model.normalizer and loaded.normalizer.method == method
    x, _ = pixels(7)
    np.testing.assert_array_equal(loaded.scores(x), model.scores(x))
    other = "mean" if method == "mean_std" else "mean_std"
    unlike = build_model({"kind": "softmax"}, input_dim=D, num_classes=C, seed=0, normalizer=normalizer(other))
    assert not np.allclose(loaded.scores(x), unlike.scores(x))


def test_a_model_without_a_normalizer_saves_and_loads_without_one(tmp_path):
    model = build_model({"kind": "softmax"}, input_dim=D, num_classes=C, seed=0)
    model.save(tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").normalizer is None


def test_build_model_rejects_a_normalizer_of_another_size():
    with pytest.raises(ValueError, match="statistics for 12 inputs; input_dim is 7"):
        build_model({"kind": "softmax"}, input_dim=7, num_classes=C, normalizer=normalizer())


def test_normalizers_are_equal_only_when_method_mean_and_std_all_match():
    mean, std = stats()
    same = Normalizer("mean_std", mean.copy(), std.copy())
    assert normalizer("mean_std") == same
    assert normalizer("mean_std") != Normalizer("mean", mean, std)  # another method
    assert normalizer("mean_std") != Normalizer("mean_std", mean + 1, std)  # another mean
    assert normalizer("mean_std") != Normalizer("mean_std", mean, std + 1)  # another std
    assert normalizer("mean_std") != (mean, std)  # not a Normalizer at all


@pytest.mark.parametrize(
    "mean, std",
    [
        (np.zeros((2, D)), np.ones((2, D))),  # not one row of statistics
        (np.zeros(D), np.ones(D + 1)),  # std of another length
        (np.zeros(D), np.r_[np.ones(D - 1), np.nan]),  # a NaN std
        (np.r_[np.zeros(D - 1), np.inf], np.ones(D)),  # an infinite mean
    ],
)
def test_statistics_of_the_wrong_shape_or_not_finite_are_rejected_naming_the_shapes(mean, std):
    shapes = re.escape(f"got mean {mean.shape}, std {std.shape}")
    with pytest.raises(ValueError, match=r"finite \(D,\) arrays of one shape; " + shapes):
        Normalizer("mean_std", mean, std)


def test_loading_a_model_with_a_damaged_scaling_names_the_file_and_the_problem(tmp_path):
    path = tmp_path / "m.npz"
    build_model({"kind": "softmax"}, input_dim=D, num_classes=C, normalizer=normalizer()).save(path)
    with np.load(path) as archive:
        arrays = dict(archive)
    for change, message in [
        ({"__normalize__": np.array("zscore")}, "m.npz: missing or corrupt input normalizer: normalize must be"),
        (
            {"__input_mean__": np.zeros(D + 1), "__input_std__": np.ones(D + 1)},
            f"m.npz: the input normalizer has {D + 1} entries; W1 takes {D} inputs",
        ),
    ]:
        np.savez(path, **{**arrays, **change})
        with pytest.raises(ValueError, match=re.escape(message)):
            load_model(path)


# --- the scaling folded into the first layer (issue 26) ------------------------------------

OLD_MODELS = Path(__file__).parent / "data" / "models_996b591"


def with_shift_row(x, shift):
    return np.vstack([x, shift[None, :]])


def folded_and_explicit_layer(method, n=5, m=4, seed=0):
    """The folded layer's inputs and the explicit path's, float64: (xm, x', w, b, scale)."""
    norm = normalizer(method)
    x, _ = pixels(n, seed)
    shift, scale = norm.shift_and_scale(np.float64)
    rng = np.random.default_rng(seed + 1)
    w, b = rng.standard_normal((D, m)), rng.standard_normal(m)
    return with_shift_row(x.astype(np.float64), shift), norm.forward(x, np.float64), w, b, scale


@pytest.mark.parametrize("method", ["mean", "mean_std"])
def test_the_folded_layer_equals_scaling_first_then_affine_in_float64(method):
    xm, scaled, w, b, scale = folded_and_explicit_layer(method)
    out, cache = scaled_affine_forward(xm, w, b, scale)
    expected, expected_cache = affine_forward(scaled, w, b)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx, dw, db = scaled_affine_backward(dout, cache)
    dx_scaled, dw_expected, db_expected = affine_backward(dout, expected_cache)
    np.testing.assert_allclose(dw, dw_expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, db_expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, normalizer(method).backward(dx_scaled), rtol=1e-12, atol=1e-12)
    assert scaled_affine_backward(dout, cache, input_grad=False)[0] is None


@pytest.mark.parametrize("method", ["mean", "mean_std"])
def test_the_folded_layers_gradients_pass_a_float64_gradient_check(method):
    xm, _, w, b, scale = folded_and_explicit_layer(method)
    x = xm[:-1].copy()  # the pixels themselves, so dx is checked in pixel units
    dout = np.random.default_rng(3).standard_normal((len(x), w.shape[1]))
    f = lambda: float(np.vdot(scaled_affine_forward(with_shift_row(x, xm[-1]), w, b, scale)[0], dout))  # noqa: E731
    dx, dw, db = scaled_affine_backward(dout, scaled_affine_forward(xm, w, b, scale)[1])
    assert rel_error(dw, numerical_gradient(f, w)) < 1e-7
    assert rel_error(db, numerical_gradient(f, b)) < 1e-7
    assert rel_error(dx, numerical_gradient(f, x, h=1e-3)) < 1e-7


def networks(kind, method, dtype):
    """(folded: a network with a normalizer, plain: the same weights taking pre-scaled inputs)."""
    config = {"kind": kind, "hidden_dim": 6} if kind == "twolayer" else {"kind": kind}
    folded = build_model(config, input_dim=D, num_classes=C, seed=4, dtype=dtype, normalizer=normalizer(method))
    plain = build_model(config, input_dim=D, num_classes=C, seed=4, dtype=dtype)
    return folded, plain


@pytest.mark.parametrize("kind", ["softmax", "twolayer"])
@pytest.mark.parametrize("method", ["mean", "mean_std"])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_a_network_on_pixels_equals_the_same_network_on_explicitly_scaled_inputs(kind, method, dtype, tolerance):
    # float32's bound: the folded GEMM sums uncentred pixels (up to 255, where x - m is ~64);
    # measured on the trained baselines in bench/RESULTS.md ("Input scaling folded ...").
    folded, plain = networks(kind, method, dtype)
    x, y = pixels(40, seed=5)
    scaled = folded.normalizer.forward(x, dtype)
    scale = np.abs(plain.scores(scaled)).max()
    np.testing.assert_allclose(folded.scores(x), plain.scores(scaled), rtol=tolerance, atol=tolerance * scale)
    loss, grads = folded.loss(x, y, reg=0.1)
    loss_plain, grads_plain = plain.loss(scaled, y, reg=0.1)
    assert loss == pytest.approx(loss_plain, rel=tolerance)
    for k in grads:
        np.testing.assert_allclose(
            grads[k], grads_plain[k], rtol=tolerance, atol=tolerance * np.abs(grads_plain[k]).max()
        )
    # d loss / d pixels: the explicit path's input gradient times the scaling's Jacobian
    expected = folded.normalizer.backward(plain.input_gradient(scaled, y))
    np.testing.assert_allclose(
        folded.input_gradient(x, y), expected, rtol=tolerance, atol=tolerance * np.abs(expected).max()
    )


@pytest.mark.parametrize("method", ["mean", "mean_std"])
def test_the_networks_gradients_pass_a_float64_gradient_check_with_folded_scaling(method):
    folded, _ = networks("twolayer", method, np.float64)
    x, y = pixels(7, seed=6)
    _, grads = folded.loss(x, y, reg=0.05)
    for name, param in folded.params.items():
        numeric = numerical_gradient(lambda: folded.loss(x, y, reg=0.05)[0], param)
        assert rel_error(grads[name], numeric) < 1e-7, name


@pytest.mark.parametrize("name", ["softmax_mean_std", "twolayer_mean"])
def test_a_model_saved_by_the_code_before_the_fold_loads_and_predicts_the_same(name):
    # Saved by scratchnet at 996b591 (scaling each batch, then the first layer), with its scores.
    model = load_model(OLD_MODELS / f"{name}.npz")
    with np.load(OLD_MODELS / "expected_scores.npz") as expected:
        x, scores = expected["x"], expected[name]
    assert model.metadata == {"made_by": "scratchnet 996b591"}
    np.testing.assert_allclose(model.scores(x), scores, rtol=1e-5, atol=1e-5 * np.abs(scores).max())
    np.testing.assert_array_equal(model.predict(x), scores.argmax(axis=1))


def test_a_network_reuses_its_input_buffer_without_keeping_a_reference_in_what_it_returns():
    folded, _ = networks("twolayer", "mean", np.float32)
    x, y = pixels(9, seed=7)
    first = folded.scores(x).copy()
    kept = folded.scores(x)
    folded.scores(pixels(3, seed=8)[0])  # a smaller batch, then a larger one reallocates
    folded.scores(pixels(30, seed=9)[0])
    np.testing.assert_array_equal(kept, first)
