"""Reading untrusted archives and pickles without trusting them.

Nothing here extracts to disk: members are streamed and returned as bytes. Still, an archive
whose member names would land outside its folder (absolute paths, `..`), or that holds links or
device files, is refused outright: it was not made by anyone packaging CIFAR-10 honestly.

The python release of CIFAR-10 is pickled NumPy arrays. `safe_unpickle` admits only the few
names such a pickle refers to (the array and dtype constructors, each checked to build plain
numeric data), so a crafted pickle cannot call anything else: no `os.system`, no `open`.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import DataError

_BLOCK = 1 << 20  # bytes per read when draining a compressed stream to its trailer

_MAGIC = {  # leading bytes -> opener; each verifies its own checksum / length trailer at EOF
    b"\x1f\x8b": gzip.open,
    b"BZh": bz2.open,
    b"\xfd7zXZ\x00": lzma.open,
}


def iter_files(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """Yields (relative POSIX name, contents) of every regular file in a tar archive or directory.

    Tar archives may be plain or gzip/bzip2/xz-compressed and are read as one stream. Raises
    DataError naming `path` for a missing path, an unreadable or truncated archive, or an
    unsafe member (see module docstring).
    """
    path = Path(path)
    if path.is_dir():
        yield from _iter_directory(path)
    elif path.is_file():
        yield from _iter_tar(path)
    else:
        raise DataError(f"{path}: no such file or directory")


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    with open(path, "rb") as raw:
        head = raw.read(6)
    opener = next((op for magic, op in _MAGIC.items() if head.startswith(magic)), open)
    try:
        # The compressed stream is opened by gzip/bz2/lzma rather than by tarfile's "r|gz":
        # those modules check the CRC and length trailer, so a truncated download is an error
        # instead of an archive that silently ends early.
        with opener(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = _safe_name(path, member)
                if member.isdir():
                    continue
                contents = tar.extractfile(member).read()
                if len(contents) != member.size:
                    raise DataError(f"{path}: member {member.name!r} is truncated")
                yield name, contents
            while stream.read(_BLOCK):  # read to the end so the trailer gets checked
                pass
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        raise DataError(
            f"{path}: not a readable tar archive (truncated or corrupted?): {err}"
        ) from None


def _safe_name(archive: Path, member: tarfile.TarInfo) -> str:
    """The member's normalised relative name, or DataError if it could escape its folder."""
    name = member.name
    if member.issym() or member.islnk():
        raise DataError(f"{archive}: member {name!r} is a link; links are refused")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: member {name!r} is a device or special file; refused")
    parts = name.replace("\\", "/").split("/")  # str ops: this runs for 60,000 members
    if name.startswith(("/", "\\")) or ":" in parts[0]:
        raise DataError(f"{archive}: member {name!r} has an absolute path; refused")
    if ".." in parts:
        raise DataError(f"{archive}: member {name!r} would land outside the archive's folder")
    return "/".join(p for p in parts if p not in ("", "."))


def _iter_directory(root: Path) -> Iterator[tuple[str, bytes]]:
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()  # a deterministic walk, whatever the file system's order
        for name in sorted(dirnames + filenames):
            full = Path(folder) / name
            if full.is_symlink():
                # A link could point anywhere on the machine; the same rule as for archives.
                raise DataError(f"{full}: is a symbolic link; links are refused (copy the files)")
        for name in sorted(filenames):
            full = Path(folder) / name
            if not full.is_file():
                raise DataError(f"{full}: is a device or special file; refused")
            yield full.relative_to(root).as_posix(), full.read_bytes()


# --- pickles ---------------------------------------------------------------------------------


def _reconstruct_array(subtype, shape, dtype_code):
    # ndarray.__reduce__ pickles an empty array built from these arguments, then restores the
    # shape, dtype and bytes by __setstate__; the pickled shape is ignored so that it cannot
    # ask for a huge allocation.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return np.ndarray((0,), np.uint8)


def _plain_dtype(spec, align=False, copy=True):
    dtype = np.dtype(spec)
    if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None:
        raise pickle.UnpicklingError(f"dtype {spec!r} is not plain numeric data")
    return dtype


def _latin1_bytes(text, encoding="latin1"):
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, 'latin1').
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return codecs.encode(text, "latin1")


_ALLOWED = {
    # Python 2 wrote the official batches with `numpy.core`; NumPy 2 writes `numpy._core`.
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_array,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_array,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the names in `_ALLOWED`; any other global is refused before it is called."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def safe_unpickle(data: bytes, where: str):
    """Unpickles the plain data of a CIFAR python batch: dicts, lists, strings, numbers, arrays.

    `where` names the file for error messages. Byte strings written by Python 2 stay bytes
    (`encoding="bytes"`), as the official release's keys (b"data", b"labels") are.
    """
    try:
        return _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # any failure of untrusted input is a data error, not a crash
        raise DataError(f"{where}: not a CIFAR python batch (pickle refused: {err})") from None
