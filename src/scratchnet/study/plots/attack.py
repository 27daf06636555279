"""The attack's figures: the study's three images, and success rate vs epsilon.

The study showed the difference image as it is, an almost black picture (a few pixel values out
of 255). Here it is amplified so that the full range of the difference fills the display, and a
colour bar states what each shade means in pixel units, so the picture is both visible and
honest about how small the change is.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from scratchnet.attacks import NORMS, FoolingExample, SweepResult

MODE_STYLES = {"targeted": dict(marker="o", color="C3"), "untargeted": dict(marker="s", color="C0")}


def _image_figure(width: float = 3.2) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, 3.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    return fig, ax


def _pixels_figure(image: np.ndarray, title: str) -> Figure:
    """image: 32 × 32 × 3 pixels in [0, 255], in any shape; shown as they are, one screen square per pixel."""
    fig, ax = _image_figure()
    ax.imshow(np.clip(image.reshape(32, 32, 3), 0, 255) / 255.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    return fig


def example_figures(example: FoolingExample, class_names: list[str], *, before: int | None = None) -> dict[str, Figure]:
    """{"original", "adversarial", "difference"} figures of one fooling example.

    The original and adversarial images carry the predicted class and its probability; the
    difference is (adversarial - original) per channel, amplified so that +-max|difference|
    spans the whole grey range, with mid-grey = no change, and a colour bar in pixel units.
    before: how many correctly classified images of its class came before it, none fooled
    (attacks.ClassAttack.before); stated under the original when given.
    """
    names = [str(c) for c in class_names]
    preceded = (
        ""
        if before is None
        else "\nthe first correct one, and fooled"
        if before == 0
        else f"\nfirst fooled; {before} correct before it {'was' if before == 1 else 'were'} not"
    )
    steps = "1 step" if example.steps == 1 else f"{example.steps} steps"
    figures = {
        "original": _pixels_figure(
            example.original,
            f"test image {example.index}: {names[example.true_label]}\n"
            f"predicted {names[example.pred_before]} (p = {example.probs_before[example.pred_before]:.2f}){preceded}",
        ),
        "adversarial": _pixels_figure(
            example.adversarial,
            f"after {steps} toward {names[example.target_label]}\n"
            f"predicted {names[example.pred_after]} (p = {example.probs_after[example.pred_after]:.2f})",
        ),
    }

    fig, ax = _image_figure(width=4.0)
    difference = example.difference.reshape(32, 32, 3)
    limit = float(np.abs(difference).max())
    limit = limit if limit > 0 else 1.0  # an unchanged image: show flat mid-grey
    ax.imshow(0.5 + difference / (2 * limit), interpolation="nearest", vmin=0, vmax=1)
    amplification = 255.0 / (2 * limit)  # display range [0, 1] now spans 2 * limit pixel units
    ax.set_title(
        f"difference, amplified ×{amplification:.0f}\nL2 = {example.l2:.1f}, L∞ = {example.linf:.2f} (pixels, 0-255)",
        fontsize=9,
    )
    bar = fig.colorbar(ScalarMappable(norm=Normalize(-limit, limit), cmap="gray"), ax=ax, shrink=0.8)
    bar.set_label("change per channel (pixel units)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    figures["difference"] = fig
    return figures


def success_figure(sweeps: list[SweepResult], *, marks: dict[str, tuple[float, str]] | None = None) -> Figure:
    """Success rate vs epsilon: one panel per norm of `sweeps` (registered, as robustness_sweep
    checks), in the registry's order and titled from it, a line per mode (targeted, untargeted).

    An image counts as fooled at epsilon when some budget <= epsilon fooled it (SweepResult).
    `marks`: {norm: (epsilon, label)} draws a dotted reference line, e.g. the study's L2 = 91.
    The epsilon axis is linear up to the smallest non-zero epsilon and logarithmic beyond, which
    suits doubling grids that start at 0.
    """
    norms = [n for n in NORMS if n in {s.norm for s in sweeps}]
    fig = Figure(figsize=(4.2 * len(norms), 3.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(norms), squeeze=False)[0]
    for ax, norm in zip(axes, norms):
        of_norm = [s for s in sweeps if s.norm == norm]
        for sweep in of_norm:
            ax.plot(
                sweep.epsilons, sweep.success_rate, label=f"{sweep.mode} (n = {sweep.n})", **MODE_STYLES[sweep.mode]
            )
        grid = np.unique(np.concatenate([s.epsilons for s in of_norm]))
        if (grid > 0).any():
            ax.set_xscale("symlog", linthresh=grid[grid > 0].min())
            ax.set_xticks(grid, [f"{e:g}" for e in grid], fontsize=8)  # the grid, not powers of 10
            ax.xaxis.set_minor_locator(NullLocator())
        if marks and norm in marks:
            x, label = marks[norm]
            ax.axvline(x, color="0.4", linestyle=":", label=label)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(NORMS[norm].title, fontsize=10)
        ax.set_xlabel(f"epsilon ({NORMS[norm].label}, pixel units on 0-255)")
        ax.set_ylabel("fraction of images fooled")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")  # curves rise to the right: that corner is free
    return fig
