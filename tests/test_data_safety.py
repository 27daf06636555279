"""Archives and pickles are untrusted input: nothing in them may escape their folder or run code."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from scratchnet.data import CIFAR10_CLASSES, DataError, read_cifar10
from scratchnet.data.archives import iter_files, safe_unpickle


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


def test_a_pickled_ndarray_subclass_is_refused():
    data = pickle.dumps(np.ma.masked_array(np.zeros(3, np.uint8)), protocol=2)
    with pytest.raises(DataError, match="pickle refused"):
        safe_unpickle(data, "batch.pkl")


def test_plain_batch_data_passes_the_restricted_unpickler():
    rows = np.arange(6, dtype=np.uint8).reshape(2, 3)
    batch = safe_unpickle(pickle.dumps({b"data": rows, b"labels": [1, 2], b"name": "x"}, protocol=2), "b")
    np.testing.assert_array_equal(batch[b"data"], rows)
    assert batch[b"labels"] == [1, 2] and batch[b"name"] == "x"
