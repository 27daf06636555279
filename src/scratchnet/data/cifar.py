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

Untrusted input in bounded memory. Every member is held to what its format allows
(`member_limit`: a batch holds at most the release's 10,000 images, an image file is a few KB),
from the archive's index, before its data is read; the layout (which members, how many images,
each binary batch a whole number of records) is checked from that index too; then members are
read one at a time and decoded into arrays no larger than the release's.

Counts. A batch never holds more than the release's 10,000 images, whatever the source. Exactly
the release's counts (10,000 per batch, 50,000 train, 10,000 test) are required with
`exact_counts=True`, which `fetch` passes when the source is a known release (the official
archives, the bundled mirror: recognised by checksum): that is when a reader knows the counts
to expect. Any other archive may hold fewer images in the same layout (a subset made for a
course, the tests' tiny archives); the provenance records its counts.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..files import atomic_paths, json_text
from .archives import Archive, Limits, open_archive, safe_unpickle
from .errors import DataError

# The label order of the release, which is also the sorted order of its class names: so an
# image-folder dataset's sorted folder names give the same labels as the official batches.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (32, 32, 3)
PIXELS = 32 * 32 * 3  # 3072 values per image
FORMATS = ("python", "binary", "image-folder")

PYTHON_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
PYTHON_TEST = ["test_batch"]
PYTHON_META = "batches.meta"
BINARY_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
BINARY_TEST = ["test_batch.bin"]
BINARY_META = "batches.meta.txt"
RELEASE_README = "readme.html"  # beside the batches in both official archives
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")

# --- what a valid CIFAR-10 input needs, in bytes and images ----------------------------------
BATCH_IMAGES = 10_000  # per batch of the release
RELEASE_IMAGES = {"train": 50_000, "test": 10_000}
RECORD_BYTES = 1 + PIXELS  # a binary batch's record: label byte, then the pixels
# A python batch is ~31 MB as the release pickled it (Python 2). Python 3 at protocol 2 writes
# the pixel bytes as UTF-8 text (two bytes for each value >= 128), so up to twice the pixels,
# plus the labels and file names.
PYTHON_BATCH_MAX = 2 * BATCH_IMAGES * PIXELS + (4 << 20)
BINARY_BATCH_MAX = BATCH_IMAGES * RECORD_BYTES
# A 32x32 PNG or JPEG is 1-4 KB; 64 KiB leaves room for metadata (EXIF, colour profile).
IMAGE_FILE_MAX = 64 << 10
OTHER_FILE_MAX = 1 << 20  # batches.meta(.txt), readme.html, a README beside the folders
# 60,000 images and their 20 class folders, twice over for the "._name" companion of every
# file that macOS's tar adds.
MEMBERS_MAX = 2 * sum(RELEASE_IMAGES.values()) + 1_000
FILES_BYTES_MAX = 1 << 30  # all files together; the releases are ~180 MB unpacked
# A download: the files, their tar headers, and the compressed stream's framing.
ARCHIVE_BYTES_MAX = FILES_BYTES_MAX + MEMBERS_MAX * 1024 + (16 << 20)


def member_limit(name: str) -> tuple[int, str]:
    """(max bytes, what it is) for an archive member called `name`, in any layout."""
    base = name.rsplit("/", 1)[-1]
    if base.lower().endswith(IMAGE_SUFFIXES):
        return IMAGE_FILE_MAX, "a 32x32 image file"
    if base in PYTHON_TRAIN or base in PYTHON_TEST:
        return PYTHON_BATCH_MAX, f"a python batch ({BATCH_IMAGES:,} images at most)"
    if base in BINARY_TRAIN or base in BINARY_TEST:
        return BINARY_BATCH_MAX, f"a binary batch ({BATCH_IMAGES:,} records of {RECORD_BYTES:,} bytes)"
    return OTHER_FILE_MAX, "a file other than a batch or an image"


CIFAR_LIMITS = Limits(member=member_limit, members=MEMBERS_MAX, total=FILES_BYTES_MAX)


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


def read_cifar10(
    path: str | Path, *, progress: bool = False, exact_counts: bool = False, expected_format: str | None = None
) -> tuple[RawDataset, str]:
    """Reads CIFAR-10 from an archive or directory in any of the three formats.

    Returns (dataset, format) with format one of FORMATS. `exact_counts` requires the release's
    counts (see the module docstring); `expected_format`, if given, is the only format accepted.
    Raises DataError naming the file and what was expected for anything else: an unknown
    layout, a missing or unexpected member, a member larger than its format allows, a wrong
    record size or count, an image that is not 32x32 RGB, an unknown class folder. Everything
    that the archive's index shows is checked before any member's data is read.
    """
    path = Path(path)
    archive = open_archive(path, CIFAR_LIMITS)
    names = _strip_top_folder(archive.sizes)
    markers = {
        "python": {*PYTHON_TRAIN, *PYTHON_TEST, PYTHON_META},
        "binary": {*BINARY_TRAIN, *BINARY_TEST, BINARY_META},
    }
    found = [fmt for fmt, marker in markers.items() if not marker.isdisjoint(names)]
    if any(name.startswith(tuple(f"{split}/" for split in SPLITS)) for name in names):
        found.append("image-folder")
    if len(found) != 1:
        sample = ", ".join(list(archive.sizes)[:5]) or "nothing"
        what = "more than one" if found else "none"
        raise DataError(
            f"{path}: holds {what} of the CIFAR-10 formats; expected exactly one of: the python "
            f"release (data_batch_1..5, test_batch, batches.meta), the binary release "
            f"(data_batch_1..5.bin, test_batch.bin, batches.meta.txt) or image folders "
            f"(train/<class>/*, test/<class>/*), optionally under one top folder; found {sample}"
        )
    fmt = found[0]
    if expected_format is not None and fmt != expected_format:
        raise DataError(f"{path}: holds the {fmt} format; expected {expected_format}")
    reader = {"python": _read_python, "binary": _read_binary, "image-folder": _read_image_folder}[fmt]
    dataset = reader(archive, names, exact_counts, progress)
    check_dataset(dataset, str(path))
    return dataset, fmt


def _strip_top_folder(files) -> dict[str, str]:
    """Maps each name with its one common top folder removed (if any) to the original name."""
    tops = {name.split("/")[0] for name in files}
    strip = len(tops) == 1 and all("/" in n for n in files) and tops.isdisjoint(SPLITS)
    return {(n.split("/", 1)[1] if strip else n): n for n in files}


def _check_release_members(archive: Archive, names: dict[str, str], wanted: list[str]) -> None:
    """DataError unless the release's members are all there and nothing else is (bar its
    readme and hidden files such as .DS_Store)."""
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DataError(f"{archive.path}: missing {', '.join(missing)}; expected all of {', '.join(wanted)}")
    extra = [
        original
        for name, original in names.items()
        if name not in wanted and name != RELEASE_README and not any(part.startswith(".") for part in name.split("/"))
    ]
    if extra:
        raise DataError(
            f"{archive.where(extra[0])}: unexpected in the release's layout, which holds only "
            f"{', '.join(wanted)} (and {RELEASE_README})"
        )


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


def _check_batch_count(where: str, n: int, exact_counts: bool) -> None:
    if exact_counts and n != BATCH_IMAGES:
        raise DataError(f"{where}: holds {n:,} images; a batch of the release holds exactly {BATCH_IMAGES:,}")


def _chw_rows_to_images(rows: np.ndarray) -> np.ndarray:
    """(N, 3072) rows of R, G, B planes -> (N, 32, 32, 3) HWC images."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _read_python(archive: Archive, names, exact_counts: bool, progress: bool) -> RawDataset:
    batches = PYTHON_TRAIN + PYTHON_TEST
    _check_release_members(archive, names, batches + [PYTHON_META])
    if exact_counts:  # a pickle of 10,000 images holds at least their pixel bytes
        for name in batches:
            size = archive.sizes[names[name]]
            if size < BATCH_IMAGES * PIXELS:
                raise DataError(
                    f"{archive.where(names[name])}: is {size:,} bytes; a batch of the release holds "
                    f"{BATCH_IMAGES:,} images, at least {BATCH_IMAGES * PIXELS:,} bytes"
                )

    def batch(where: str, blob: bytes) -> tuple[np.ndarray, np.ndarray]:
        loaded = safe_unpickle(blob, where, max_array_bytes=BATCH_IMAGES * PIXELS)
        if not isinstance(loaded, dict):
            raise DataError(f"{where}: is a {type(loaded).__name__}; expected a dict with data and labels")
        loaded = {k.decode() if isinstance(k, bytes) else k: v for k, v in loaded.items()}
        data = loaded.get("data")
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == PIXELS):
            got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DataError(f"{where}: 'data' is {got}; expected a uint8 array of shape (N, {PIXELS})")
        _check_batch_count(where, len(data), exact_counts)
        return data, _labels(where, loaded.get("labels"), len(data))

    assembled, class_names = _Batches(PYTHON_TRAIN, PYTHON_TEST), None
    originals = {names[n]: n for n in batches + [PYTHON_META]}
    for original, blob in archive.read(originals):
        name, where = originals[original], archive.where(original)
        if name == PYTHON_META:
            meta = safe_unpickle(blob, where, max_array_bytes=0)
            label_names = meta.get(b"label_names", meta.get("label_names")) if isinstance(meta, dict) else None
            if not isinstance(label_names, list):
                raise DataError(f"{where}: expected a dict with a list 'label_names'")
            class_names = _check_class_names(where, label_names)
        else:
            assembled.put(name, *batch(where, blob))
    assert class_names is not None  # the meta member was read (checked listed above)
    return assembled.dataset(class_names)


def _read_binary(archive: Archive, names, exact_counts: bool, progress: bool) -> RawDataset:
    batches = BINARY_TRAIN + BINARY_TEST
    _check_release_members(archive, names, batches + [BINARY_META])
    for name in batches:  # record counts follow from the sizes: all checked before reading
        size, where = archive.sizes[names[name]], archive.where(names[name])
        if size == 0 or size % RECORD_BYTES:
            raise DataError(
                f"{where}: is {size} bytes; expected a whole number of {RECORD_BYTES}-byte records "
                f"(1 label byte, then {PIXELS} pixel bytes)"
            )
        _check_batch_count(where, size // RECORD_BYTES, exact_counts)

    assembled, class_names = _Batches(BINARY_TRAIN, BINARY_TEST), None
    originals = {names[n]: n for n in batches + [BINARY_META]}
    for original, blob in archive.read(originals):
        name, where = originals[original], archive.where(original)
        if name == BINARY_META:
            try:
                lines = blob.decode("ascii").split()
            except UnicodeDecodeError:
                raise DataError(f"{where}: expected ASCII class names, one per line") from None
            class_names = _check_class_names(where, lines)
        else:
            rows = np.frombuffer(blob, dtype=np.uint8).reshape(-1, RECORD_BYTES)
            assembled.put(name, rows[:, 1:], _labels(where, rows[:, 0], len(rows)))
    assert class_names is not None  # the meta member was read (checked listed above)
    return assembled.dataset(class_names)


class _Batches:
    """The official releases' batches placed into the dataset's arrays as they are read.

    An archive holds its batches in any order (the official python one starts with
    data_batch_4), and a batch's count is known only once it is read; so batch i of a split
    goes to rows [i * 10,000, ...) of an array sized for full batches (memory is committed
    only where rows are written), and `dataset` closes the gaps that shorter batches leave.
    Each batch is converted to HWC once, straight into place, and its bytes can then go.
    """

    def __init__(self, train: list[str], test: list[str]):
        self.slot = {name: ("train", i) for i, name in enumerate(train)}
        self.slot.update({name: ("test", i) for i, name in enumerate(test)})
        self.x = {
            "train": np.empty((len(train) * BATCH_IMAGES, *IMAGE_SHAPE), np.uint8),
            "test": np.empty((len(test) * BATCH_IMAGES, *IMAGE_SHAPE), np.uint8),
        }
        self.y = {split: np.empty(len(x), np.int64) for split, x in self.x.items()}
        self.count: dict[str, int] = {}

    def put(self, name: str, rows: np.ndarray, labels: np.ndarray) -> None:
        """Batch `name`: (n, 3072) CHW rows, n <= 10,000, and their (n,) labels."""
        split, i = self.slot[name]
        start = i * BATCH_IMAGES
        self.x[split][start : start + len(rows)] = _chw_rows_to_images(rows)
        self.y[split][start : start + len(rows)] = labels
        self.count[name] = len(rows)

    def dataset(self, class_names: tuple[str, ...]) -> RawDataset:
        arrays = {}
        for split in SPLITS:
            x, y, end = self.x[split], self.y[split], 0
            for name in (n for n, (s, _) in self.slot.items() if s == split):  # in batch order
                start, n = self.slot[name][1] * BATCH_IMAGES, self.count[name]
                if start != end:  # moves rows down, into the gap of a short batch before them
                    x[end : end + n], y[end : end + n] = x[start : start + n], y[start : start + n]
                end += n
            arrays[split] = x[:end], y[:end]
        (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
        return RawDataset(x_train, y_train, x_test, y_test, class_names=class_names)


def _read_image_folder(archive: Archive, names, exact_counts: bool, progress: bool) -> RawDataset:
    entries: dict[str, list] = {split: [] for split in SPLITS}
    for name, original in names.items():
        parts = name.split("/")
        if parts[0] not in SPLITS or parts[-1].startswith("."):
            continue  # a README beside train/ and test/, or macOS metadata such as .DS_Store
        split = parts[0]
        if len(parts) != 3:
            raise DataError(f"{archive.path}: {original}: expected {split}/<class>/<image file>")
        _, label_name, filename = parts
        if label_name not in CIFAR10_CLASSES:
            raise DataError(
                f"{archive.path}: unknown class folder {split}/{label_name}; expected one of "
                f"{', '.join(CIFAR10_CLASSES)}"
            )
        if not filename.lower().endswith(IMAGE_SUFFIXES):
            raise DataError(f"{archive.path}: {original}: expected a PNG or JPEG image (.png, .jpg, .jpeg)")
        entries[split].append((CIFAR10_CLASSES.index(label_name), filename, original))

    for split, items in entries.items():
        missing = sorted(set(CIFAR10_CLASSES) - {CIFAR10_CLASSES[label] for label, _, _ in items})
        if missing:
            raise DataError(
                f"{archive.path}: no {split}/ images for {', '.join(missing)}; expected a folder with "
                f"images for each of the 10 CIFAR-10 classes"
            )
        if exact_counts and len(items) != RELEASE_IMAGES[split]:
            raise DataError(
                f"{archive.path}: {split}/ holds {len(items):,} images; the release has "
                f"exactly {RELEASE_IMAGES[split]:,}"
            )
        items.sort()

    # Every image has its place before any is read; the archive is then read once, in its own
    # order, each image decoded straight into its row.
    images = {split: np.empty((len(items), *IMAGE_SHAPE), dtype=np.uint8) for split, items in entries.items()}
    place = {original: (split, i) for split, items in entries.items() for i, (_, _, original) in enumerate(items)}
    with tqdm(total=len(place), desc="decode", unit="img", disable=not progress, mininterval=1.0) as bar:
        for original, blob in archive.read(place):
            split, i = place[original]
            images[split][i] = _decode_image(f"{archive.path}: {original}", blob)
            bar.update()
    labels = {split: np.array([label for label, _, _ in items], dtype=np.int64) for split, items in entries.items()}
    return RawDataset(images["train"], labels["train"], images["test"], labels["test"])


# Modes Pillow gives a PNG or JPEG that holds an RGB picture exactly in another encoding:
# grayscale (a PNG optimiser writes CIFAR-10's few gray images so) and palette (<= 256 colours).
# Converting them to RGB changes no pixel. Alpha is dropped only when every pixel is opaque.
_LOSSLESS_TO_RGB = {"L", "P"}
_ALPHA_MODES = {"RGBA", "LA", "PA"}


def _decode_image(where: str, blob: bytes) -> np.ndarray:
    """One PNG/JPEG file -> (32, 32, 3) uint8 RGB, pixels in [0, 255].

    Grayscale, palette and fully opaque images are converted exactly; anything else (a
    transparent pixel, 16-bit or CMYK data, a size other than 32x32) is a DataError that says
    what was found, what is expected and how to convert it.
    """
    try:
        with Image.open(io.BytesIO(blob), formats=("PNG", "JPEG")) as image:
            width, height = image.size
            found = f"a {width}x{height} {image.mode} image"
            if image.size != (32, 32):
                raise DataError(f"{where}: is {found}; expected 32x32 RGB")
            mode = image.mode
            if mode == "RGB":
                image.load()  # decode now, so that a truncated file fails here with its name
                return np.asarray(image)
            transparency = "transparency" in image.info
            if mode in _LOSSLESS_TO_RGB and not transparency:
                return np.asarray(image.convert("RGB"))
            if mode in _ALPHA_MODES or transparency:
                rgba = image.convert("RGBA")
                if int(np.asarray(rgba)[..., 3].min()) == 255:
                    return np.asarray(rgba.convert("RGB"))
                raise DataError(
                    f"{where}: is {found} with transparent pixels; expected 32x32 RGB. Which "
                    f"background is meant is not known: flatten it onto one and save as RGB"
                )
            raise DataError(
                f"{where}: is {found}; expected 32x32 RGB (8 bits per channel; grayscale and "
                f"palette images are converted). Convert it, e.g. with Pillow: "
                f"Image.open(f).convert('RGB').save(f)"
            )
    except DataError:
        raise
    except UnidentifiedImageError:  # its message names the in-memory buffer, not the file
        raise DataError(f"{where}: not a PNG or JPEG image (it starts with {blob[:8]!r})") from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for unreadable files
        raise DataError(f"{where}: not a readable PNG or JPEG image ({err})") from None


# --- the fetch stage's output file ----------------------------------------------------------


def check_dataset(dataset: RawDataset, where: str) -> None:
    """DataError naming `where` unless `dataset` holds canonical CIFAR-10 arrays."""
    for split in SPLITS:
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        if not (
            isinstance(x, np.ndarray)
            and x.dtype == np.uint8
            and x.ndim == 4
            and x.shape[1:] == IMAGE_SHAPE
            and len(x) > 0
        ):
            got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise DataError(f"{where}: x_{split} is {got}; expected uint8 (N, 32, 32, 3) with N > 0")
        if not (isinstance(y, np.ndarray) and y.dtype == np.int64 and y.shape == (len(x),)):
            got = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise DataError(f"{where}: y_{split} is {got}; expected int64 ({len(x)},)")
        if y.min() < 0 or y.max() >= len(CIFAR10_CLASSES):
            raise DataError(f"{where}: y_{split} ranges over [{y.min()}, {y.max()}]; expected 0..9")
    _check_class_names(where, dataset.class_names)


def save_raw(dataset: RawDataset, provenance: dict, arrays_path: str | Path, provenance_path: str | Path) -> None:
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
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
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
