"""Figures of the study (matplotlib). Kept out of the numeric library: only this package,
report/ and tracking.py import plotting or tracking libraries.

Every function builds and returns a `matplotlib.figure.Figure` and writes nothing: the stage
that calls it decides where (and how atomically) the figure is saved. Figures are created
without pyplot, so no global state or interactive backend is involved.
"""

from scratchnet.plots.attack import example_figures, success_figure

__all__ = ["example_figures", "success_figure"]
