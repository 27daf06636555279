"""The report's figures, from plain numbers (no pyplot, no files). Accuracies are fractions of 1."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

OURS = dict(color="C0", marker="o", capsize=4, linestyle="-")
STUDY = dict(color="C3", marker="x", linestyle="none", markersize=8, markeredgewidth=2)


def _label(ax: Axes, xlabel: str, ylabel: str, title: str, **legend) -> None:
    """What every panel here ends with: axis labels, title, a light grid, the legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(**legend)


def fit_figure(
    losses: Sequence[float],
    optimum_loss: float,
    lr: float,
    x: Sequence[float],
    y: Sequence[float],
    fitted: Sequence[float],
    optimum_fitted: Sequence[float],
) -> Figure:
    """Part 1. Left: loss per gradient-descent step (losses[0] is before the first step) against
    the closed-form optimum. Right: the points (x, y), the gradient-descent fit and the closed-form
    fit at x (fitting.run_fit)."""
    fig = Figure(figsize=(10, 3.8), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(range(len(losses)), losses, color="C0", label="gradient descent")
    left.axhline(optimum_loss, color="C3", linestyle="--", label=f"closed-form optimum ({optimum_loss:.4g})")
    finite = [v for v in losses if math.isfinite(v)]
    if finite and min(finite + [optimum_loss]) > 0:
        left.set_yscale("log")  # the early drop spans orders of magnitude
    _label(left, "step", "loss", f"Loss during gradient descent, lr = {lr:g}")

    order = sorted(range(len(x)), key=lambda i: x[i])
    xs = [x[i] for i in order]
    right.scatter(x, y, s=8, color="0.6", label="data")
    right.plot(xs, [fitted[i] for i in order], color="C0", label=f"gradient descent (lr = {lr:g})")
    right.plot(xs, [optimum_fitted[i] for i in order], color="C3", linestyle="--", label="closed form")
    _label(right, "x", "y", "Fitted curves")
    return fig


def curve_figure(epochs: Sequence[float], train_acc: Sequence[float], val_acc: Sequence[float], title: str) -> Figure:
    """Train and validation accuracy after each epoch."""
    fig = Figure(figsize=(6, 3.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, train_acc, color="C0", marker=".", label="train")
    ax.plot(epochs, val_acc, color="C1", marker=".", label="validation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _label(ax, "epoch", "accuracy", title)
    return fig


def x_scale(values: Sequence[float]) -> tuple[str, float | None]:
    """("log", None) when positive values span a decade or more; ("symlog", smallest positive)
    when they also include 0 (a reg sweep); else ("linear", None)."""
    positive = [v for v in values if v > 0]
    if len(positive) < 2 or max(positive) / min(positive) < 10 or any(v < 0 for v in values):
        return "linear", None
    if len(positive) == len(values):
        return "log", None
    return "symlog", min(positive)


def sweep_figure(param: str, values: Sequence, means, stds, **options) -> Figure:
    """Test accuracy against the swept value: sweep_axes on a figure of its own."""
    fig = Figure(figsize=(6, 3.8), dpi=100, layout="constrained")
    sweep_axes(fig.add_subplot(), param, values, means, stds, **options)
    return fig


def robustness_figure(
    param: str,
    values: Sequence,
    accuracy: tuple[Sequence[float | None], Sequence[float | None]],
    fooled: tuple[Sequence[float | None], Sequence[float | None]],
    *,
    title: str,
    budget: float,
    baseline=None,
) -> Figure:
    """Side by side against the swept value: test accuracy and the targeted attack's success
    at `budget` (pixel units), each (means, stds) over seeds."""
    fig = Figure(figsize=(10, 3.8), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    sweep_axes(left, param, values, *accuracy, title="test accuracy", baseline=baseline)
    sweep_axes(
        right,
        param,
        values,
        *fooled,
        title=f"targeted attack success at budget {budget:g}",
        baseline=baseline,
        ylabel="targeted success (lower: harder to fool)",
        color="C2",
    )
    fig.suptitle(title)
    return fig


def sweep_axes(
    ax,
    param: str,
    values: Sequence,
    means: Sequence[float | None],
    stds: Sequence[float | None],
    *,
    title: str,
    baseline=None,
    study: dict | None = None,
    ylabel: str = "test accuracy",
    color: str = "C0",
) -> None:
    """Draws a number's mean ± std (error bars) against the swept value on `ax`.

    values: numbers (plotted on a numeric axis, log when they span decades) or labels
    (categorical). means/stds: None where every seed diverged (marked on the axis). study: {value:
    accuracy} of the study's table, drawn as crosses. baseline: the baseline's value, marked.
    """
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric:  # labels, or lists (an MLP's hidden sizes): drawn by their text
        values, baseline = [str(v) for v in values], None if baseline is None else str(baseline)
        study = study and {str(v): a for v, a in study.items()}
    position = {v: (float(v) if numeric else i) for i, v in enumerate(values)}

    shown = [(v, m, s or 0.0) for v, m, s in zip(values, means, stds) if m is not None and math.isfinite(m)]
    if shown:
        ax.errorbar(
            [position[v] for v, _, _ in shown],
            [m for _, m, _ in shown],
            yerr=[s for _, _, s in shown],
            label="ours: mean ± std over seeds",
            **{**OURS, "color": color},
        )
    if study:
        points = [(v, a) for v, a in study.items() if v in position or numeric]
        if points:
            ax.plot(
                [position.get(v, v) for v, _ in points], [a for _, a in points], label="study (one run each)", **STUDY
            )
    diverged = [v for v, m in zip(values, means) if m is None or not math.isfinite(m)]
    if diverged:  # no accuracy to plot: mark where, so a gap is not read as "not run"
        ax.plot(
            [position[v] for v in diverged],
            [0.02] * len(diverged),
            "v",
            color="black",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="every seed diverged",
        )
    if baseline is not None and baseline in position:
        ax.axvline(
            position[baseline],
            color="0.5",
            linestyle=":",
            label=f"baseline ({param} = {baseline:g})" if numeric else "baseline",
        )

    if numeric:
        all_x = list(position.values()) + ([float(v) for v in study] if study else [])
        scale, linthresh = x_scale(all_x)
        if scale == "log":
            ax.set_xscale("log")
        elif scale == "symlog":
            assert linthresh is not None  # symlog comes with its smallest positive value
            ax.set_xscale("symlog", linthresh=linthresh)
            # symlog pads with a whole empty negative decade; keep 0 near the left edge instead
            ax.set_xlim(-0.3 * linthresh, 1.5 * max(all_x))
        ax.set_xticks(sorted(set(all_x)))
        ax.set_xticklabels([f"{v:g}" for v in sorted(set(all_x))])
        ax.minorticks_off()
    else:
        ax.set_xticks(list(position.values()))
        ax.set_xticklabels([str(v) for v in values])
    _label(ax, param, ylabel, title, fontsize=8)


def reproduction_figure(
    study: Sequence[float],
    ours: Sequence[float],
    stds: Sequence[float],
    groups: Sequence[str],
    beyond_noise: Sequence[bool],
) -> Figure:
    """Ours against the study, one point per entry of the study's tables: x the study's test
    accuracy, y our mean ± std over seeds (fractions of 1), coloured by `groups` (the model);
    entries beyond noise hollow. The diagonal is perfect agreement."""
    fig = Figure(figsize=(5.2, 4.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for i, group in enumerate(dict.fromkeys(groups)):
        idx = [k for k, g in enumerate(groups) if g == group]
        for hollow in (False, True):
            pick = [k for k in idx if bool(beyond_noise[k]) == hollow]
            if pick:
                ax.errorbar(
                    [study[k] for k in pick],
                    [ours[k] for k in pick],
                    yerr=[stds[k] for k in pick],
                    linestyle="none",
                    marker="o",
                    color=f"C{i}",
                    capsize=3,
                    markerfacecolor="none" if hollow else f"C{i}",
                    label=f"{group}" + (" (beyond noise)" if hollow else ""),
                )
    values = [*study, *ours]
    if values:
        low, high = min(values), max(values)
        pad = 0.05 * (high - low or 0.01)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.5", linestyle="--", label="ours = study")
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    _label(
        ax,
        "study: test accuracy (one run)",
        "ours: test accuracy (mean ± std)",
        "Each ablation entry: ours vs the study",
        fontsize=8,
    )
    return fig
