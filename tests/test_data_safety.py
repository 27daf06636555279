"""Archives and pickles are untrusted input: nothing in them may escape their folder or run code,
and nothing they claim may make a reader use more memory than real CIFAR-10 needs.

Hostile archives are built by the tests (never committed): oversized members are zeros,
compressed to a few hundred KB; peak memory is the max RSS of a child process running fetch.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from cifar_archives import (
    binary_release_members,
    image_folder_members,
    python_release_members,
    tar_of,
    tiny_dataset,
    write_binary_release,
    write_image_folder,
    write_python_release,
    zero_bomb_tar_gz,
)

from scratchnet.data import CIFAR10_CLASSES, DataError, read_cifar10
from scratchnet.data.archives import MAX_PICKLE_OPCODES, Limits, iter_files, open_archive, safe_unpickle
from scratchnet.data.cifar import BINARY_BATCH_MAX, IMAGE_FILE_MAX, PYTHON_BATCH_MAX


def tar_with(archive: Path, *infos: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for info, data in infos:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return archive


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "name, complaint",
    [
        ("cifar/../../evil.txt", "would land outside the archive's folder"),
        ("../evil.txt", "would land outside the archive's folder"),
        ("/tmp/evil.txt", "has an absolute path"),
        ("C:/evil.txt", "has an absolute path"),
    ],
)
def test_a_member_outside_the_archive_folder_is_refused(tmp_path, name, complaint):
    archive = tar_with(tmp_path / "evil.tar.gz", (member("cifar/ok.txt"), b"fine"), (member(name), b"pwned"))

    with pytest.raises(DataError, match=f"evil.tar.gz: member '{name}' {complaint}"):
        list(iter_files(archive))
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_in_an_archive_are_refused(tmp_path, kind):
    archive = tar_with(tmp_path / "link.tar.gz", (member("train/cat/0.png", kind, "/etc/passwd"), b""))

    with pytest.raises(DataError, match=r"link.tar.gz: member 'train/cat/0.png' is a link; links are refused"):
        read_cifar10(archive)


def test_device_files_in_an_archive_are_refused(tmp_path):
    archive = tar_with(tmp_path / "dev.tar.gz", (member("train/cat/0.png", tarfile.CHRTYPE), b""))
    with pytest.raises(DataError, match="is a device or special file"):
        read_cifar10(archive)


def test_a_symlink_in_a_directory_source_is_refused(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    os.symlink("/etc", tmp_path / "data" / "train" / "cat")

    with pytest.raises(DataError, match=r"train/cat: is a symbolic link; links are refused"):
        read_cifar10(tmp_path / "data")


class WritesAFile:
    """Unpickling this would call `action(*args)`: the classic code-execution pickle."""

    def __init__(self, action, *args):
        self.action, self.args = action, args

    def __reduce__(self):
        return self.action, self.args


@pytest.mark.parametrize("action", ["open", "mkdir"])
def test_a_crafted_pickle_is_refused_and_its_file_never_appears(tmp_path, action):
    target = tmp_path / "created-by-the-pickle"
    payload = WritesAFile(open, str(target), "w") if action == "open" else WritesAFile(os.mkdir, str(target))
    batch = pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(batch)
    meta = {b"label_names": [n.encode() for n in CIFAR10_CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))

    with pytest.raises(DataError, match=r"data_batch_1: not a CIFAR python batch \(pickle refused: refused global"):
        read_cifar10(folder)
    assert not target.exists()


def test_the_same_pickle_does_create_the_file_when_loaded_naively(tmp_path):
    # Shows the test above can fail: plain pickle.loads would have run the payload.
    target = tmp_path / "created-by-the-pickle"
    pickle.loads(pickle.dumps(WritesAFile(os.mkdir, str(target)), protocol=2))
    assert target.exists()


def test_an_object_array_in_a_pickle_is_refused():
    data = pickle.dumps({b"data": np.array([print, "x"], dtype=object)}, protocol=2)
    with pytest.raises(DataError, match=r"batch.pkl: not a CIFAR python batch \(pickle refused"):
        safe_unpickle(data, "batch.pkl")


def test_the_object_dtype_itself_is_refused_whatever_the_rest_of_the_array():
    # A plain uint8 array's pickle with only its dtype changed to object ('u1' -> 'O8', same
    # length): its shape, state and bytes pass every other check, so only the dtype guard
    # refuses it (without it, the bytes would silently load as uint8).
    good = pickle.dumps(np.arange(6, dtype=np.uint8), protocol=2)
    assert good.count(b"X\x02\x00\x00\x00u1") == 1  # BINUNICODE 'u1': numpy.dtype's first argument
    bad = good.replace(b"X\x02\x00\x00\x00u1", b"X\x02\x00\x00\x00O8")
    with pytest.raises(DataError, match=r"pickle refused: dtype 'O8' refused; only uint8 is allowed"):
        safe_unpickle(bad, "b")
    np.testing.assert_array_equal(safe_unpickle(good, "b"), np.arange(6, dtype=np.uint8))


def test_a_pickled_ndarray_subclass_is_refused():
    data = pickle.dumps(np.ma.masked_array(np.zeros(3, np.uint8)), protocol=2)
    with pytest.raises(DataError, match="pickle refused"):
        safe_unpickle(data, "batch.pkl")


def test_plain_batch_data_passes_the_restricted_unpickler():
    rows = np.arange(6, dtype=np.uint8).reshape(2, 3)
    batch = safe_unpickle(pickle.dumps({b"data": rows, b"labels": [1, 2], b"name": "x"}, protocol=2), "b")
    np.testing.assert_array_equal(batch[b"data"], rows)
    assert batch[b"labels"] == [1, 2] and batch[b"name"] == "x"


# --- bounded memory: sizes and structure are judged from the index, before any data is read ----

BOMB = 300 << 20  # bytes of zeros in an oversized member: ~300 KB compressed
PEAK_MB = 150  # a child that imports the library and lists an archive stays far below this


CHILD = """
import sys
from pathlib import Path
try:
    from scratchnet.data import fetch
    fetch(sys.argv[1], 1, downloads=sys.argv[2], progress=False)
