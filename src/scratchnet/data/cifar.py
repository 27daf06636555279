"""CIFAR-10 from any of its three packagings, as the same canonical uint8 arrays.

    python release   cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}: pickled
                     dicts; `data` is (10000, 3072) uint8 rows laid out as R plane, G, B (CHW)
    binary release   cifar-10-batches-bin/{data_batch_1..5.bin, test_batch.bin,
                     batches.meta.txt}: 3,073-byte records, 1 label byte then the same CHW pixels
    image folders    train/<class>/*.png|jpg, test/<class>/*.png|jpg, 32x32 RGB files

Each may sit in a tar archive or a directory, with or without one top folder. Canonical form:
images (N, 32, 32, 3) uint8 in HWC order (pixel values in [0, 255]), labels (N,) int64 indexing
`CIFAR10_CLASSES`. Train keeps the release's order (batches 1..5); image folders, which have no
order, are read class by class in file-name order.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .archives import iter_files, safe_unpickle
from .errors import DataError
from ..files import atomic_paths, json_text

# The label order of the release, which is also the sorted order of its class names: so an
# image-folder dataset's sorted folder names give the same labels as the official batches.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SHAPE = (32, 32, 3)
PIXELS = 32 * 32 * 3  # 3072 values per image
FORMATS = ("python", "binary", "image-folder")

PYTHON_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
PYTHON_TEST = ["test_batch"]
PYTHON_META = "batches.meta"
BINARY_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
BINARY_TEST = ["test_batch.bin"]
BINARY_META = "batches.meta.txt"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")


@dataclass
class RawDataset:
    """CIFAR-10 as read from its source, before any split or normalisation."""

    x_train: np.ndarray  # (N_train, 32, 32, 3) uint8, pixels in [0, 255], HWC
    y_train: np.ndarray  # (N_train,) int64 in [0, 10)
    x_test: np.ndarray  # (N_test, 32, 32, 3) uint8
    y_test: np.ndarray  # (N_test,) int64
    class_names: tuple[str, ...] = CIFAR10_CLASSES

    def counts(self) -> dict[str, dict[str, int]]:
        """Examples per class per split: {"train": {"airplane": 5000, ...}, "test": {...}}."""
        return {
            "train": class_counts(self.y_train, self.class_names),
            "test": class_counts(self.y_test, self.class_names),
        }

    def sha256(self) -> str:
        """A checksum of the arrays themselves: equal iff two sources gave the same data."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train.astype("<i8"), self.x_test, self.y_test.astype("<i8")):
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()


def class_counts(y: np.ndarray, class_names) -> dict[str, int]:
    """{class name: number of labels in `y` equal to its index}."""
    counts = np.bincount(y, minlength=len(class_names))
    return {name: int(n) for name, n in zip(class_names, counts)}


def read_cifar10(path: str | Path, *, progress: bool = False) -> tuple[RawDataset, str]:
    """Reads CIFAR-10 from an archive or directory in any of the three formats.

    Returns (dataset, format) with format one of FORMATS. Raises DataError naming the file and
    what was expected for anything else: an unknown layout, a missing batch, a wrong record
    size, an image that is not 32x32 RGB, an unknown class folder.
    """
    path = Path(path)
    files = dict(iter_files(path))
    names = _strip_top_folder(files)
    markers = {
        "python": {*PYTHON_TRAIN, *PYTHON_TEST, PYTHON_META},
        "binary": {*BINARY_TRAIN, *BINARY_TEST, BINARY_META},
    }
    found = [fmt for fmt, marker in markers.items() if not marker.isdisjoint(names)]
    if any(name.startswith(tuple(f"{split}/" for split in SPLITS)) for name in names):
        found.append("image-folder")
    if len(found) != 1:
        sample = ", ".join(sorted(files)[:5]) or "nothing"
        what = "more than one" if found else "none"
        raise DataError(
            f"{path}: holds {what} of the CIFAR-10 formats; expected exactly one of: the python "
            f"release (data_batch_1..5, test_batch, batches.meta), the binary release "
            f"(data_batch_1..5.bin, test_batch.bin, batches.meta.txt) or image folders "
            f"(train/<class>/*, test/<class>/*), optionally under one top folder; found {sample}"
        )
    fmt = found[0]
    reader = {"python": _read_python, "binary": _read_binary, "image-folder": _read_image_folder}[fmt]
    dataset = reader(path, files, names, progress)
    check_dataset(dataset, str(path))
    return dataset, fmt


