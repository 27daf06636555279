"""Layers as forward/backward pairs, in the style of cs231n's `layers.py`.

Every `*_forward` returns `(out, cache)`; the matching `*_backward` takes the upstream
gradient `dout` (same shape as `out`) and that cache, and returns the gradient of each input.
Arrays keep the dtype they come in with (float32 for training, float64 for gradient checks).
"""

from __future__ import annotations

import numpy as np


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    """out = x @ w + b.

    x: (N, D), w: (D, M), b: (M,)  ->  out: (N, M); cache: (x, w).
    """
    out = x @ w
    out += b  # in place: saves allocating a second (N, M) array
    return out, (x, w)


def affine_backward(dout: np.ndarray, cache, input_grad: bool = True):
    """Gradients of affine_forward.

    dout: (N, M)  ->  dx: (N, D), dw: (D, M), db: (M,).
    input_grad=False returns dx=None: a network's first layer needs no gradient with respect to
    its input during training, and skipping it saves a GEMM as large as the forward one.
    """
    x, w = cache
    dx = dout @ w.T if input_grad else None
    dw = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x: np.ndarray):
    """out = max(x, 0), elementwise.  x: any shape  ->  out: same shape; cache: out."""
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout: np.ndarray, cache):
    """dx = dout where the unit was active (out > 0), else 0.

    The subgradient at exactly 0 is taken as 0. dout: same shape as the forward output.
    """
    out = cache
    return dout * (out > 0)  # bool mask: keeps dout's dtype
