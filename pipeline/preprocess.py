"""preprocess: split validation from train, write uint8 arrays and the training split's pixel statistics.

    python pipeline/preprocess.py     (from the project root, as `dvc repro` runs it)

Reads params `preprocess.*` and the fetch stage's outputs; writes layout.split_arrays(split)
for train, val and test, layout.STATS and layout.PROCESSED_META, all or none.
"""

import time

from scratchnet.data import load_provenance, load_raw, write_processed
from scratchnet.study import layout
from scratchnet.study.cli import stage_main
from scratchnet.study.params import load_params


def main() -> None:
    started = time.perf_counter()
    params = load_params()["preprocess"]  # validated: exactly write_processed's arguments
    meta = write_processed(
        load_raw(layout.RAW_ARRAYS),
        load_provenance(layout.PROVENANCE),
        **params,
        split_paths=layout.split_arrays,
        stats_path=layout.STATS,
        meta_path=layout.PROCESSED_META,
    )
    sizes = ", ".join(f"{sum(c.values())} {split}" for split, c in meta["counts"].items())
    print(f"preprocess: {sizes} -> {layout.DATA_PROCESSED} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    stage_main("preprocess", main)
