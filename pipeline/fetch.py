"""fetch: resolve data.source to CIFAR-10 and write its uint8 arrays and provenance.

    python pipeline/fetch.py     (from the project root, as `dvc repro` runs it)

Reads params `data.source` and `data.timeout`; writes layout.RAW_ARRAYS and layout.PROVENANCE,
both or neither.
"""

import logging

from scratchnet.study import layout
from scratchnet.data import fetch, save_raw
from scratchnet.study.cli import stage_main
from scratchnet.study.params import load_params


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()["data"]
    dataset, provenance = fetch(params["source"], timeout=params["timeout"], downloads=layout.DOWNLOADS)
    save_raw(dataset, provenance, layout.RAW_ARRAYS, layout.PROVENANCE)
    print(
        f"fetch: {provenance['dataset']} ({provenance['format']}) from {provenance['location']}: "
        f"{len(dataset.y_train)} train, {len(dataset.y_test)} test images "
        f"-> {layout.RAW_ARRAYS} in {provenance['seconds']:.1f} s"
    )
    if provenance["fell_back"]:
        print(f"fetch: WARNING: fell back to the bundled mirror because {provenance['reason']}")


if __name__ == "__main__":
    stage_main("fetch", main)