def _strip_top_folder(files: dict[str, bytes]) -> dict[str, str]:
    """Maps each name with its one common top folder removed (if any) to the original name."""
    tops = {name.split("/")[0] for name in files}
    strip = len(tops) == 1 and all("/" in n for n in files) and tops.isdisjoint(SPLITS)
    return {(n.split("/", 1)[1] if strip else n): n for n in files}


def _require(path: Path, names: dict[str, str], wanted: list[str]) -> None:
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}; expected all of {', '.join(wanted)}")


def _check_class_names(where: str, names) -> tuple[str, ...]:
    names = tuple(n.decode() if isinstance(n, bytes) else n for n in names)
    if names != CIFAR10_CLASSES:
        raise DataError(f"{where}: class names are {list(names)}; expected CIFAR-10's {list(CIFAR10_CLASSES)}")
    return names


def _labels(where: str, labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels are {labels.dtype} {labels.shape}; expected {n} integers")
    if n and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise DataError(f"{where}: labels range over [{labels.min()}, {labels.max()}]; expected 0..9")
    return labels.astype(np.int64)


def _chw_rows_to_images(rows: np.ndarray) -> np.ndarray:
    """(N, 3072) rows of R, G, B planes -> (N, 32, 32, 3) HWC images."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _read_python(path: Path, files, names, progress) -> RawDataset:
    _require(path, names, PYTHON_TRAIN + PYTHON_TEST + [PYTHON_META])

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"{path}: {names[name]}"
        loaded = safe_unpickle(files[names[name]], where)
        if not isinstance(loaded, dict):
            raise DataError(f"{where}: is a {type(loaded).__name__}; expected a dict with data and labels")
        loaded = {k.decode() if isinstance(k, bytes) else k: v for k, v in loaded.items()}
        data = loaded.get("data")
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == PIXELS):
            got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DataError(f"{where}: 'data' is {got}; expected a uint8 array of shape (N, {PIXELS})")
        return _chw_rows_to_images(data), _labels(where, loaded.get("labels"), len(data))

    meta_where = f"{path}: {names[PYTHON_META]}"
    meta = safe_unpickle(files[names[PYTHON_META]], meta_where)
    label_names = meta.get(b"label_names", meta.get("label_names")) if isinstance(meta, dict) else None
    if not isinstance(label_names, list):
        raise DataError(f"{meta_where}: expected a dict with a list 'label_names'")
    class_names = _check_class_names(meta_where, label_names)
    return _from_batches([batch(n) for n in PYTHON_TRAIN], batch(PYTHON_TEST[0]), class_names)


def _read_binary(path: Path, files, names, progress) -> RawDataset:
    _require(path, names, BINARY_TRAIN + BINARY_TEST + [BINARY_META])
    record = 1 + PIXELS

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"{path}: {names[name]}"
        blob = np.frombuffer(files[names[name]], dtype=np.uint8)
        if blob.size == 0 or blob.size % record:
            raise DataError(
                f"{where}: is {blob.size} bytes; expected a whole number of {record}-byte records "
                f"(1 label byte, then {PIXELS} pixel bytes)"
            )
        rows = blob.reshape(-1, record)
        return _chw_rows_to_images(rows[:, 1:]), _labels(where, rows[:, 0], len(rows))

    meta_where = f"{path}: {names[BINARY_META]}"
    try:
        lines = files[names[BINARY_META]].decode("ascii").split()
    except UnicodeDecodeError:
        raise DataError(f"{meta_where}: expected ASCII class names, one per line") from None
    class_names = _check_class_names(meta_where, lines)
    return _from_batches([batch(n) for n in BINARY_TRAIN], batch(BINARY_TEST[0]), class_names)


def _from_batches(train: list[tuple[np.ndarray, np.ndarray]], test: tuple[np.ndarray, np.ndarray],
                  class_names: list[str]) -> RawDataset:
    """The official releases' five training batches and one test batch as one dataset."""
    return RawDataset(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=np.ascontiguousarray(test[0]),
        y_test=test[1],
        class_names=class_names,
    )


def _read_image_folder(path: Path, files, names, progress) -> RawDataset:
    entries: dict[str, list] = {split: [] for split in SPLITS}
    for name, original in names.items():
        parts = name.split("/")
        if parts[0] not in SPLITS or parts[-1].startswith("."):
            continue  # a README beside train/ and test/, or macOS metadata such as .DS_Store
        split = parts[0]
        if len(parts) != 3:
            raise DataError(f"{path}: {original}: expected {split}/<class>/<image file>")
        _, label_name, filename = parts
        if label_name not in CIFAR10_CLASSES:
            raise DataError(
                f"{path}: unknown class folder {split}/{label_name}; expected one of "
                f"{', '.join(CIFAR10_CLASSES)}"
            )
        if not filename.lower().endswith(IMAGE_SUFFIXES):
            raise DataError(f"{path}: {original}: expected a PNG or JPEG image (.png, .jpg, .jpeg)")
        entries[split].append((CIFAR10_CLASSES.index(label_name), filename, original))

    arrays = {}
    for split, items in entries.items():
        missing = sorted(set(CIFAR10_CLASSES) - {CIFAR10_CLASSES[label] for label, _, _ in items})
        if missing:
            raise DataError(
                f"{path}: no {split}/ images for {', '.join(missing)}; expected a folder with "
                f"images for each of the 10 CIFAR-10 classes"
            )
        items.sort()
        images = np.empty((len(items), *IMAGE_SHAPE), dtype=np.uint8)  # decoded straight into place
        for i, (_, _, original) in enumerate(
            tqdm(items, desc=f"decode {split}", unit="img", disable=not progress, mininterval=1.0)
        ):
            images[i] = _decode_image(f"{path}: {original}", files[original])
        arrays[split] = images, np.array([label for label, _, _ in items], dtype=np.int64)

    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    return RawDataset(x_train, y_train, x_test, y_test)


def _decode_image(where: str, blob: bytes) -> np.ndarray:
    """One PNG/JPEG file -> (32, 32, 3) uint8; DataError unless it is a readable 32x32 RGB image."""
    try:
        with Image.open(io.BytesIO(blob), formats=("PNG", "JPEG")) as image:
            if image.size != (32, 32) or image.mode != "RGB":
                width, height = image.size
                raise DataError(f"{where}: is a {width}x{height} {image.mode} image; expected 32x32 RGB")
            image.load()  # decode now, so that a truncated file fails here with its name
            return np.asarray(image)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for unreadable files
        raise DataError(f"{where}: not a readable PNG or JPEG image ({err})") from None


# --- the fetch stage's output file ----------------------------------------------------------


def check_dataset(dataset: RawDataset, where: str) -> None:
    """DataError naming `where` unless `dataset` holds canonical CIFAR-10 arrays."""
    for split in SPLITS:
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 4
                and x.shape[1:] == IMAGE_SHAPE and len(x) > 0):
            got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise DataError(f"{where}: x_{split} is {got}; expected uint8 (N, 32, 32, 3) with N > 0")
        if not (isinstance(y, np.ndarray) and y.dtype == np.int64 and y.shape == (len(x),)):
            got = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise DataError(f"{where}: y_{split} is {got}; expected int64 ({len(x)},)")
        if y.min() < 0 or y.max() >= len(CIFAR10_CLASSES):
            raise DataError(f"{where}: y_{split} ranges over [{y.min()}, {y.max()}]; expected 0..9")
    _check_class_names(where, dataset.class_names)