finally:
    # VmHWM, the peak resident memory of this process image. Not getrusage's ru_maxrss: Linux
    # carries that across fork and exec, so it would report the (larger) pytest parent's.
    print(next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")))
"""


def fetch_in_child(source: Path, downloads: Path) -> tuple[int, str, float]:
    """(exit code, stderr, peak resident MB) of `fetch(source)` in a fresh Python process."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(downloads)], capture_output=True, text=True, timeout=120
    )
    peak_kb = int(done.stdout.split("VmHWM:")[1].split()[0])
    return done.returncode, done.stderr, peak_kb / 1024


def _with_bomb(members: dict[str, bytes], name: str) -> dict[str, bytes | int]:
    """`members` with `name` replaced by BOMB bytes of zeros, placed first in the archive."""
    return {name: BOMB, **{k: v for k, v in members.items() if k != name}}


@pytest.mark.parametrize(
    "layout, member, limit",
    [
        (
            "python",
            "cifar-10-batches-py/data_batch_1",
            f"a python batch \\(10,000 images at most\\) is at most {PYTHON_BATCH_MAX:,}",
        ),
        (
            "binary",
            "cifar-10-batches-bin/test_batch.bin",
            f"a binary batch \\(10,000 records of 3,073 bytes\\) is at most {BINARY_BATCH_MAX:,}",
        ),
        ("image-folder", "train/cat/0007.png", f"a 32x32 image file is at most {IMAGE_FILE_MAX:,}"),
    ],
)
def test_an_oversized_member_is_refused_from_its_header_in_bounded_memory(tmp_path, layout, member, limit):
    ds = tiny_dataset()
    members = {
        "python": python_release_members,
        "binary": binary_release_members,
        "image-folder": image_folder_members,
    }[layout](ds)
    archive = zero_bomb_tar_gz(tmp_path / "bomb.tar.gz", _with_bomb(members, member))
    assert archive.stat().st_size < 2 << 20

    code, stderr, peak_mb = fetch_in_child(archive, tmp_path / "dl")

    assert code != 0
    assert re.search(rf"bomb.tar.gz: {member}: is {BOMB:,} bytes; {limit} bytes", stderr), stderr
    assert peak_mb < PEAK_MB, peak_mb


@pytest.mark.parametrize("layout", ["python", "binary", "image-folder"])
def test_an_oversized_file_in_a_directory_is_refused_from_its_size_in_bounded_memory(tmp_path, layout):
    ds = tiny_dataset()
    writer = {"python": write_python_release, "binary": write_binary_release, "image-folder": write_image_folder}
    folder = writer[layout](tmp_path / "cifar", ds)
    big = {"python": "data_batch_2", "binary": "data_batch_2.bin", "image-folder": "test/dog/0005.png"}[layout]
    os.truncate(folder / big, BOMB)  # a sparse file: no disk used, 300 MB to read

    code, stderr, peak_mb = fetch_in_child(folder, tmp_path / "dl")

    assert code != 0
    assert f"cifar: {big}: is {BOMB:,} bytes;" in stderr, stderr
    assert peak_mb < PEAK_MB, peak_mb


