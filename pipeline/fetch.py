"""fetch: resolve data.source to CIFAR-10 and write its uint8 arrays and provenance.

    python pipeline/fetch.py     (from the project root, as `dvc repro` runs it)

Reads params `data.source` and `data.timeout`; writes layout.RAW_ARRAYS and layout.PROVENANCE,
both or neither.
"""

import logging
import time
import warnings

from scratchnet.data import MirrorFallbackWarning, fetch, save_raw
from scratchnet.study import layout
from scratchnet.study.cli import stage_main
from scratchnet.study.params import load_params


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    params = load_params()["data"]
    # provenance.json holds what was read, not why: the fallback's reason (a network error's
    # text) and the time taken are printed here, never written to a DVC output.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MirrorFallbackWarning)
        dataset, provenance = fetch(params["source"], timeout=params["timeout"], downloads=layout.DOWNLOADS)
    save_raw(dataset, provenance, layout.RAW_ARRAYS, layout.PROVENANCE)
    print(
        f"fetch: {provenance['dataset']} ({provenance['format']}) from {provenance['location']}: "
        f"{len(dataset.y_train)} train, {len(dataset.y_test)} test images "
        f"-> {layout.RAW_ARRAYS} in {time.perf_counter() - started:.1f} s"
    )
    for warning in caught:
        if issubclass(warning.category, MirrorFallbackWarning):
            print(f"fetch: WARNING: {warning.message}")
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


if __name__ == "__main__":
    stage_main("fetch", main)
