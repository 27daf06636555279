"""Reading untrusted archives and pickles without trusting them, in bounded memory.

Nothing here extracts to disk. An archive (a tar file, plain or gzip/bzip2/xz-compressed, or a
directory) is read in two passes:

1. `open_archive` lists it: every member's header is checked as it is met (no link, device
   or sparse file, absolute path or `..`; a size within the limit for a member of that name;
   not too many members, not too many bytes in all) and the index {name: size} is kept. No
   member's data is read; a compressed stream is decompressed and discarded block by block,
   then its CRC/length trailer is checked. A caller checks the archive's structure from it.
2. `Archive.read(names)` streams the members it is asked for, one at a time, each as bytes,
   read at the offsets pass 1 recorded (no header is parsed twice).

So memory is bounded by the largest member a caller allows, whatever an archive's headers
claim; even the tar headers' own extended names and pax records are read under a budget,
because `tarfile` reads those in one call of whatever size the header claims.

The python release of CIFAR-10 is pickled NumPy arrays. `safe_unpickle` admits only what such a
batch holds: plain containers, strings and numbers, and arrays through NumPy's reconstruction
path (`_reconstruct` then `__setstate__`) with a uint8 dtype and a declared size within a
bound. Arrays are built here from the pickled bytes; no pickle ever calls `numpy.ndarray` or
`numpy.dtype`, let alone `os.system` or `open`.
"""

from __future__ import annotations

import bz2
import codecs
import functools
import gzip
import io
import lzma
import math
import os
import pickle
import pickletools
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .errors import DataError

_BLOCK = 1 << 20  # bytes per read when draining a compressed stream to its trailer

# leading bytes -> opener; each verifies its own checksum / length trailer at EOF
_MAGIC: dict[bytes, Callable[..., io.BufferedIOBase]] = {
    b"\x1f\x8b": gzip.open,
    b"BZh": bz2.open,
    b"\xfd7zXZ\x00": lzma.open,
}

