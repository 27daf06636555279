"""Part 1 of the study: fitting a curve by gradient descent, checked against the closed form.

The problem. `num_points` inputs x ~ Uniform[-1, 1] (seeded), targets y = sin(pi x) + noise,
noise ~ N(0, noise^2). The model is a polynomial of degree `degree` written in the Legendre
basis, pred = Phi w + b with Phi[:, k-1] = P_k(x), k = 1..degree, and the bias b playing P_0.
It is the library's own affine layer, trained on the least-squares loss

    L(w, b) = 0.5 * sum_i (pred_i - y_i)^2        (a sum over points, not a mean)

by plain gradient descent from w = 0, b = 0 with the study's learning rate (1e-4). The
reference is the closed-form minimiser (np.linalg.lstsq), so the loss curve has a floor it
must approach, and the fitted curve has a target it must land on.

Why these choices. Gradient descent on a quadratic contracts the error along each eigenvector
of the Hessian A^T A (A = [1, Phi]) by (1 - lr * lambda) per step; it converges visibly in a
few hundred steps only if lr * lambda is neither tiny (no progress) nor above 2 (divergence)
for every eigenvalue. Legendre polynomials are nearly orthogonal on [-1, 1], so with
x uniform the eigenvalues are about N / (2k + 1), k = 0..degree: for N = 1000, degree 5 they
span ~91..1000, lr * lambda spans 0.009..0.1, and 500 steps shrink even the slowest component
of the error by ~e^-4.5 (its loss by ~e^-9). The same polynomials written as monomials
1, x, ..., x^5 have a smallest eigenvalue below 1: at lr = 1e-4 that component would barely
move in 500 steps, and the figure would show a curve stalling far from the optimum for
reasons of parametrisation, not of the method. A sum (not a mean) loss keeps the eigenvalues
proportional to N, which is what makes lr = 1e-4 a sensible step for a thousand points. The
target sin(pi x) is not a polynomial, so the optimum is a genuine best approximation with a
residual floor (noise plus approximation error), not an exact interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre

from .nn.layers import affine_backward, affine_forward
from .nn.losses import squared_error

TARGET = "sin(pi x)"


@dataclass
class FitProblem:
    x: np.ndarray  # (N,) inputs in [-1, 1], sorted ascending (so curves plot as lines)
    y: np.ndarray  # (N,) noisy targets
    target: np.ndarray  # (N,) noise-free sin(pi x)
    features: np.ndarray  # (N, degree): P_1(x) .. P_degree(x)


def legendre_features(x: np.ndarray, degree: int) -> np.ndarray:
    """x: (N,) in [-1, 1] -> (N, degree) with column k-1 = P_k(x), k = 1..degree (P_0 = 1 is the bias)."""
    return legendre.legvander(np.asarray(x, dtype=np.float64), degree)[:, 1:]


def make_problem(num_points: int, degree: int, noise: float, seed: int) -> FitProblem:
    """The seeded data set: x ~ U[-1, 1], y = sin(pi x) + N(0, noise^2), all float64."""
    if num_points < degree + 1:
        raise ValueError(
            f"fit: num_points ({num_points}) must be at least degree + 1 ({degree + 1}) "
            "for the least-squares optimum to be unique"
        )
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1.0, 1.0, num_points))
    target = np.sin(np.pi * x)
    y = target + noise * rng.standard_normal(num_points)
    return FitProblem(x, y, target, legendre_features(x, degree))


def closed_form(features: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The least-squares optimum (w*, b*) of 0.5 * ||features w + b - y||^2. features: (N, K), y: (N,)."""
    design = np.column_stack([features, np.ones(len(y))])
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    return solution[:-1], float(solution[-1])


def loss_and_grads(features: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray):
    """Forward and backward of the fit: (loss, dw (K, 1), db (1,)) for w: (K, 1), b: (1,)."""
    pred, cache = affine_forward(features, w, b)
    loss, dpred = squared_error(pred, y[:, None])
    _, dw, db = affine_backward(dpred, cache, input_grad=False)
    return loss, dw, db


