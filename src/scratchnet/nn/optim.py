"""Stochastic gradient descent and its learning-rate schedule.

Plain SGD: theta <- theta - lr * gradient, one mini-batch at a time. The study's schedule:
the learning rate is constant within an epoch and multiplied by `lr_decay` between epochs,
so epoch k (1-based) runs at lr * lr_decay ** (k - 1).
"""

from __future__ import annotations

import numpy as np

from .blas import gemm_tn_update


def decayed_lr(lr: float, lr_decay: float, epoch: int) -> float:
    """The learning rate of 1-based `epoch`: lr * lr_decay ** (epoch - 1), as a Python float.

    Computed from the epoch number rather than by repeated multiplication, so it does not
    depend on how many epochs ran before (e.g. after a resume) and stays a plain float: a
    NumPy float64 scalar would silently upcast float32 updates to float64.
    """
    if epoch < 1:
        raise ValueError(f"epoch is 1-based; got {epoch}")
    return float(lr) * float(lr_decay) ** (epoch - 1)


def sgd_step(params: dict[str, np.ndarray], steps: dict[str, np.ndarray]) -> None:
    """One SGD update, in place: params[k] -= steps[k], where steps[k] = lr * gradient.

    The general form, for gradients from model.forward_backward(..., grad_scale=lr) (which
    scales the tiny output gradient instead of every weight gradient). The trainer uses the
    fused equivalent, Network.train_step with affine_sgd_step below, which never
    materialises the gradients.
    """
    for name, param in params.items():
        param -= steps[name]


def affine_sgd_step(w: np.ndarray, b: np.ndarray, x: np.ndarray, dout: np.ndarray,
                    weight_decay: float = 0.0) -> None:
    """One SGD step of one affine layer, fused with its weight gradient, in place:

        w <- (1 - weight_decay) * w - x.T @ dout        b <- b - dout.sum(axis=0)

    x: (N, D) the layer's input, dout: (N, M) the gradient of the loss with respect to its
    output, already multiplied by the learning rate; w: (D, M), b: (M,); weight_decay =
    lr * reg (the L2 term reg * 0.5 * sum(w**2) has gradient reg * w).

    The same step as sgd_step with affine_backward's gradients, but the GEMM that computes
    x.T @ dout adds it straight into w (BLAS beta = 1 - weight_decay; scratchnet.nn.blas): no
    (D, M) gradient array is written and read back, and w is streamed once instead of three
    times. On the study's two-layer net that is most of an epoch's non-GEMM time
    (bench/train_speed.py measures both paths).
    """
    gemm_tn_update(x, dout, w, alpha=-1.0, beta=1.0 - weight_decay)
    b -= dout.sum(axis=0)