# One member's header (with any GNU long name or pax records before it) never needs more than
# this; tarfile would otherwise read a 3 GB "long name" in one call.
HEADER_BYTES_MAX = 1 << 20
# After the end-of-archive marker a tar file holds only zero padding to its record size
# (10 KiB by default, at most a few hundred KiB for unusual blocking factors).
TRAILER_BYTES_MAX = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What an archive may hold, checked from its index before any data is read.

    `member(name)` gives (max bytes, what such a member is) for the member `name`, e.g.
    (65_634_304, "a python batch"); `members` bounds the number of entries (files and folders),
    `total` the sum of the files' sizes, in bytes.
    """

    member: Callable[[str], tuple[int, str]]
    members: int
    total: int


# For callers that know nothing about the contents: generous, but still bounded.
ANY_FILES = Limits(member=lambda name: (1 << 30, "a member"), members=1_000_000, total=1 << 32)


def iter_files(path: str | Path, limits: Limits = ANY_FILES) -> Iterator[tuple[str, bytes]]:
    """Yields (relative POSIX name, contents) of every regular file in a tar archive or directory,
    after listing it whole (see the module docstring); DataError naming `path` otherwise."""
    archive = open_archive(path, limits)
    yield from archive.read(archive.sizes)


def open_archive(path: str | Path, limits: Limits) -> Archive:
    """Lists a tar archive or directory (pass 1), checking every entry against `limits`.

    Raises DataError naming `path` and the member for a missing path, an unreadable or
    truncated archive, an unsafe member, a member over its size limit, a name that appears
    twice, or too many members or bytes.
    """
    path = Path(path)
    if path.is_dir():
        return Archive(path, _list_directory(path, limits), offsets=None)
    if path.is_file():
        sizes, offsets = _list_tar(path, limits)
        return Archive(path, sizes, offsets=offsets)
    raise DataError(f"{path}: no such file or directory")


class Archive:
    """A listed archive or directory: its index, and its members' contents on request."""

    def __init__(self, path: Path, sizes: dict[str, int], *, offsets: dict[str, int] | None):
        self.path = path
        self.sizes = sizes  # normalised relative name -> bytes, regular files only, archive order
        # For a tar archive: where each member's data starts in the uncompressed stream, so
        # that pass 2 reads exactly the listed bytes and parses no header a second time.
        self.offsets = offsets
        self._stat = _identity(path)

    def where(self, name: str) -> str:
        """How error messages name one member: `archive.tar.gz: top/data_batch_1`."""
        return f"{self.path}: {name}"

    def read(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """Yields (name, contents) of each of `names` (keys of `sizes`), one at a time, in the
        archive's order (a compressed tar can only be read forwards)."""
        wanted = set(names)
        unknown = wanted - self.sizes.keys()
        if unknown:
            raise KeyError(f"not in the archive's index: {sorted(unknown)[:3]}")
        if self.offsets is None:
            yield from self._read_directory(wanted)
        else:
            yield from self._read_tar(wanted)

    def _read_directory(self, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
        for name, size in self.sizes.items():
            if name in wanted:
                with open(self.path / name, "rb") as f:
                    contents = f.read(size + 1)  # never more than the listed size, even if it grew
                if len(contents) != size:
                    raise DataError(f"{self.where(name)}: changed while being read ({size} bytes listed)")
                yield name, contents

    def _read_tar(self, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
        if not wanted:
            return
        assert self.offsets is not None  # a tar archive: listed with its members' offsets
        with _open_stream(self.path) as stream:
            if _identity(self.path) != self._stat:
                raise DataError(f"{self.path}: changed since it was listed; read it again")
            for name in sorted(wanted, key=self.offsets.__getitem__):
                stream.seek(self.offsets[name])  # forwards only: decompresses and discards
                contents = stream.read(self.sizes[name])
                if len(contents) != self.sizes[name]:
                    raise DataError(f"{self.where(name)}: is truncated")
                yield name, contents


def _identity(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def _open_stream(path: Path) -> io.BufferedIOBase:
    """The archive's uncompressed bytes as a file object that seeks forwards, whatever its
    compression. gzip/bz2/lzma rather than tarfile's "r:gz": those modules check the CRC and
    length trailer, so a truncated download is an error instead of an archive that ends early."""
    with open(path, "rb") as raw:
        head = raw.read(6)
    opener = next((op for magic, op in _MAGIC.items() if head.startswith(magic)), open)
    return opener(path, "rb")


class _Budget:
    """A file object over the uncompressed stream that refuses a read beyond `allowance` bytes
    before making it. tarfile reads a member's GNU long name or pax records in one call of the
    size its header claims, before returning the member; this is what bounds those reads."""

    def __init__(self, raw, where: Path):
        self.raw, self.where, self.allowance = raw, where, HEADER_BYTES_MAX

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self.allowance:
            asked = "all remaining" if n is None or n < 0 else f"{n:,}"
            raise DataError(
                f"{self.where}: a tar header asks to read {asked} bytes at once (a long name or pax "
                f"records); a member's headers need at most {HEADER_BYTES_MAX:,}; refused"
            )
        self.allowance -= n
        return self.raw.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)  # skipping forward decompresses and discards

    def tell(self) -> int:
        return self.raw.tell()


def _list_tar(path: Path, limits: Limits) -> tuple[dict[str, int], dict[str, int]]:
    """({name: size}, {name: offset of its data in the uncompressed stream}) of the regular files.

    tarfile in random-access mode ("r") over the uncompressed stream: it then skips a member's
    data by seeking (reading and discarding forwards) instead of buffering it.
    """
    sizes: dict[str, int] = {}
    offsets: dict[str, int] = {}
    entries = total = 0
    try:
        with _open_stream(path) as stream:
            budget = _Budget(stream, path)
            # ignore: typeshed's file object for TarFile has write and close, which a TarFile in
            # mode "r" never calls on a file object it was given
            tar = tarfile.TarFile(fileobj=budget, mode="r")  # type: ignore[arg-type]  # reads the first header
            while True:
                budget.allowance = HEADER_BYTES_MAX
                member = tar.next()
                if member is None:
                    break
                name = _safe_name(path, member)
                entries += 1
                if entries > limits.members:
                    raise DataError(
                        f"{path}: holds more than {limits.members:,} members; CIFAR-10 needs at most that many"
                    )
                if member.isdir():
                    continue
                if member.issparse():  # its data is not `size` bytes at offset_data
                    raise DataError(f"{path}: member {member.name!r} is a sparse file; refused")
                total = _add(sizes, name, member.size, total, limits, f"{path}: {name}", path)
                offsets[name] = member.offset_data
            _drain(stream, path)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        raise DataError(f"{path}: not a readable tar archive (truncated or corrupted?): {err}") from None
    return sizes, offsets


def _drain(stream, path: Path) -> None:
    """Reads what follows the end-of-archive marker, so that the trailer gets checked."""
    extra = 0
    while chunk := stream.read(_BLOCK):
        extra += len(chunk)
        if extra > TRAILER_BYTES_MAX:
            raise DataError(
                f"{path}: holds more than {TRAILER_BYTES_MAX:,} bytes after its end-of-archive "
                f"marker; a tar file ends with at most its record's padding"
            )


def _add(sizes: dict[str, int], name: str, size: int, total: int, limits: Limits, where: str, path: Path) -> int:
    """Records one file in the index after checking it against `limits`; the new total."""
    if name in sizes:
        raise DataError(f"{where}: appears twice; refused (which one would be meant?)")
    limit, what = limits.member(name)
    if size > limit:
        raise DataError(f"{where}: is {size:,} bytes; {what} is at most {limit:,} bytes")
    total += size
    if total > limits.total:
        raise DataError(f"{path}: holds more than {limits.total:,} bytes of files; CIFAR-10 needs at most that many")
    sizes[name] = size
    return total


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


def _list_directory(root: Path, limits: Limits) -> dict[str, int]:
    sizes: dict[str, int] = {}
    entries = total = 0
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()  # a deterministic walk, whatever the file system's order
        for name in sorted(dirnames + filenames):
            full = Path(folder) / name
            if full.is_symlink():
                # A link could point anywhere on the machine; the same rule as for archives.
                raise DataError(f"{full}: is a symbolic link; links are refused (copy the files)")
            entries += 1
            if entries > limits.members:
                raise DataError(
                    f"{root}: holds more than {limits.members:,} files and folders; CIFAR-10 needs at most that many"
                )
        for name in sorted(filenames):
            full = Path(folder) / name
            info = full.stat()
            if not stat.S_ISREG(info.st_mode):
                raise DataError(f"{full}: is a device or special file; refused")
            rel = full.relative_to(root).as_posix()
            total = _add(sizes, rel, info.st_size, total, limits, f"{root}: {rel}", root)
    return sizes


# --- pickles ---------------------------------------------------------------------------------

# One batch of the release: 10,000 images of 32x32x3 uint8 values.
MAX_ARRAY_BYTES = 10_000 * 3072
# A batch pickle holds a few objects per image (its label, its file name, written by Python 3
# as `_codecs.encode(name, 'latin1')`: about 9 opcodes): 16 per image leaves room. Each opcode
# makes at most one object, so this also bounds the objects a pickle can ask for.
MAX_PICKLE_OPCODES = 16 * 10_000 + 1_000


class _ArrayState:
    """What `_reconstruct` returns: an array to be, built by `__setstate__` from the pickled
    (shape, dtype, bytes) once they pass the checks. `safe_unpickle` swaps it for the array."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.array: np.ndarray | None = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise pickle.UnpicklingError("array state is not (version, shape, dtype, fortran, data)")
        shape, dtype, fortran, raw = state[-4:]
        if not (
            isinstance(shape, tuple) and 1 <= len(shape) <= 2 and all(isinstance(n, int) and n >= 0 for n in shape)
        ):
            raise pickle.UnpicklingError(f"array shape {shape!r} is not one or two sizes")
        if not (isinstance(dtype, _DtypeState) and dtype.plain):
            raise pickle.UnpicklingError("array dtype is not plain uint8")
        declared = math.prod(shape)
        if declared > self.max_bytes:
            raise pickle.UnpicklingError(
                f"array declares {declared:,} bytes {shape}; a batch holds at most {self.max_bytes:,}"
            )
        if not isinstance(raw, bytes) or len(raw) != declared:
            got = f"{len(raw):,} bytes" if isinstance(raw, bytes) else type(raw).__name__
            raise pickle.UnpicklingError(f"array data is {got}; its shape {shape} declares {declared:,}")
        order: Literal["F", "C"] = "F" if fortran else "C"
        self.array = np.frombuffer(raw, dtype=np.uint8).reshape(shape, order=order)


class _DtypeState:
    """What `numpy.dtype('u1', ...)` returns inside a pickle: a record, never a numpy dtype that
    the pickle's `__setstate__` could alter (np.dtype('u1') is NumPy's shared instance)."""

    def __init__(self, spec, align=False, copy=True):
        spec = spec.decode("ascii", "replace") if isinstance(spec, bytes) else spec
        if spec not in ("u1", "uint8"):
            raise pickle.UnpicklingError(f"dtype {spec!r} refused; only uint8 is allowed")
        self.plain = True

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, itemsize, alignment, flags): a plain
        # uint8 has no subarray, names or fields.
        if not (isinstance(state, tuple) and len(state) >= 5 and state[2:5] == (None, None, None)):
            self.plain = False


def _ndarray_type(*args, **kwargs):
    # numpy.ndarray is named in a pickle as _reconstruct's first argument; calling it would
    # allocate whatever shape the pickle asks for.
    raise pickle.UnpicklingError("numpy.ndarray may be named, never called")


def _latin1_bytes(text, encoding="latin1"):
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, 'latin1').
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return codecs.encode(text, "latin1")


def _reconstruct(subtype, shape, dtype_code, *, max_bytes: int) -> _ArrayState:
    # ndarray.__reduce__ pickles _reconstruct(ndarray, (0,), b'b') and then the real shape,
    # dtype and bytes as its state.
    if subtype is not _ndarray_type or shape != (0,):
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return _ArrayState(max_bytes)


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the names a CIFAR batch refers to; any other global is refused before it
    is called."""

    def __init__(self, data: bytes, max_array_bytes: int):
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.max_array_bytes = max_array_bytes

    def find_class(self, module: str, name: str):
        # Not a bound method: the unpickler memoizes what this returns, and a bound method there
        # would make a cycle that keeps the unpickler, the pickle and its arrays alive until the
        # garbage collector happens to run (60 MB per batch).
        reconstruct = functools.partial(_reconstruct, max_bytes=self.max_array_bytes)
        allowed = {
            # Python 2 wrote the official batches with `numpy.core`; NumPy 2 writes `numpy._core`.
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): _ndarray_type,
            ("numpy", "dtype"): _DtypeState,
            ("_codecs", "encode"): _latin1_bytes,
        }
        try:
            return allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def _check_opcodes(data: bytes, max_opcodes: int) -> None:
    """Refuses a pickle with more than `max_opcodes` opcodes, or a memo index beyond that, before
    the unpickler runs: CPython's unpickler grows its memo table to whatever index a PUT names
    (touching every slot), and builds one object per opcode, so both bound its memory."""
    count = 0
    for opcode, arg, _ in pickletools.genops(data):
        count += 1
        if count > max_opcodes:
            raise pickle.UnpicklingError(f"more than {max_opcodes:,} opcodes; a batch needs fewer")
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(arg, int) and arg >= max_opcodes:
            raise pickle.UnpicklingError(f"memo index {arg:,} is beyond what a batch needs")


def _resolve(obj):
    """The unpickled structure with every _ArrayState replaced by its array."""
    if isinstance(obj, _ArrayState):
        if obj.array is None:
            raise pickle.UnpicklingError("an array without its data")
        return obj.array
    if isinstance(obj, _DtypeState):
        raise pickle.UnpicklingError("a dtype outside an array")
    if isinstance(obj, dict):
        return {_resolve(k): _resolve(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def safe_unpickle(
    data: bytes, where: str, *, max_array_bytes: int = MAX_ARRAY_BYTES, max_opcodes: int = MAX_PICKLE_OPCODES
):
    """Unpickles the plain data of a CIFAR python batch: dicts, lists, strings, numbers, and
    uint8 arrays of at most `max_array_bytes` values each (read-only, backed by the pickle).

    `where` names the file for error messages. Byte strings written by Python 2 stay bytes
    (`encoding="bytes"`), as the official release's keys (b"data", b"labels") are. Memory is a
    small multiple of len(data): see `_check_opcodes`.
    """
    try:
        _check_opcodes(data, max_opcodes)
        return _resolve(_CifarUnpickler(data, max_array_bytes).load())
    except Exception as err:  # any failure of untrusted input is a data error, not a crash
        raise DataError(f"{where}: not a CIFAR python batch (pickle refused: {err})") from None
