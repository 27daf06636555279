"""The one exception the data stages raise for bad input."""

from __future__ import annotations

from ..errors import UserError


class DataError(UserError, ValueError):
    """A data source, archive or array file is not what the study needs.

    The message names the file (or URL, or params key) and what was expected, e.g.
    ``data/x.tar.gz: member 'train/cat/7.png' is 28x28; expected 32x32 RGB``.
    """
