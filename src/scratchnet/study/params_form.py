"""params.yaml in the form DVC's own writer keeps, so `dvc exp run -S key=value` changes one line.

`-S` rewrites params.yaml through DVC's YAML round trip (ruamel): it keeps comments, but writes
every list in block style (`- 0.01` lines), null as an empty value, and drops a blank line that
follows a list. A file already in that form is a fixed point: only the line set changes.

    python -m scratchnet.study.params_form [params.yaml]

Run it after editing params.yaml by hand if the edit added a flow-style list (`[0.001, 0.01]`);
tests/test_params_form.py checks it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def normalise(path: str | Path = "params.yaml") -> bool:
    """Rewrites `path` as DVC's `-S` writer would, values unchanged; True if it changed."""
    from dvc.utils.hydra import apply_overrides

    path = Path(path)
    before = path.read_text()
    for _ in range(5):  # until it settles: the first pass moves a blank line the second drops
        text = path.read_text()
        apply_overrides(path, [])  # what `dvc exp run -S` does, with nothing to set
        if path.read_text() == text:
            return path.read_text() != before
    raise RuntimeError(f"{path}: DVC's YAML writer does not settle on one form")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    print(f"{target}: {'rewritten in' if normalise(target) else 'already in'} the form DVC's writer keeps")
