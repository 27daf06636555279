"""Stochastic gradient descent and its learning-rate schedule.

Plain SGD: theta <- theta - lr * gradient, one mini-batch at a time. The study's schedule:
the learning rate is constant within an epoch and multiplied by `lr_decay` between epochs,
so epoch k (1-based) runs at lr * lr_decay ** (k - 1).
"""

from __future__ import annotations

import numpy as np


def decayed_lr(lr: float, lr_decay: float, epoch: int) -> float:
    """The learning rate of 1-based `epoch`: lr * lr_decay ** (epoch - 1), as a Python float.

    Computed from the epoch number rather than by repeated multiplication, so it does not
    depend on how many epochs ran before (e.g. after a resume) and stays a plain float: a
    NumPy float64 scalar would silently upcast float32 updates to float64.
    """
    return float(lr) * float(lr_decay) ** (epoch - 1)


def sgd_step(params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
    """One SGD update, in place: params[k] -= lr * grads[k] for every k.

    lr: a Python float (decayed_lr), so float32 params stay float32. The gradients are
    scaled in place (they are the step's own arrays, used once), which saves allocating a
    second W-sized array per weight per step.
    """
    for name, param in params.items():
        step = grads[name]
        step *= lr
        param -= step
