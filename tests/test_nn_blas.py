"""The fused SGD step: a GEMM added into the weights in place, equal to the NumPy update."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from scratchnet.nn import blas, build_model
from scratchnet.nn.optim import affine_sgd_step, sgd_step


def arrays(dtype, n=9, d=6, m=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((n, m)).astype(dtype),
            rng.standard_normal((d, m)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha,beta", [(-1.0, 1.0), (-0.3, 0.9), (2.0, 0.0)])
def test_gemm_tn_update_adds_the_product_into_c_in_place(dtype, alpha, beta):
    a, b, c = arrays(dtype)
    expected = beta * c.astype(np.float64) + alpha * (a.astype(np.float64).T @ b)
    target = c
    blas.gemm_tn_update(a, b, c, alpha, beta)
    assert c is target and c.dtype == dtype
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)


def test_the_numpy_fallback_gives_the_same_update():
    a, b, c = arrays(np.float32)
    fused, plain = c.copy(), c.copy()
    blas.gemm_tn_update(a, b, fused, -0.5, 0.99)
    with blas.numpy_only():
        assert blas.backend() == "numpy"
        blas.gemm_tn_update(a, b, plain, -0.5, 0.99)
    np.testing.assert_allclose(fused, plain, rtol=1e-6, atol=1e-6)


def test_non_contiguous_inputs_are_accepted():
    a, b, c = arrays(np.float64, n=10)
    expected = c - a[::2].T @ b[::2]
    blas.gemm_tn_update(a[::2], b[::2], c)
    np.testing.assert_allclose(c, expected, rtol=1e-12)


def test_mismatched_shapes_are_rejected():
    a, b, c = arrays(np.float32)
    with pytest.raises(ValueError, match="needs a \\(N, D\\), b \\(N, M\\), c \\(D, M\\)"):
        blas.gemm_tn_update(a, b, c.T.copy())


@pytest.mark.skipif(not any(p.get("internal_api") == "openblas" for p in threadpool_info()),
                    reason="NumPy here is not built on OpenBLAS")
def test_numpys_own_openblas_is_used():
    assert blas.backend() == "blas"


def test_affine_sgd_step_is_sgd_with_the_affine_gradients_and_weight_decay():
    x, dout, w = arrays(np.float64)
    b = np.arange(4.0)
    lr, reg = 0.1, 0.2
    expected_w = w - (x.T @ (lr * dout) + lr * reg * w)
    expected_b = b - (lr * dout).sum(axis=0)
    affine_sgd_step(w, b, x, lr * dout, weight_decay=lr * reg)
    np.testing.assert_allclose(w, expected_w, rtol=1e-12)
    np.testing.assert_allclose(b, expected_b, rtol=1e-12)


@pytest.mark.parametrize("config", [{"kind": "softmax"}, {"kind": "twolayer", "hidden_dim": 7},
                                    {"kind": "mlp", "hidden_dims": [6, 5]}])
@pytest.mark.parametrize("reg", [0.0, 0.1])
def test_train_step_is_forward_backward_then_sgd_step(config, reg):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((12, 8)), rng.integers(0, 4, 12)
    fused = build_model(config, input_dim=8, num_classes=4, seed=1, dtype=np.float64)
    plain = build_model(config, input_dim=8, num_classes=4, seed=1, dtype=np.float64)
    loss, scores = fused.train_step(X, y, lr=0.05, reg=reg)
    expected_loss, steps, expected_scores = plain.forward_backward(X, y, reg, grad_scale=0.05)
    sgd_step(plain.params, steps)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-12)
    for name in plain.params:
        np.testing.assert_allclose(fused.params[name], plain.params[name], rtol=1e-10, atol=1e-12)
