"""The fetch stage's readers: every packaging of CIFAR-10 gives the same canonical arrays, and
every malformed one gives one DataError that names the file and what was expected.

The archives are tiny CIFAR-10s built here in each format (python release, binary release,
image folders; in tar.gz/tar/tar.xz archives or directories; with and without a top folder).
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from cifar_archives import (
    _train_batches,
    chw_rows,
    image_folder_members,
    make_tar,
    png_bytes,
    python_release_members,
    tar_of,
    tiny_dataset,
    write_binary_release,
    write_image_folder,
    write_python_release,
)
from PIL import Image

from scratchnet.data import CIFAR10_CLASSES, DataError, RawDataset, fetch, read_cifar10, write_processed
from scratchnet.data.archives import safe_unpickle


@pytest.fixture(scope="module")
def tiny() -> RawDataset:
    return tiny_dataset()


@pytest.fixture(scope="module")
def sources(tmp_path_factory, tiny) -> dict[str, Path]:
    """Every packaging of `tiny`, by name."""
    root = tmp_path_factory.mktemp("sources")
    py = write_python_release(root / "cifar-10-batches-py", tiny)
    binary = write_binary_release(root / "cifar-10-batches-bin", tiny)
    folder = write_image_folder(root / "cifar-10-png", tiny)
    return {
        "python.tar.gz (official layout)": make_tar(py, root / "py-top.tar.gz", top=True),
        "python.tar.gz without top folder": make_tar(py, root / "py-flat.tar.gz", top=False),
        "python directory": py,
        "binary.tar.gz (official layout)": make_tar(binary, root / "bin-top.tar.gz", top=True),
        "binary.tar without top folder": make_tar(binary, root / "bin-flat.tar", top=False, mode="w"),
        "image-folder.tar.gz with top folder": make_tar(folder, root / "img-top.tar.gz", top=True),
        "image-folder.tar.xz without top folder": make_tar(folder, root / "img-flat.tar.xz", top=False, mode="w:xz"),
        "image-folder directory": folder,
    }


FORMAT_OF = {"python": "python", "binary": "binary", "image-folder": "image-folder"}


# --- the same arrays from every format -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "python.tar.gz (official layout)",
        "python.tar.gz without top folder",
        "python directory",
        "binary.tar.gz (official layout)",
        "binary.tar without top folder",
        "image-folder.tar.gz with top folder",
        "image-folder.tar.xz without top folder",
        "image-folder directory",
    ],
)
def test_every_packaging_reads_as_the_same_canonical_arrays(sources, tiny, name):
    dataset, fmt = read_cifar10(sources[name])

    assert fmt == FORMAT_OF[name.split(".")[0].split(" ")[0]]
    assert dataset.x_train.dtype == np.uint8 and dataset.x_train.shape == (30, 32, 32, 3)
    assert dataset.y_train.dtype == np.int64
    np.testing.assert_array_equal(dataset.x_train, tiny.x_train)
    np.testing.assert_array_equal(dataset.y_train, tiny.y_train)
    np.testing.assert_array_equal(dataset.x_test, tiny.x_test)
    np.testing.assert_array_equal(dataset.y_test, tiny.y_test)
    assert dataset.class_names == CIFAR10_CLASSES
    assert dataset.sha256() == tiny.sha256()


def test_fetch_then_preprocess_gives_identical_outputs_from_every_packaging(sources, tmp_path):
    processed = {}
    for name, path in sources.items():
        dataset, provenance = fetch(str(path), timeout=1, downloads=tmp_path / "dl", progress=False)
        out = tmp_path / name
        write_processed(
            dataset,
            provenance,
            val_size=5,
            train_limit=20,
            test_limit=8,
            seed=3,
            split_paths=lambda s, out=out: (out / f"X_{s}.npy", out / f"y_{s}.npy"),
            stats_path=out / "stats.npz",
            meta_path=out / "meta.json",
        )
        processed[name] = {f.name: np.load(f) for f in out.glob("*.npy")}

    reference = processed.pop("python.tar.gz (official layout)")
    assert sorted(reference) == sorted(f"{a}_{s}.npy" for a in "Xy" for s in ("train", "val", "test"))
    for name, arrays in processed.items():
        for file, array in reference.items():
            np.testing.assert_array_equal(arrays[file], array, err_msg=f"{name}: {file}")


def test_provenance_names_format_checksums_and_counts(sources, tmp_path):
    path = sources["binary.tar.gz (official layout)"]
    _, provenance = fetch(str(path), timeout=1, downloads=tmp_path / "dl", progress=False)

    assert provenance["format"] == "binary"
    assert provenance["location"] == str(path) and provenance["fell_back"] is False
    assert len(provenance["md5"]) == 32 and len(provenance["sha256"]) == 64
    assert provenance["counts"]["train"] == {name: 3 for name in CIFAR10_CLASSES}
    assert provenance["counts"]["test"] == {name: 1 for name in CIFAR10_CLASSES}
    assert "binary" in provenance["dataset"]


def test_a_directory_source_has_no_archive_checksum_but_an_arrays_checksum(sources, tiny, tmp_path):
    _, provenance = fetch(str(sources["image-folder directory"]), timeout=1, downloads=tmp_path / "dl", progress=False)
    assert provenance["md5"] is None and provenance["sha256"] is None
    assert provenance["arrays_sha256"] == tiny.sha256()


def test_jpeg_image_folders_decode_close_to_the_original_pixels(tmp_path):
    # JPEG is lossy; smooth images survive it within a few grey levels.
    ramp = np.linspace(0, 255, 32, dtype=np.float64)
    smooth = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (32, 1)), np.full((32, 32), 90.0)], -1)
    ds = RawDataset(
        np.repeat(smooth.astype(np.uint8)[None], 10, 0),
        np.arange(10, dtype=np.int64),
        np.repeat(smooth.astype(np.uint8)[None], 10, 0),
        np.arange(10, dtype=np.int64),
    )
    folder = write_image_folder(tmp_path / "jpeg", ds, ext="jpg")

    dataset, fmt = read_cifar10(folder)

    assert fmt == "image-folder"
    np.testing.assert_array_equal(dataset.y_train, np.arange(10))
    assert np.abs(dataset.x_train.astype(float) - ds.x_train).mean() < 3


def test_python_batches_written_by_python2_are_read(tmp_path, tiny):
    # The official release was pickled by Python 2: str fields are byte strings and the array
    # constructor lives in numpy.core. Built opcode by opcode, as cPickle wrote it.
    folder = write_python_release(tmp_path / "py2", tiny)
    for i, (x, y) in enumerate(_train_batches(tiny), 1):
        (folder / f"data_batch_{i}").write_bytes(py2_pickle_batch(chw_rows(x), y.tolist()))

    dataset, _ = read_cifar10(folder)

    np.testing.assert_array_equal(dataset.x_train, tiny.x_train)
    np.testing.assert_array_equal(dataset.y_train, tiny.y_train)


def py2_pickle_batch(rows: np.ndarray, labels: list[int]) -> bytes:
    def string(b: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING or BINSTRING
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def integer(v: int) -> bytes:  # BININT1 / BININT2
        return b"K" + bytes([v]) if v < 256 else b"M" + struct.pack("<H", v)

    def glob(module: bytes, name: bytes) -> bytes:
        return b"c" + module + b"\n" + name + b"\n"

    minus_one = b"J" + struct.pack("<i", -1)
    dtype = (
        glob(b"numpy", b"dtype")
        + string(b"u1")
        + integer(0)
        + integer(1)
        + b"\x87R"
        + b"("
        + integer(3)
        + string(b"|")
        + b"NNN"
        + minus_one
        + minus_one
        + integer(0)
        + b"tb"
    )
    array = (
        glob(b"numpy.core.multiarray", b"_reconstruct")
        + glob(b"numpy", b"ndarray")
        + integer(0)
        + b"\x85"
        + string(b"b")
        + b"\x87R"
        + b"("
        + integer(1)
        + integer(rows.shape[0])
        + integer(rows.shape[1])
        + b"\x86"
        + dtype
        + b"\x89"
        + string(rows.tobytes())
        + b"tb"
    )
    label_list = b"](" + b"".join(integer(v) for v in labels) + b"e"
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + label_list + b"u."


def test_the_python2_pickle_builder_matches_what_pickle_itself_reads():
    rows = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    batch = pickle.loads(py2_pickle_batch(rows, [4, 7]), encoding="bytes")
    np.testing.assert_array_equal(batch[b"data"], rows)
    assert batch[b"labels"] == [4, 7]
    np.testing.assert_array_equal(safe_unpickle(py2_pickle_batch(rows, [4, 7]), "x")[b"data"], rows)


# --- every malformed input: one DataError naming the file and what was expected ---------------


def test_a_missing_batch_is_named(tmp_path, tiny):
    members = python_release_members(tiny)
    del members["cifar-10-batches-py/data_batch_3"]
    archive = tar_of(tmp_path / "missing.tar.gz", members)

    with pytest.raises(DataError, match=r"missing.tar.gz: missing data_batch_3; expected all of data_batch_1"):
        read_cifar10(archive)


def test_a_batch_with_wrong_array_shape_is_named(tmp_path, tiny):
    members = python_release_members(tiny)
    members["cifar-10-batches-py/test_batch"] = pickle.dumps(
        {b"data": np.zeros((4, 1024), np.uint8), b"labels": [0] * 4}, 2
    )
    archive = tar_of(tmp_path / "shape.tar.gz", members)

    with pytest.raises(
        DataError, match=r"test_batch: 'data' is uint8 \(4, 1024\); expected a uint8 array of shape \(N, 3072\)"
    ):
        read_cifar10(archive)


def test_labels_out_of_range_are_refused(tmp_path, tiny):
    members = python_release_members(tiny)
    members["cifar-10-batches-py/test_batch"] = pickle.dumps(
        {b"data": chw_rows(tiny.x_test), b"labels": [11] * len(tiny.y_test)}, 2
    )
    archive = tar_of(tmp_path / "labels.tar.gz", members)

    with pytest.raises(DataError, match=r"test_batch: labels range over \[11, 11\]; expected 0..9"):
        read_cifar10(archive)


def test_class_names_other_than_cifar10s_are_refused(tmp_path, tiny):
    members = python_release_members(tiny)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"apple"] * 10}, 2)
    archive = tar_of(tmp_path / "names.tar.gz", members)

    with pytest.raises(DataError, match=r"batches.meta: class names are \['apple'.*expected CIFAR-10's"):
        read_cifar10(archive)


def test_a_binary_batch_that_is_not_whole_records_is_named(tmp_path, tiny):
    folder = write_binary_release(tmp_path / "bin", tiny)
    (folder / "data_batch_2.bin").write_bytes(b"\x00" * 3073 * 2 + b"\x01\x02")

    with pytest.raises(
        DataError, match=r"data_batch_2.bin: is 6148 bytes; expected a whole number of 3073-byte records"
    ):
        read_cifar10(folder)


def test_a_truncated_gzip_archive_is_named(sources, tmp_path):
    whole = sources["python.tar.gz (official layout)"].read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])

    with pytest.raises(DataError, match=r"cut.tar.gz: not a readable tar archive \(truncated or corrupted\?\)"):
        read_cifar10(cut)


def test_a_gzip_archive_missing_only_its_trailer_is_still_an_error(sources, tmp_path):
    # tarfile alone would not notice: the tar data is complete, only the CRC/length is gone.
    whole = sources["image-folder.tar.gz with top folder"].read_bytes()
    cut = tmp_path / "no-trailer.tar.gz"
    cut.write_bytes(whole[:-8])

    with pytest.raises(DataError, match="no-trailer.tar.gz: not a readable tar archive"):
        read_cifar10(cut)


def test_a_file_that_is_not_an_archive_is_named(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(DataError, match="junk.bin: not a readable tar archive"):
        read_cifar10(junk)


def test_an_archive_holding_no_cifar_layout_says_what_was_expected(tmp_path):
    archive = tar_of(tmp_path / "other.tar.gz", {"photos/cat.png": b"x"})
    with pytest.raises(
        DataError,
        match=r"other.tar.gz: holds none of the CIFAR-10 formats; expected exactly one of: the python release",
    ):
        read_cifar10(archive)


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere.tar.gz: no such file or directory"):
        read_cifar10(tmp_path / "nowhere.tar.gz")


def test_an_image_of_the_wrong_size_is_named(tmp_path, tiny):
    members = image_folder_members(tiny)
    members["train/cat/0007.png"] = png_bytes(np.zeros((28, 28, 3), np.uint8))
    archive = tar_of(tmp_path / "size.tar.gz", members)

    with pytest.raises(DataError, match=r"size.tar.gz: train/cat/0007.png: is a 28x28 RGB image; expected 32x32 RGB"):
        read_cifar10(archive)


def test_an_image_of_the_wrong_mode_is_named_with_how_to_convert_it(tmp_path, tiny):
    # Grayscale was refused here before issue 14; it is now converted (see the test below).
    members = image_folder_members(tiny)
    members["test/dog/0005.png"] = png_bytes(np.zeros((32, 32), np.uint16))  # 16-bit grayscale
    archive = tar_of(tmp_path / "mode.tar.gz", members)

    with pytest.raises(
        DataError,
        match=r"test/dog/0005.png: is a 32x32 I;16 image; expected 32x32 RGB "
        r"\(8 bits per channel.*Convert it, e.g. with Pillow: "
        r"Image.open\(f\).convert\('RGB'\).save\(f\)",
    ):
        read_cifar10(archive)


def _one_image_archive(tmp_path, tiny, blob: bytes) -> Path:
    """`tiny` as image folders with train/cat/0009.png (row 9 of x_train) replaced by `blob`."""
    members = image_folder_members(tiny)
    members["train/cat/0009.png"] = blob
    return tar_of(tmp_path / "one.tar.gz", members)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA"])
def test_grayscale_palette_and_opaque_rgba_images_are_converted_exactly(tmp_path, tiny, mode):
    # Each holds an RGB picture exactly in another encoding (a PNG optimiser writes CIFAR-10's
    # gray images as L, images of few colours as P; some tools always add an opaque alpha).
    rgb = tiny.x_train[9]
    gray = np.arange(32 * 32).reshape(32, 32).astype(np.uint8)
    palette = Image.fromarray(rgb).quantize(colors=256)  # mode P; its exact RGB is what it shows
    blob, expected = {
        "L": (png_bytes(gray), np.dstack([gray] * 3)),
        "P": (_png(palette), np.asarray(palette.convert("RGB"))),
        "RGBA": (png_bytes(np.dstack([rgb, np.full((32, 32), 255, np.uint8)])), rgb),
    }[mode]
    assert Image.open(io.BytesIO(blob)).mode == mode

    dataset, _ = read_cifar10(_one_image_archive(tmp_path, tiny, blob))

    np.testing.assert_array_equal(dataset.x_train[9], expected)
    np.testing.assert_array_equal(np.delete(dataset.x_train, 9, 0), np.delete(tiny.x_train, 9, 0))


def test_a_transparent_image_is_refused_saying_why_it_cannot_be_converted(tmp_path, tiny):
    rgba = np.dstack([tiny.x_train[9], np.full((32, 32), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    archive = _one_image_archive(tmp_path, tiny, png_bytes(rgba))

    with pytest.raises(
        DataError,
        match=r"train/cat/0009.png: is a 32x32 RGBA image with transparent pixels; "
        r"expected 32x32 RGB. Which background is meant is not known",
    ):
        read_cifar10(archive)


def test_a_file_that_is_not_an_image_is_named_by_its_member_not_its_buffer(tmp_path, tiny):
    archive = _one_image_archive(tmp_path, tiny, b"<html>not found</html>")

    with pytest.raises(
        DataError, match=r"train/cat/0009.png: not a PNG or JPEG image \(it starts with b'<html>no'\)"
    ) as err:
        read_cifar10(archive)
    assert "BytesIO" not in str(err.value)


def test_a_corrupted_image_is_named(tmp_path, tiny):
    members = image_folder_members(tiny)
    members["train/frog/0018.png"] = members["train/frog/0018.png"][:60]
    archive = tar_of(tmp_path / "corrupt.tar.gz", members)

    with pytest.raises(DataError, match=r"train/frog/0018.png: not a readable PNG or JPEG image"):
        read_cifar10(archive)


def test_an_unknown_class_folder_is_named(tmp_path, tiny):
    members = image_folder_members(tiny)
    members["train/dragon/0000.png"] = png_bytes(tiny.x_train[0])
    archive = tar_of(tmp_path / "dragon.tar.gz", members)

    with pytest.raises(DataError, match=r"unknown class folder train/dragon; expected one of airplane, automobile"):
        read_cifar10(archive)


def test_a_missing_class_folder_is_named(tmp_path, tiny):
    members = {k: v for k, v in image_folder_members(tiny).items() if not k.startswith("test/ship/")}
    archive = tar_of(tmp_path / "noship.tar.gz", members)

    with pytest.raises(DataError, match=r"no test/ images for ship; expected a folder with images for each"):
        read_cifar10(archive)


def test_a_non_image_file_in_a_class_folder_is_named(tmp_path, tiny):
    members = image_folder_members(tiny)
    members["train/bird/notes.txt"] = b"hello"
    archive = tar_of(tmp_path / "txt.tar.gz", members)

    with pytest.raises(DataError, match=r"train/bird/notes.txt: expected a PNG or JPEG image"):
        read_cifar10(archive)


def test_files_beside_the_split_folders_and_dotfiles_are_ignored(tmp_path, tiny):
    members = image_folder_members(tiny)
    members["README.txt"] = b"where these images came from"
    members["train/cat/.DS_Store"] = b"\x00\x01"
    archive = tar_of(tmp_path / "extras.tar.gz", members)

    dataset, _ = read_cifar10(archive)

    np.testing.assert_array_equal(dataset.x_train, tiny.x_train)


def test_an_archive_mixing_two_formats_is_refused(tmp_path, tiny):
    members = {**python_release_members(tiny, top=""), **image_folder_members(tiny)}
    archive = tar_of(tmp_path / "both.tar.gz", members)
    with pytest.raises(DataError, match="both.tar.gz: holds more than one of the CIFAR-10 formats"):
        read_cifar10(archive)


# --- counts: never more than the release's, exactly the release's when it is claimed (issue 17) --


def test_a_python_batch_of_more_images_than_the_release_s_is_refused_before_it_is_built(tmp_path, tiny):
    folder = write_python_release(tmp_path / "big", tiny)
    (folder / "data_batch_4").write_bytes(
        pickle.dumps({b"data": np.zeros((10_001, 3072), np.uint8), b"labels": [0] * 10_001}, 4)
    )

    with pytest.raises(
        DataError,
        match=r"big: data_batch_4: not a CIFAR python batch "
        r"\(pickle refused: array declares 30,723,072 bytes \(10001, 3072\); "
        r"a batch holds at most 30,720,000\)",
    ):
        read_cifar10(folder)


def test_a_binary_batch_of_more_records_than_the_release_s_is_refused_from_its_size(tmp_path, tiny):
    folder = write_binary_release(tmp_path / "bin", tiny)
    (folder / "test_batch.bin").write_bytes(bytes(3073 * 10_001))

    with pytest.raises(
        DataError,
        match=r"bin: test_batch.bin: is 30,733,073 bytes; a binary batch \(10,000 records "
        r"of 3,073 bytes\) is at most 30,730,000 bytes",
    ):
        read_cifar10(folder)


@pytest.mark.parametrize(
    "name, complaint",
    [
        (
            "python.tar.gz (official layout)",
            r"cifar-10-batches-py/data_batch_1: is [\d,]+ bytes; a batch of the release holds 10,000 images, "
            r"at least 30,720,000 bytes",
        ),
        (
            "binary.tar without top folder",
            r"data_batch_1.bin: holds 6 images; a batch of the release holds exactly 10,000",
        ),
        ("image-folder directory", r"train/ holds 30 images; the release has exactly 50,000"),
    ],
)
def test_exact_counts_refuses_an_archive_with_fewer_images_than_the_release(sources, name, complaint):
    with pytest.raises(DataError, match=complaint):
        read_cifar10(sources[name], exact_counts=True)
    read_cifar10(sources[name])  # the same archive is fine when the release is not claimed


def test_a_python_batch_of_fewer_images_is_refused_when_exact_counts_are_claimed(tmp_path, tiny):
    # Large enough to pass the index's size check, one image short once unpickled. The six
    # batches are one file, hard-linked, so that the test writes 30 MB, not 180.
    folder = write_python_release(tmp_path / "short", tiny)
    short = pickle.dumps({b"data": np.zeros((9_999, 3072), np.uint8), b"labels": [0] * 9_999, b"pad": bytes(4000)}, 4)
    (tmp_path / "batch").write_bytes(short)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (folder / name).unlink()
        os.link(tmp_path / "batch", folder / name)

    with pytest.raises(
        DataError,
        match=r"short: data_batch_\d: holds 9,999 images; "
        r"a batch of the release holds exactly 10,000",
    ):
        read_cifar10(folder, exact_counts=True)
