"""CIFAR-10 in, uint8 splits and their pixel statistics out: the fetch and preprocess stages as a library.

    dataset, provenance = fetch("auto", timeout=10)   # sources.py: resolve, download, verify
    save_raw(dataset, provenance, layout.RAW_ARRAYS, layout.PROVENANCE)
    write_processed(load_raw(layout.RAW_ARRAYS), provenance, val_size=1000, ...)
    stats = PixelStats.load(layout.STATS)              # training split's per-pixel mean, std

Every bad input raises DataError, whose message names the file and what was expected.
"""

from .cifar import CIFAR10_CLASSES, RawDataset, load_provenance, load_raw, read_cifar10, save_raw
from .errors import DataError
from .preprocess import PixelStats, split_indices, write_processed
from .sources import MIRROR, OFFICIAL, MirrorFallbackWarning, Release, fetch

__all__ = [
    "CIFAR10_CLASSES",
    "DataError",
    "MIRROR",
    "MirrorFallbackWarning",
    "OFFICIAL",
    "PixelStats",
    "RawDataset",
    "Release",
    "fetch",
    "load_provenance",
    "load_raw",
    "read_cifar10",
    "save_raw",
    "split_indices",
    "write_processed",
]