def test_a_tar_header_claiming_a_huge_pax_record_is_refused_before_it_is_read(tmp_path):
    # tarfile itself reads a pax header's records, or a GNU long name, in one call of the size
    # the header claims, before any member is returned to us.
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    members = {"cifar-10-png/train/cat/0.png": b"x", pax: BOMB, "cifar-10-png/train/cat/1.png": b"y"}
    archive = zero_bomb_tar_gz(tmp_path / "pax.tar.gz", members)

    code, stderr, peak_mb = fetch_in_child(archive, tmp_path / "dl")

    assert code != 0
    assert re.search(rf"pax.tar.gz: a tar header asks to read {BOMB:,} bytes at once", stderr), stderr
    assert peak_mb < PEAK_MB, peak_mb


class NoMemberRead:
    """Counts tarfile.TarFile.extractfile calls: structural errors must come before any."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = tarfile.TarFile.extractfile

        def spy(tar, member):
            self.calls.append(member.name)
            return original(tar, member)

        monkeypatch.setattr(tarfile.TarFile, "extractfile", spy)


def _corrupt_first(members: dict[str, bytes]) -> dict[str, bytes]:
    """The first member made to fail if its data were read (a label 200 in a binary batch, of
    the same size; garbage in a pickle or image), ahead of the structural problem."""
    first = next(iter(members))
    blob = members[first]
    bad = b"\xc8" + blob[1:] if first.endswith(".bin") else b"\x80\x02 not a pickle, not an image"
    return {first: bad, **{k: v for k, v in members.items() if k != first}}


@pytest.mark.parametrize(
    "layout, change, complaint",
    [
        ("python", lambda m: m.pop("cifar-10-batches-py/data_batch_3"), r"missing data_batch_3; expected all of"),
        (
            "python",
            lambda m: m.update({"cifar-10-batches-py/data_batch_6": b"more"}),
            r"cifar-10-batches-py/data_batch_6: unexpected in the release's layout",
        ),
        (
            "binary",
            lambda m: m.update({"cifar-10-batches-bin/data_batch_2.bin": bytes(3073 * 2 + 2)}),
            r"data_batch_2.bin: is 6148 bytes; expected a whole number of 3073-byte records",
        ),
        ("image-folder", lambda m: m.update({"train/dragon/0000.png": b"x"}), r"unknown class folder train/dragon"),
        (
            "image-folder",
            lambda m: m.update({"train/bird/notes.txt": b"x"}),
            r"train/bird/notes.txt: expected a PNG or JPEG",
        ),
        (
            "image-folder",
            lambda m: [m.pop(k) for k in list(m) if k.startswith("test/ship/")],
            r"no test/ images for ship",
        ),
    ],
)
def test_structural_problems_are_found_from_the_index_before_any_member_is_read(
    tmp_path, monkeypatch, layout, change, complaint
):
    ds = tiny_dataset()
    members = {
        "python": python_release_members,
        "binary": binary_release_members,
        "image-folder": image_folder_members,
    }[layout](ds)
    change(members)
    archive = tar_of(tmp_path / "bad.tar.gz", _corrupt_first(members))
    reads = NoMemberRead(monkeypatch)

    with pytest.raises(DataError, match=complaint):
        read_cifar10(archive)
    assert reads.calls == []


def test_a_member_named_twice_is_refused(tmp_path):
    archive = tar_of(tmp_path / "twice.tar.gz", {"train/cat/0.png": b"a", "./train/cat/0.png": b"b"})
    with pytest.raises(DataError, match=r"twice.tar.gz: train/cat/0.png: appears twice"):
        read_cifar10(archive)


def test_an_archive_replaced_between_listing_and_reading_is_refused(tmp_path):
    archive = tar_of(tmp_path / "swap.tar.gz", {"a.txt": b"listed"})
    listed = open_archive(archive, Limits(lambda name: (100, "x"), 10, 100))
    tar_of(archive, {"a.txt": b"swapped in later, and longer"})
    os.utime(archive, ns=(1, 1))  # a different mtime even on a coarse-clock file system

    with pytest.raises(DataError, match=r"swap.tar.gz: changed since it was listed"):
        list(listed.read(["a.txt"]))


def test_too_many_members_or_bytes_are_refused_while_listing(tmp_path):
    archive = tar_of(tmp_path / "many.tar.gz", {f"f{i}": b"12345" for i in range(10)})
    some = Limits(member=lambda name: (100, "a test file"), members=9, total=1000)
    with pytest.raises(DataError, match=r"many.tar.gz: holds more than 9 members"):
        open_archive(archive, some)
    few_bytes = Limits(member=lambda name: (100, "a test file"), members=100, total=49)
    with pytest.raises(DataError, match=r"many.tar.gz: holds more than 49 bytes of files"):
        open_archive(archive, few_bytes)
    assert len(open_archive(archive, Limits(lambda name: (5, "x"), 10, 50)).sizes) == 10


# --- pickles: only what a CIFAR batch holds (issue 17) ------------------------------------------


class CallsNdarray:
    """Pickles as a direct call numpy.ndarray(shape, dtype): an allocation of the pickle's choosing."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def __reduce__(self):
        return np.ndarray, (self.shape, self.dtype)


