"""Where CIFAR-10 comes from: resolving `data.source`, downloading, verifying checksums.

    auto              the official python release if its server answers within `timeout`
                      seconds, else the bundled mirror (sha256-verified), with a
                      MirrorFallbackWarning that names the mirror and why
    official          the python release from its canonical URL, md5-verified; no fallback
    official-binary   the binary release, likewise
    <URL>             an archive in any format `read_cifar10` reads, downloaded each run
    <path>            an archive or directory in any of those formats

A known archive (an official release, the mirror) is recognised by its checksum wherever it
comes from, so the provenance names the dataset correctly even for a local copy, and it must
hold exactly the release's images (`read_cifar10(..., exact_counts=True)`). A download stops as
soon as it is larger than the release it should be (its Content-Length or its running byte
count), or, for a URL of unknown content, larger than any CIFAR-10 archive can be.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import socket
import threading
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tqdm import tqdm

from ..files import atomic_paths
from .cifar import ARCHIVE_BYTES_MAX, RawDataset, read_cifar10
from .errors import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # bytes per read while downloading and hashing


@dataclass(frozen=True)
class Release:
    """An archive whose checksum we know, and what the report should call its data."""

    name: str
    location: str  # URL or path
    format: str  # one of cifar.FORMATS
    dataset: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None  # bytes of the archive; a download is stopped beyond it
    exact_counts: bool = False  # holds exactly the release's 50,000 + 10,000 images

    @property
    def max_bytes(self) -> int:
        return self.size if self.size is not None else ARCHIVE_BYTES_MAX

    @property
    def checksums(self) -> dict[str, str | None]:
        return {"md5": self.md5, "sha256": self.sha256}


OFFICIAL = {
    "official": Release(
        "official",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "python",
        "CIFAR-10 (official python release)",
        md5="c58f30108f718f92721af3b95e74349a",
        size=170_498_071,
        exact_counts=True,
    ),
    "official-binary": Release(
        "official-binary",
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "binary",
        "CIFAR-10 (official binary release)",
        md5="c32a1d4ab5d03f1284b67883e8d87530",
        size=170_052_171,
        exact_counts=True,
    ),
}
MIRROR = Release(
    "mirror",
    "data/mirror/cifar-10-jpeg.tar.gz",
    "image-folder",  # relative to the project root
    "CIFAR-10 JPEG mirror (bundled; quality-75 re-encoding, pixels near the official ones)",
    md5="ed34c0535b92b58275e7e60125140e53",
    sha256="f05cef99aadcd5f9e7993190ce5734289c411cba5644bdae41ff754533f53bd8",
    exact_counts=True,
)


class MirrorFallbackWarning(UserWarning):
    """`auto` is using the bundled mirror because the official release could not be fetched."""


def fetch(
    source: str,
    timeout: float,
    *,
    downloads: str | Path,
    official: dict[str, Release] = OFFICIAL,
    mirror: Release = MIRROR,
    progress: bool = True,
) -> tuple[RawDataset, dict]:
    """Resolves `source` (see module docstring) and reads it.

    Returns (dataset, provenance): provenance is a JSON-ready dict with source, dataset,
    format, location, file, md5, sha256 (of the archive read; null for a directory),
    arrays_sha256, counts and fell_back: a function of `source` and the data only, since it is a
    DVC output (the reason for a fallback, a network error's text, is the
    MirrorFallbackWarning's message, for the console). `downloads` is where verified
    official archives are kept and reused. An archive recognised as a known release must be in
    that release's format and hold exactly its counts. Raises DataError naming the file or URL.
    """
    archive, release, location, reason = _resolve(source, timeout, downloads, official, mirror, progress)
    digests = file_digests(archive) if archive.is_file() else {"md5": None, "sha256": None}
    if release is None:
        release = identify(digests, [*official.values(), mirror])
    dataset, fmt = read_cifar10(
        archive,
        progress=progress,
        exact_counts=release is not None and release.exact_counts,
        expected_format=release.format if release is not None else None,
    )
    provenance = {
        "source": source,
        "dataset": release.dataset if release else f"CIFAR-10 ({fmt} format) from {source}",
        "format": fmt,
        "location": location,
        "file": str(archive),
        **digests,
        "arrays_sha256": dataset.sha256(),
        "counts": dataset.counts(),
        "fell_back": reason is not None,
    }
    return dataset, provenance


def _resolve(source, timeout, downloads, official, mirror, progress):
    """(local archive or directory, known Release or None, where it came from, fallback reason)."""
    if source == "auto":
        release = official["official"]
        try:
            return obtain(release, downloads, timeout=timeout, progress=progress), release, release.location, None
        except DataError as err:
            reason = f"the official release could not be fetched: {err}"
        warnings.warn(
            f"data.source=auto: using the bundled mirror {mirror.location}, {mirror.dataset}, because {reason}",
            MirrorFallbackWarning,
            stacklevel=3,
        )
        try:
            return verify_local(mirror), mirror, mirror.location, reason
        except DataError as mirror_err:
            raise DataError(f"{mirror_err}; and {reason}") from None
    if source in official:
        release = official[source]
        return obtain(release, downloads, timeout=timeout, progress=progress), release, release.location, None
    if _is_url(source):
        # No checksum to trust, so no reuse: a name unique to the URL, downloaded every run.
        digest = hashlib.sha1(source.encode()).hexdigest()[:10]
        name = PurePosixPath(urlparse(source).path).name or "archive"
        dest = Path(downloads) / f"url-{digest}-{name}"
        return (
            download(source, dest, timeout=timeout, max_bytes=ARCHIVE_BYTES_MAX, progress=progress),
            None,
            source,
            None,
        )
    if not Path(source).exists():
        raise DataError(
            f"data.source: {source!r} is neither auto, official, official-binary, a URL, "
            f"nor an existing file or directory"
        )
    return Path(source), None, source, None


def obtain(release: Release, downloads: str | Path, *, timeout: float, progress: bool = True) -> Path:
    """The verified local copy of `release`: reused from `downloads` if present, else downloaded."""
    dest = Path(downloads) / PurePosixPath(urlparse(release.location).path).name
    if dest.is_file():
        try:
            check_digests(dest, file_digests(dest), release.checksums, release.name)
            log.info("reusing the verified download %s", dest)
            return dest
        except DataError as err:
            log.warning("%s; downloading it again", err)
    return download(
        release.location,
        dest,
        timeout=timeout,
        md5=release.md5,
        sha256=release.sha256,
        max_bytes=release.max_bytes,
        progress=progress,
    )


def verify_local(release: Release) -> Path:
    """`release.location` as a path, after checking it exists and matches its checksums."""
    path = Path(release.location)
    if not path.is_file():
        raise DataError(f"{path}: not found; expected the {release.name} archive ({release.dataset})")
    check_digests(path, file_digests(path), release.checksums, release.name)
    return path


def download(
    url: str,
    dest: str | Path,
    *,
    timeout: float,
    md5: str | None = None,
    sha256: str | None = None,
    max_bytes: int = ARCHIVE_BYTES_MAX,
    progress: bool = True,
) -> Path:
    """Downloads `url` to `dest` via a temporary file, verifying length and checksums first.

    `timeout` bounds the wait for the server's answer and for each read (seconds); `max_bytes`
    the file's size: a larger Content-Length is refused before the body is read, a body that
    grows past it is cut off there. Raises DataError naming the URL if it is unreachable,
    answers with an error, closes early, is too large, or sends a file whose md5/sha256 is not
    the one given; `dest` is then left as it was.
    """
    dest = Path(dest)
    with atomic_paths({"download": dest}) as tmp:
        response = _open_url(url, timeout)
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if expected is not None and expected > max_bytes:
            response.close()
            raise DataError(
                f"{url}: announces {expected:,} bytes (Content-Length); the archive "
                f"expected there is at most {max_bytes:,} bytes; not downloaded"
            )
        md5_hash, sha_hash, received = hashlib.md5(), hashlib.sha256(), 0
        with (
            response,
            open(tmp["download"], "wb") as out,
            tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"download {dest.name}",
                disable=not progress,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise DataError(f"{url}: download failed after {received} bytes ({err!r})") from None
                if not chunk:
                    break
                out.write(chunk)
                md5_hash.update(chunk)
                sha_hash.update(chunk)
                received += len(chunk)
                if received > max_bytes:  # a server that sends more than it announced, or no length
                    raise DataError(
                        f"{url}: sent more than {max_bytes:,} bytes, the most the archive "
                        f"expected there can be; download stopped"
                    )
                bar.update(len(chunk))
        if expected is not None and received != expected:
            raise DataError(f"{url}: received {received} of {expected} bytes (connection closed early)")
        digests = {"md5": md5_hash.hexdigest(), "sha256": sha_hash.hexdigest()}
        check_digests(url, digests, {"md5": md5, "sha256": sha256}, "expected")
    return dest


def _open_url(url: str, timeout: float) -> http.client.HTTPResponse:
    """urlopen with a hard deadline of `timeout` seconds for the server's first answer.

    urlopen's own timeout covers each socket operation but not the DNS lookup, which on a
    machine with no network can hang far longer; so the attempt runs in a daemon thread and
    is abandoned once the deadline passes.
    """
    outcome: dict = {}

    def attempt() -> None:
        try:
            outcome["response"] = urllib.request.urlopen(url, timeout=timeout)
        except BaseException as err:  # handed to the caller's thread below
            outcome["error"] = err

    worker = threading.Thread(target=attempt, daemon=True, name="cifar-download")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DataError(f"{url}: no answer within {timeout:g} s")
    err = outcome.get("error")
    if err is None:
        return outcome["response"]
    if isinstance(err, urllib.error.HTTPError):
        err.close()
        raise DataError(f"{url}: the server answered HTTP {err.code} {err.reason}") from None
    if isinstance(err, urllib.error.URLError):
        raise DataError(f"{url}: unreachable ({err.reason})") from None
    if isinstance(err, (socket.timeout, TimeoutError)):
        raise DataError(f"{url}: no answer within {timeout:g} s") from None
    if isinstance(err, (OSError, http.client.HTTPException, ValueError)):
        raise DataError(f"{url}: could not be fetched ({err!r})") from None
    raise err


def _is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https", "ftp", "file")


def file_digests(path: str | Path) -> dict[str, str]:
    """{"md5": hex, "sha256": hex} of a file, read in chunks."""
    md5_hash, sha_hash = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            md5_hash.update(chunk)
            sha_hash.update(chunk)
    return {"md5": md5_hash.hexdigest(), "sha256": sha_hash.hexdigest()}


def check_digests(where, digests: dict[str, str], expected: dict[str, str | None], what: str) -> None:
    """DataError naming `where` unless each checksum given in `expected` matches `digests`."""
    for kind, wanted in expected.items():
        if wanted is not None and digests[kind] != wanted:
            raise DataError(
                f"{where}: {kind} is {digests[kind]}; expected {wanted} "
                f"(corrupted, truncated or not the {what} archive)"
            )


def identify(digests: dict, releases: list[Release]) -> Release | None:
    """The known release whose checksum matches `digests`, if any."""
    for release in releases:
        if any(wanted is not None and digests.get(kind) == wanted for kind, wanted in release.checksums.items()):
            return release
    return None