def gradient_descent(features: np.ndarray, y: np.ndarray, lr: float, steps: int, snapshot_steps=()):
    """`steps` full-batch gradient steps from w = 0, b = 0.

    Returns (w (K,), b, losses, snapshots): losses has one entry per step plus the initial
    loss first (steps + 1 floats, fewer if the loss overflowed: then it stops there);
    snapshots maps each step in snapshot_steps to (w, b) as it was after that many steps.
    """
    w = np.zeros((features.shape[1], 1))
    b = np.zeros(1)
    losses, snapshots = [], {}
    for step in range(steps + 1):
        loss, dw, db = loss_and_grads(features, y, w, b)
        if not math.isfinite(loss):
            break
        losses.append(loss)
        if step in snapshot_steps:
            snapshots[step] = (w[:, 0].copy(), float(b[0]))
        if step < steps:
            w -= lr * dw
            b -= lr * db
    return w[:, 0], float(b[0]), losses, snapshots


def run_fit(lr: float, steps: int, num_points: int, degree: int, noise: float, seed: int) -> dict:
    """Runs part 1 end to end; returns the FIT_RESULT record (JSON-ready, plain Python types).

    Keys: lr, steps, losses (steps + 1 floats, initial first), optimum_loss, final_loss,
    problem {description, ...its params}, x, y, target, fitted (the gradient-descent curve at
    x), optimum_fitted (the closed-form curve), weights / optimum_weights ([b, w_1..w_K]),
    hessian_eigenvalues, lr_stability_limit (= 2 / largest eigenvalue), diverged,
    snapshots [{step, fitted}] (the curve part way through). No time: it is a DVC output.
    """
    problem = make_problem(num_points, degree, noise, seed)
    design = np.column_stack([np.ones(num_points), problem.features])
    eigenvalues = np.linalg.eigvalsh(design.T @ design)

    w_opt, b_opt = closed_form(problem.features, problem.y)
    optimum_fitted = problem.features @ w_opt + b_opt
    optimum_loss = squared_error(optimum_fitted, problem.y)[0]

    snapshot_steps = sorted({s for s in (0, 10, 30, 100, steps) if s <= steps})
    w, b, losses, snapshots = gradient_descent(problem.features, problem.y, lr, steps, snapshot_steps)
    fitted = problem.features @ w + b

    def rounded(values):  # JSON size: 1e-12 relative is far below anything a figure shows
        return [float(f"{v:.12g}") for v in np.asarray(values).ravel()]

    return {
        "lr": float(lr),
        "steps": int(steps),
        "losses": [float(v) for v in losses],
        "optimum_loss": float(optimum_loss),
        "final_loss": float(losses[-1]),
        "problem": {
            "description": (
                f"least squares: y = {TARGET} + N(0, {noise}^2) at {num_points} points x ~ U[-1, 1]; "
                f"degree-{degree} polynomial in the Legendre basis; "
                "loss = 0.5 * sum of squared residuals; gradient descent from zero"
            ),
            "target": TARGET,
            "basis": "legendre",
            "loss": "0.5 * sum((pred - y)^2)",
            "num_points": int(num_points),
            "degree": int(degree),
            "noise": float(noise),
            "seed": int(seed),
        },
        "x": rounded(problem.x),
        "y": rounded(problem.y),
        "target": rounded(problem.target),
        "fitted": rounded(fitted),
        "optimum_fitted": rounded(optimum_fitted),
        "weights": [b, *map(float, w)],
        "optimum_weights": [b_opt, *map(float, w_opt)],
        "hessian_eigenvalues": [float(v) for v in eigenvalues],
        "lr_stability_limit": float(2.0 / eigenvalues[-1]),
        "diverged": len(losses) < steps + 1,
        "snapshots": [
            {"step": s, "fitted": rounded(problem.features @ sw + sb)} for s, (sw, sb) in sorted(snapshots.items())
        ],
    }
