"""Figures of the study (matplotlib). Kept out of the numeric library: only this package,
report/ and tracking.py import plotting or tracking libraries.

Every function builds and returns a `matplotlib.figure.Figure` and writes nothing: the stage
that calls it decides where (and how atomically) the figure is saved. Figures are created
without pyplot, so no global state or interactive backend is involved.
"""

import io

from matplotlib.figure import Figure


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes. No timestamp is embedded, so equal figures give equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
