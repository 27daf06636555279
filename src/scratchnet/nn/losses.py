"""Losses: each returns `(loss, gradient with respect to its first argument)`.

Numerical care lives here, once: the softmax is computed from logits shifted by their row
maximum (the log-sum-exp trick), so logits of +-1e4 give finite probabilities and a finite loss
in float32 instead of overflowing `exp` to inf.
"""

from __future__ import annotations

import numpy as np


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """log p[i, c] = s[i, c] - log sum_k exp s[i, k], stably.

    scores: (N, C) logits  ->  (N, C) log-probabilities, same dtype. Shifting each row by its
    maximum leaves the result unchanged mathematically and makes every exp() argument <= 0.
    """
    shifted: np.ndarray = scores - scores.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax(scores: np.ndarray) -> np.ndarray:
    """scores: (N, C) logits  ->  (N, C) probabilities; each row sums to 1."""
    probs: np.ndarray = np.exp(log_softmax(scores))
    return probs


def softmax_cross_entropy(scores: np.ndarray, y: np.ndarray, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Cross-entropy of softmax(scores) against integer labels.

    scores: (N, C) logits, y: (N,) ints in [0, C).
    reduction="mean": loss = -(1/N) sum_i log p[i, y_i]   (what training minimises);
    reduction="sum":  loss = -sum_i log p[i, y_i]         (each row of dscores is then example
                                                           i's own gradient, as attacks need).
    Returns (loss as a Python float, dscores (N, C) in the dtype of scores).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    n = scores.shape[0]
    rows = np.arange(n)
    log_probs = log_softmax(scores)
    loss = -float(log_probs[rows, y].sum(dtype=np.float64))
    dscores = np.exp(log_probs, out=log_probs)  # d loss_i / d s_i = p_i - onehot(y_i)
    dscores[rows, y] -= 1
    if reduction == "mean":
        loss /= n
        dscores /= n
    return loss, dscores


def l2_regularization(w: np.ndarray, reg: float) -> tuple[float, np.ndarray]:
    """The study's weight decay: loss = reg * 0.5 * sum(w**2), gradient = reg * w.

    Applied to weight matrices only, never to biases. w: any shape -> (float, same shape as w).
    """
    return 0.5 * reg * float(np.vdot(w, w)), reg * w


def squared_error(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Least squares: loss = 0.5 * sum((pred - target)**2), a sum (not a mean) over all entries.

    pred, target: same shape  ->  (loss as a Python float, dpred = pred - target).
    """
    diff = pred - target
    return 0.5 * float(np.vdot(diff, diff)), diff
