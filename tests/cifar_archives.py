"""Tiny CIFAR-10s built in every packaging the fetch stage reads, for the data tests.

python release (pickled batches), binary release, image folders; in tar archives or folders,
with or without a top folder. Shared by test_data_formats, test_data_sources, test_data_stages.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from scratchnet.data import CIFAR10_CLASSES, RawDataset


def tiny_dataset(per_class_train: int = 3, per_class_test: int = 1, seed: int = 0) -> RawDataset:
    """Random-noise images (so any reordering of pixels or channels shows), sorted by label."""
    rng = np.random.default_rng(seed)

    def split(per_class: int):
        y = np.repeat(np.arange(10, dtype=np.int64), per_class)
        return rng.integers(0, 256, size=(len(y), 32, 32, 3), dtype=np.uint8), y

    (x_train, y_train), (x_test, y_test) = split(per_class_train), split(per_class_test)
    return RawDataset(x_train, y_train, x_test, y_test)


def chw_rows(x: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) HWC images -> (N, 3072) rows of R, G, B planes, as the releases store them."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), -1)


def _train_batches(ds: RawDataset):
    return list(zip(np.array_split(ds.x_train, 5), np.array_split(ds.y_train, 5)))


def write_python_release(folder: Path, ds: RawDataset) -> Path:
    folder.mkdir(parents=True)

    def dump(name, x, y):
        batch = {
            b"batch_label": name.encode(),
            b"labels": y.tolist(),
            b"data": chw_rows(x),
            b"filenames": [f"{i}.png".encode() for i in range(len(y))],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))

    for i, (x, y) in enumerate(_train_batches(ds), 1):
        dump(f"data_batch_{i}", x, y)
    dump("test_batch", ds.x_test, ds.y_test)
    meta = {b"label_names": [n.encode() for n in CIFAR10_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    (folder / "readme.html").write_text("<html>the release's readme</html>")
    return folder


def write_binary_release(folder: Path, ds: RawDataset) -> Path:
    folder.mkdir(parents=True)

    def dump(name, x, y):
        (folder / name).write_bytes(np.concatenate([y[:, None].astype(np.uint8), chw_rows(x)], 1).tobytes())

    for i, (x, y) in enumerate(_train_batches(ds), 1):
        dump(f"data_batch_{i}.bin", x, y)
    dump("test_batch.bin", ds.x_test, ds.y_test)
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return folder


def write_image_folder(folder: Path, ds: RawDataset, ext: str = "png") -> Path:
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        for i, (image, label) in enumerate(zip(x, y)):
            path = folder / split / CIFAR10_CLASSES[label] / f"{i:04d}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
    return folder


def make_tar(src: Path, archive: Path, *, top: bool, mode: str = "w:gz") -> Path:
    """Archives the folder `src`, as `src.name/...` if `top`, else its contents at the root."""
    with tarfile.open(archive, mode) as tar:
        if top:
            tar.add(src, arcname=src.name)
        else:
            for child in sorted(src.iterdir()):
                tar.add(child, arcname=child.name)
    return archive


def tar_of(archive: Path, members: dict[str, bytes]) -> Path:
    """A tar.gz holding exactly `members` (name -> contents)."""
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format="PNG")
    return out.getvalue()


def image_folder_members(ds: RawDataset) -> dict[str, bytes]:
    members = {}
    for split in ("train", "test"):
        for i, (image, label) in enumerate(zip(getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}"))):
            members[f"{split}/{CIFAR10_CLASSES[label]}/{i:04d}.png"] = png_bytes(image)
    return members


# --- hostile archives: members far larger than their format allows -----------------------------

_ZERO_CHUNK = 1 << 20
_GZIP_ZEROS = gzip.compress(bytes(_ZERO_CHUNK), compresslevel=9)  # ~1 KB


def zero_bomb_tar_gz(archive: Path, members: dict[str | tarfile.TarInfo, bytes | int]) -> Path:
    """A tar.gz holding `members` in order: name (or a TarInfo, for other member types) ->
    contents, or -> a size in bytes (a multiple of 1 MiB) of zeros. Built in constant memory
    and a few ms whatever the sizes: a gzip file may be several gzip streams back to back, so
    each MiB of zeros is the same ~1 KB stream written again. The archive is valid (every
    stream carries its CRC and length)."""
    with open(archive, "wb") as out:
        for name, contents in members.items():
            info = name if isinstance(name, tarfile.TarInfo) else tarfile.TarInfo(name)
            info.size = contents if isinstance(contents, int) else len(contents)
            out.write(gzip.compress(info.tobuf(format=tarfile.PAX_FORMAT)))
            if isinstance(contents, int):
                assert contents % _ZERO_CHUNK == 0, "zero members are whole MiB (no tar padding)"
                for _ in range(contents // _ZERO_CHUNK):
                    out.write(_GZIP_ZEROS)
            else:
                out.write(gzip.compress(contents + bytes(-len(contents) % tarfile.BLOCKSIZE)))
        out.write(gzip.compress(bytes(tarfile.RECORDSIZE)))  # end-of-archive marker and padding
    return archive


def python_release_members(ds: RawDataset, top: str = "cifar-10-batches-py/") -> dict[str, bytes]:
    """The python release's members (pickled at protocol 2, as Python 3 writes them) for `ds`."""
    members = {}
    for i, (x, y) in enumerate(_train_batches(ds), 1):
        members[f"{top}data_batch_{i}"] = pickle.dumps({b"data": chw_rows(x), b"labels": y.tolist()}, 2)
    members[f"{top}test_batch"] = pickle.dumps({b"data": chw_rows(ds.x_test), b"labels": ds.y_test.tolist()}, 2)
    members[f"{top}batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in CIFAR10_CLASSES]}, 2)
    return members


def binary_release_members(ds: RawDataset, top: str = "cifar-10-batches-bin/") -> dict[str, bytes]:
    """The binary release's members for `ds`."""

    def records(x, y):
        return np.concatenate([y[:, None].astype(np.uint8), chw_rows(x)], 1).tobytes()

    members = {f"{top}data_batch_{i}.bin": records(x, y) for i, (x, y) in enumerate(_train_batches(ds), 1)}
    members[f"{top}test_batch.bin"] = records(ds.x_test, ds.y_test)
    members[f"{top}batches.meta.txt"] = ("\n".join(CIFAR10_CLASSES) + "\n").encode()
    return members
