"""The one writer of every output file: atomic, and CSVs that pandas and `dvc plots` read."""

import math

import pandas as pd

from scratchnet.files import write_csv


def test_csv_cells_are_written_unrounded_and_missing_values_left_empty(tmp_path):
    path = tmp_path / "out" / "table.csv"
    write_csv(
        path, [{"eps": 0.1, "rate": 1 / 3, "l2": math.nan}, {"eps": 2.0, "rate": None, "l2": 7}], ("eps", "rate", "l2")
    )
    assert path.read_text() == f"eps,rate,l2\n0.1,{1 / 3!r},\n2.0,,7\n"
    frame = pd.read_csv(path)
    assert frame["rate"].iloc[0] == 1 / 3 and frame["l2"].isna().iloc[0] and frame["rate"].isna().iloc[1]
