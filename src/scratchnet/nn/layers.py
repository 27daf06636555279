"""Layers as forward/backward pairs, in the style of cs231n's `layers.py`.

Every `*_forward` returns `(out, cache)`; the matching `*_backward` takes the upstream
gradient `dout` (same shape as `out`) and that cache, and returns the gradient of each input.
Arrays keep the dtype they come in with (float32 for training, float64 for gradient checks).
"""

from __future__ import annotations

import numpy as np

# What each forward hands its backward, named so a model can type the caches it keeps.
AffineCache = tuple[np.ndarray, np.ndarray]  # (x, w)
ScaledAffineCache = tuple[np.ndarray, np.ndarray, np.ndarray | float]  # (xm, w scaled, s)


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, AffineCache]:
    """out = x @ w + b.

    x: (N, D), w: (D, M), b: (M,)  ->  out: (N, M); cache: (x, w).
    """
    out = x @ w
    out += b  # in place: saves allocating a second (N, M) array
    return out, (x, w)


def affine_backward(
    dout: np.ndarray, cache: AffineCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
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


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """out = max(x, 0), elementwise.  x: any shape  ->  out: same shape; cache: out."""
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dx = dout where the unit was active (out > 0), else 0.

    The subgradient at exactly 0 is taken as 0. dout: same shape as the forward output.
    """
    out = cache
    return dout * (out > 0)  # bool mask: keeps dout's dtype


def scaled_affine_forward(
    xm: np.ndarray, w: np.ndarray, b: np.ndarray, scale: np.ndarray | float
) -> tuple[np.ndarray, ScaledAffineCache]:
    """out = ((x - m) * s) @ w + b for raw inputs x, without ever making the scaled copy of x.

    xm: (N + 1, D): the N input rows x (e.g. pixels in [0, 255], cast to w's dtype), then one
        row holding the shift m (D,); w: (D, M); b: (M,); scale s: a Python float (the same
        for every input) or (D,) one per input.  ->  out: (N, M); cache: (xm, w scaled, s).

    Why: scaling a batch before the GEMM costs two passes over it (subtract, multiply), as much
    memory traffic as the GEMM's own read of it. Instead, with W' = s W (row d of W times s_d),
        ((x - m) * s) @ W = x @ W' - m @ W',
    and one GEMM over xm gives both terms: its first N rows are x W', its last row m W'. A
    scalar s is applied to the (N, M) result instead of to W. Precision: x is not centred
    (pixels up to 255 where x - m is ~64), so in float32 the difference x W' - m W' keeps a
    few bits less than the centred product; tests/test_nn_normalize.py bounds the error.
    """
    ws = w * scale[:, None] if isinstance(scale, np.ndarray) else w  # s per input: folded into W's rows
    a = xm @ ws
    out = a[:-1]
    out -= a[-1]
    if not isinstance(scale, np.ndarray):
        out *= scale
    out += b
    return out, (xm, ws, scale)


def scaled_affine_backward(
    dout: np.ndarray, cache: ScaledAffineCache, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of scaled_affine_forward with respect to the raw x, w and b.

    dout: (N, M)  ->  dx: (N, D) (d/d raw x: the scaling's chain rule included), dw: (D, M),
    db: (M,). input_grad=False returns dx=None, as in affine_backward.
    The weight gradient ((x - m) * s)^T dout = s * (x^T dout - m^T (1^T dout)) is one GEMM of
    xm^T with g = [dout; -(1^T dout)] (N + 1, M): the shift's rank-one correction rides in
    its last row, as in the forward. A scalar s is folded into g (an (N, M) pass); a per-input
    s scales the rows of dw.
    """
    xm, ws, scale = cache
    g = np.empty((len(dout) + 1, dout.shape[1]), dout.dtype)
    if isinstance(scale, np.ndarray):
        g[:-1] = dout
    else:
        np.multiply(dout, scale, out=g[:-1])
    np.sum(g[:-1], axis=0, out=g[-1])
    np.negative(g[-1], out=g[-1])
    dw = xm.T @ g
    if isinstance(scale, np.ndarray):
        dw *= scale[:, None]
    dx = g[:-1] @ ws.T if input_grad else None  # dout W'^T, or s dout W^T
    db = dout.sum(axis=0)
    return dx, dw, db