def save_raw(dataset: RawDataset, provenance: dict, arrays_path: str | Path,
             provenance_path: str | Path) -> None:
    """Writes the arrays (.npz, uncompressed) and the provenance (JSON), both or neither."""
    with atomic_paths({"arrays": arrays_path, "provenance": provenance_path}) as tmp:
        with open(tmp["arrays"], "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(
                f,
                x_train=dataset.x_train,
                y_train=dataset.y_train,
                x_test=dataset.x_test,
                y_test=dataset.y_test,
                class_names=np.array(dataset.class_names),
            )
        tmp["provenance"].write_text(json_text(provenance))


def load_raw(path: str | Path) -> RawDataset:
    """Reads the fetch stage's .npz; DataError naming `path` if it is missing or malformed."""
    path = Path(path)
    keys = ("x_train", "y_train", "x_test", "y_test", "class_names")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)}; expected {', '.join(keys)}")
            arrays = {k: npz[k] for k in keys}
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz of CIFAR-10 arrays ({err}); run the fetch stage") from None
    dataset = RawDataset(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
        class_names=tuple(str(n) for n in arrays["class_names"]),
    )
    check_dataset(dataset, str(path))
    return dataset


def load_provenance(path: str | Path) -> dict:
    """The fetch stage's provenance record; DataError naming `path` if unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable provenance JSON ({err}); run the fetch stage") from None
