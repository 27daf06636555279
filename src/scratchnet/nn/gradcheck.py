"""Gradient checking by central finite differences, in float64.

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h)

has error O(h^2) from truncation plus about eps * |f| / h from rounding; in float64
(eps ~ 1e-16) with h = 1e-5 both are far below the 1e-7 relative error a correct analytic
gradient is held to. In float32 (eps ~ 1e-7) rounding alone would exceed it, hence float64 only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .models import Network


def _require_float64(x: np.ndarray) -> None:
    if x.dtype != np.float64:
        raise ValueError(f"gradient checks need float64 arrays (float32 rounding swamps the check); got {x.dtype}")


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """d f / d x for a scalar function f() that reads x.

    x: float64 array of any shape; each entry is nudged in place by +-h and restored.
    Returns an array shaped like x.
    """
    _require_float64(x)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_gradient_array(
    f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """d sum(f() * dout) / d x for an array-valued f() that reads x: what a layer's backward
    computes from an upstream gradient dout (shaped like f's output)."""
    _require_float64(x)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = np.array(f(), copy=True)
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = np.sum((f_plus - f_minus) * dout) / (2 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max_i |a_i - b_i| / max(|a_i| + |b_i|, 1e-8): the cs231n measure, elementwise, worst case.

    The 1e-8 floor keeps entries where both gradients are (near) zero from dividing by zero.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def check_model_gradients(
    model: Network, X: np.ndarray, y: np.ndarray, reg: float = 0.0, h: float = 1e-5
) -> dict[str, float]:
    """rel_error between model.loss's analytic gradient and central differences, per param.

    model: a float64 Network (build_model(..., dtype=np.float64)); X: (N, D), y: (N,).
    Returns {param name: max relative error}.
    """
    _require_float64(model.params["W1"])
    _, grads = model.loss(X, y, reg)
    return {
        name: rel_error(grads[name], numerical_gradient(lambda: model.loss(X, y, reg)[0], param, h))
        for name, param in model.params.items()
    }