@pytest.mark.parametrize("shape, dtype", [((700_000, 3072), "u1"), ((2,), "O")])
def test_a_pickle_calling_ndarray_directly_is_refused(shape, dtype):
    data = pickle.dumps({b"data": CallsNdarray(shape, dtype), b"labels": [0]}, protocol=2)
    with pytest.raises(
        DataError,
        match=r"batch.pkl: not a CIFAR python batch \(pickle refused: numpy.ndarray may be named, never called",
    ):
        safe_unpickle(data, "batch.pkl")


def test_an_archive_whose_batch_calls_ndarray_is_refused_in_bounded_memory(tmp_path):
    # The archive, scaled down: 70,000 rows of zeros a caller would then concatenate.
    members = python_release_members(tiny_dataset())
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps(
        {b"data": CallsNdarray((70_000, 3072), "u1"), b"labels": [0] * 70_000}, protocol=2
    )
    archive = tar_of(tmp_path / "ndarray.tar.gz", members)

    code, stderr, peak_mb = fetch_in_child(archive, tmp_path / "dl")

    assert code != 0 and "data_batch_1: not a CIFAR python batch (pickle refused: numpy.ndarray" in stderr, stderr
    assert peak_mb < PEAK_MB, peak_mb


def test_an_array_declaring_more_than_a_batch_is_refused_before_it_is_built():
    data = pickle.dumps(np.zeros((3, 4), np.uint8), protocol=2)
    with pytest.raises(DataError, match=r"array declares 12 bytes \(3, 4\); a batch holds at most 8"):
        safe_unpickle(data, "b", max_array_bytes=8)
    np.testing.assert_array_equal(safe_unpickle(data, "b", max_array_bytes=12), np.zeros((3, 4), np.uint8))


@pytest.mark.parametrize("dtype", [np.int64, np.float32])
def test_arrays_of_any_dtype_but_plain_uint8_are_refused(dtype):
    data = pickle.dumps({b"data": np.zeros(4, dtype)}, protocol=2)
    with pytest.raises(DataError, match="pickle refused"):
        safe_unpickle(data, "b")


def test_a_pickle_of_more_opcodes_than_a_batch_needs_is_refused():
    # Each EMPTY_LIST opcode (one byte) makes a 56-byte list: a 60 MB pickle of them is 3.4 GB.
    lists = b"\x80\x02(" + b"]" * (MAX_PICKLE_OPCODES + 1) + b"l."
    with pytest.raises(DataError, match=rf"pickle refused: more than {MAX_PICKLE_OPCODES:,} opcodes"):
        safe_unpickle(lists, "b")


def test_a_pickle_naming_a_far_memo_slot_is_refused():
    # CPython's unpickler grows its memo table to the index a PUT names, zeroing every slot.
    far_put = b"\x80\x02N" + b"r" + struct.pack("<I", 10_000_000) + b"."
    with pytest.raises(DataError, match=r"pickle refused: memo index 10,000,000 is beyond"):
        safe_unpickle(far_put, "b")


def test_a_reconstructed_array_whose_data_disagrees_with_its_shape_is_refused():
    good = pickle.dumps(np.arange(6, dtype=np.uint8).reshape(2, 3), protocol=2)
    bad = good.replace(b"K\x02K\x03\x86", b"K\x04K\x03\x86")  # the shape tuple (2, 3) -> (4, 3)
    assert bad != good
    with pytest.raises(DataError, match=r"array data is 6 bytes; its shape \(4, 3\) declares 12"):
        safe_unpickle(bad, "b")
