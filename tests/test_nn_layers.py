"""Layers and losses: analytic gradients agree with central differences (float64, rel err < 1e-7),
and the softmax is numerically stable."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scratchnet.nn.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from scratchnet.nn.init import weight_std
from scratchnet.nn.layers import affine_backward, affine_forward, relu_backward, relu_forward
from scratchnet.nn.losses import l2_regularization, log_softmax, softmax, softmax_cross_entropy, squared_error

TOL = 1e-7


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_affine_forward_is_x_times_w_plus_b():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    b = np.array([0.1, 0.2, 0.3])
    out, _ = affine_forward(x, w, b)
    np.testing.assert_allclose(out, [[2.1, 4.2, 1.3], [5.1, 8.2, 1.3]])


def test_affine_backward_matches_numerical_gradients(rng):
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((4, 3))
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    forward = lambda: affine_forward(x, w, b)[0]  # noqa: E731
    assert rel_error(dx, numerical_gradient_array(forward, x, dout)) < TOL
    assert rel_error(dw, numerical_gradient_array(forward, w, dout)) < TOL
    assert rel_error(db, numerical_gradient_array(forward, b, dout)) < TOL


def test_affine_backward_can_skip_the_input_gradient(rng):
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), np.zeros(3)
    dout = rng.standard_normal((4, 3))
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache, input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dw, affine_backward(dout, cache)[1])


def test_relu_forward_zeroes_negatives():
    out, _ = relu_forward(np.array([[-2.0, 0.0, 3.0]]))
    np.testing.assert_array_equal(out, [[0.0, 0.0, 3.0]])


def test_relu_backward_matches_numerical_gradient(rng):
    # entries at least 0.1 away from the kink at 0, where the derivative is undefined
    x = rng.choice([-1.0, 1.0], size=(5, 6)) * rng.uniform(0.1, 2.0, size=(5, 6))
    dout = rng.standard_normal((5, 6))
    _, cache = relu_forward(x)
    dx = relu_backward(dout, cache)
    assert rel_error(dx, numerical_gradient_array(lambda: relu_forward(x)[0], x, dout)) < TOL


def test_layers_keep_float32():
    x = np.ones((2, 3), np.float32)
    w, b = np.ones((3, 4), np.float32), np.zeros(4, np.float32)
    out, cache = affine_forward(x, w, b)
    r, rcache = relu_forward(out)
    grads = affine_backward(relu_backward(r, rcache), cache)
    assert all(a.dtype == np.float32 for a in (out, r, *grads))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_softmax_cross_entropy_gradient_matches_numerical(rng, reduction):
    scores, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    _, dscores = softmax_cross_entropy(scores, y, reduction)
    numerical = numerical_gradient(lambda: softmax_cross_entropy(scores, y, reduction)[0], scores)
    assert rel_error(dscores, numerical) < TOL


def test_softmax_cross_entropy_is_the_mean_negative_log_likelihood(rng):
    scores, y = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 0])
    probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    loss, _ = softmax_cross_entropy(scores, y)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(5), y])), rel=1e-12)
    assert softmax_cross_entropy(scores, y, "sum")[0] == pytest.approx(5 * loss, rel=1e-12)


def test_softmax_cross_entropy_rejects_an_unknown_reduction_naming_the_choices():
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum', got 'max'"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="max")


def test_uniform_scores_give_log_c_loss():
    loss, _ = softmax_cross_entropy(np.zeros((3, 10)), np.array([0, 5, 9]))
    assert loss == pytest.approx(np.log(10))


def test_softmax_cross_entropy_is_finite_for_logits_of_1e4_in_float32():
    scores = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=np.float32)
    loss_right, d_right = softmax_cross_entropy(scores, np.array([0, 1]))
    loss_wrong, d_wrong = softmax_cross_entropy(scores, np.array([1, 0]))
    assert loss_right == 0.0  # the correct class wins by 1e4: p = 1 exactly in float32
    assert loss_wrong == pytest.approx(2e4)  # -log p = 2e4, computed without exp overflow
    assert np.isfinite(d_right).all() and np.isfinite(d_wrong).all()
    assert d_right.dtype == np.float32


def test_softmax_rows_sum_to_one_even_for_huge_logits():
    probs = softmax(np.array([[1e4, 1e4 - 1.0, -1e4], [-3e4, -3e4, -3e4]], dtype=np.float32))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs[1], [1 / 3] * 3, rtol=1e-6)
    assert log_softmax(np.array([[1e4, 0.0]]))[0, 1] == pytest.approx(-1e4)


logits = arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(2, 12)), elements=st.floats(-1e4, 1e4, width=32))


@settings(max_examples=60, deadline=None)
@given(scores=logits, shift=st.floats(-1e3, 1e3, width=32))
def test_cross_entropy_is_finite_and_unchanged_by_shifting_a_row(scores, shift):
    y = np.arange(len(scores)) % scores.shape[1]
    loss, dscores = softmax_cross_entropy(scores, y)
    assert np.isfinite(loss) and loss >= 0 and np.isfinite(dscores).all()
    np.testing.assert_allclose(dscores.sum(axis=1), 0.0, atol=1e-5)  # p sums to 1, minus one-hot
    shifted, _ = softmax_cross_entropy(scores.astype(np.float64) + shift, y)
    assert shifted == pytest.approx(softmax_cross_entropy(scores.astype(np.float64), y)[0], rel=1e-9, abs=1e-9)


def test_l2_regularization_is_half_reg_sum_of_squares_with_matching_gradient(rng):
    w = rng.standard_normal((4, 3))
    penalty, dw = l2_regularization(w, 0.3)
    assert penalty == pytest.approx(0.3 * 0.5 * np.sum(w**2))
    assert rel_error(dw, numerical_gradient(lambda: l2_regularization(w, 0.3)[0], w)) < TOL


def test_squared_error_is_half_sum_of_squares_with_matching_gradient(rng):
    pred, target = rng.standard_normal((7, 1)), rng.standard_normal((7, 1))
    loss, dpred = squared_error(pred, target)
    assert loss == pytest.approx(0.5 * np.sum((pred - target) ** 2))
    assert rel_error(dpred, numerical_gradient(lambda: squared_error(pred, target)[0], pred)) < TOL


def test_gradient_checks_refuse_float32():
    with pytest.raises(ValueError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, np.float32))


def test_rel_error_detects_a_wrong_gradient():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.01])) > 1e-3


def test_an_unknown_initialisation_is_rejected_naming_the_choices():
    with pytest.raises(ValueError, match="init must be one of he, gaussian; got 'xavier'"):
        weight_std("xavier", fan_in=10, init_scale=1e-3)
