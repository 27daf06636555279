"""Resolving data.source: downloads (against a local HTTP server on 127.0.0.1 started here),
checksums, reuse of verified downloads, and `auto`'s fallback to the bundled mirror.

Only loopback addresses are ever contacted: the "official" release is pointed at the local
server, or at a loopback port nothing listens on.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cifar_archives import make_tar, tiny_dataset, write_image_folder, write_python_release

from scratchnet.data import MIRROR, OFFICIAL, DataError, MirrorFallbackWarning, Release, fetch, sources
from scratchnet.data.sources import download, file_digests
from scratchnet.study import layout

ROOT = Path(__file__).resolve().parents[1]


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving `files` (URL path -> bytes), counting requests.

    `truncate` names paths whose response announces the full length but sends only half;
    `unannounced` paths whose response has no Content-Length (the body ends when the server
    closes the connection). `sent` counts the body bytes written per path.
    """

    def __init__(self, files: dict[str, bytes], truncate: tuple[str, ...] = (), unannounced: tuple[str, ...] = ()):
        self.files, self.truncate, self.unannounced, self.requests = files, truncate, unannounced, []
        self.sent: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if self.path not in server.unannounced:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                body = body[: len(body) // 2] if self.path in server.truncate else body
                try:
                    for start in range(0, len(body), 1 << 16):
                        self.wfile.write(body[start : start + (1 << 16)])
                        server.sent[self.path] = server.sent.get(self.path, 0) + min(1 << 16, len(body) - start)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what these tests want to see
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def closed_loopback_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("archives")
    ds = tiny_dataset(per_class_train=2, per_class_test=1, seed=1)
    return {
        "python": make_tar(write_python_release(root / "cifar-10-batches-py", ds), root / "py.tar.gz", top=True),
        "images": make_tar(write_image_folder(root / "cifar-10-jpeg", ds), root / "img.tar.gz", top=True),
    }


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def official_at(url: str, archive: Path | None = None, md5_hex: str | None = None, **fields) -> dict[str, Release]:
    release = Release("official", url, "python", "tiny official", md5=md5_hex or md5(archive), **fields)
    return {"official": release}


def mirror_of(archive: Path, sha256_hex: str | None = None) -> Release:
    return Release("mirror", str(archive), "image-folder", "tiny mirror", sha256=sha256_hex or sha256(archive))


# --- downloads ----------------------------------------------------------------------------------


def test_official_is_downloaded_verified_and_reused(archives, tmp_path):
    with Server({"/cifar-10-python.tar.gz": archives["python"].read_bytes()}) as server:
        official = official_at(server.url("/cifar-10-python.tar.gz"), archives["python"])
        first, provenance = fetch("official", 5, downloads=tmp_path, official=official, progress=False)
        second, _ = fetch("official", 5, downloads=tmp_path, official=official, progress=False)

    assert server.requests == ["/cifar-10-python.tar.gz"]  # the second run reused the download
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archives["python"].read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["cifar-10-python.tar.gz"]  # no temp left over
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert provenance["format"] == "python" and provenance["dataset"] == "tiny official"
    assert provenance["md5"] == md5(archives["python"]) and provenance["fell_back"] is False
    assert provenance["location"] == server.url("/cifar-10-python.tar.gz")


def test_a_corrupted_earlier_download_is_downloaded_again(archives, tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"half a file")
    with Server({"/cifar-10-python.tar.gz": archives["python"].read_bytes()}) as server:
        official = official_at(server.url("/cifar-10-python.tar.gz"), archives["python"])
        fetch("official", 5, downloads=tmp_path, official=official, progress=False)

    assert len(server.requests) == 1
    assert md5(tmp_path / "cifar-10-python.tar.gz") == md5(archives["python"])


def test_a_download_with_the_wrong_md5_is_refused_and_leaves_nothing(archives, tmp_path):
    with Server({"/x.tar.gz": archives["python"].read_bytes()}) as server:
        official = official_at(server.url("/x.tar.gz"), md5_hex="0" * 32)
        with pytest.raises(DataError, match=r"/x.tar.gz: md5 is [0-9a-f]{32}; expected 0{32}"):
            fetch("official", 5, downloads=tmp_path, official=official, progress=False)

    assert list(tmp_path.iterdir()) == []


def test_a_download_cut_short_is_refused_and_leaves_nothing(archives, tmp_path):
    body = archives["python"].read_bytes()
    with Server({"/x.tar.gz": body}, truncate=("/x.tar.gz",)) as server:
        with pytest.raises(DataError, match=r"/x.tar.gz: (received \d+ of \d+ bytes|download failed)"):
            download(server.url("/x.tar.gz"), tmp_path / "x.tar.gz", timeout=5, progress=False)

    assert list(tmp_path.iterdir()) == []


def test_a_download_announcing_more_than_the_release_is_refused_before_its_body_is_read(archives, tmp_path):
    body = archives["python"].read_bytes() + bytes(32 << 20)  # larger than the release claims to be
    with Server({"/x.tar.gz": body}) as server:
        official = official_at(server.url("/x.tar.gz"), archives["python"], size=archives["python"].stat().st_size)
        with pytest.raises(
            DataError,
            match=rf"/x.tar.gz: announces {len(body):,} bytes \(Content-Length\); the "
            rf"archive expected there is at most {official['official'].size:,} bytes",
        ):
            fetch("official", 5, downloads=tmp_path, official=official, progress=False)

    assert server.sent.get("/x.tar.gz", 0) < len(body)
    assert list(tmp_path.iterdir()) == []


def test_a_download_without_a_length_is_stopped_once_it_passes_the_limit(tmp_path):
    body = bytes(8 << 20)
    with Server({"/endless.tar.gz": body}, unannounced=("/endless.tar.gz",)) as server:
        with pytest.raises(
            DataError,
            match=r"/endless.tar.gz: sent more than 1,048,576 bytes, the most the archive "
            r"expected there can be; download stopped",
        ):
            download(server.url("/endless.tar.gz"), tmp_path / "e.tar.gz", timeout=5, max_bytes=1 << 20, progress=False)

    assert list(tmp_path.iterdir()) == []


def test_a_url_of_unknown_content_is_bounded_by_the_largest_cifar10_archive(monkeypatch, archives, tmp_path):
    monkeypatch.setattr(sources, "ARCHIVE_BYTES_MAX", 1000)  # the real bound is ~1.2 GB
    with Server({"/big.tar.gz": archives["images"].read_bytes()}) as server:
        with pytest.raises(
            DataError,
            match=r"/big.tar.gz: announces [\d,]+ bytes \(Content-Length\); the archive "
            r"expected there is at most 1,000 bytes",
        ):
            fetch(server.url("/big.tar.gz"), 5, downloads=tmp_path, progress=False)


def test_a_known_release_must_hold_exactly_the_release_s_images(archives, tmp_path):
    # The tiny archive passes for a release record (its md5) that claims CIFAR-10's full counts.
    official = official_at("http://127.0.0.1:9/unused", archives["python"], exact_counts=True)
    with pytest.raises(
        DataError,
        match=r"py.tar.gz: cifar-10-batches-py/data_batch_1: is [\d,]+ bytes; "
        r"a batch of the release holds 10,000 images",
    ):
        fetch(
            str(archives["python"]),
            5,
            downloads=tmp_path,
            official=official,
            mirror=mirror_of(archives["images"]),
            progress=False,
        )


def test_the_real_releases_claim_exact_counts_and_the_official_ones_their_sizes():
    assert all(release.exact_counts for release in [*OFFICIAL.values(), MIRROR])
    assert {name: release.size for name, release in OFFICIAL.items()} == {
        "official": 170_498_071,
        "official-binary": 170_052_171,
    }


def test_a_server_error_is_reported_with_its_status(tmp_path):
    with Server({}) as server:
        with pytest.raises(DataError, match=r"/missing.tar.gz: the server answered HTTP 404"):
            download(server.url("/missing.tar.gz"), tmp_path / "m.tar.gz", timeout=5, progress=False)


def test_a_url_source_is_downloaded_and_read(archives, tmp_path):
    with Server({"/any/name.tar.gz": archives["images"].read_bytes()}) as server:
        dataset, provenance = fetch(server.url("/any/name.tar.gz"), 5, downloads=tmp_path, progress=False)

    assert provenance["format"] == "image-folder" and provenance["location"] == server.url("/any/name.tar.gz")
    assert dataset.x_train.shape == (20, 32, 32, 3)


# --- auto ---------------------------------------------------------------------------------------


def test_auto_uses_the_official_release_when_it_answers(archives, tmp_path):
    with Server({"/cifar-10-python.tar.gz": archives["python"].read_bytes()}) as server:
        official = official_at(server.url("/cifar-10-python.tar.gz"), archives["python"])
        _, provenance = fetch(
            "auto", 5, downloads=tmp_path, official=official, mirror=mirror_of(archives["images"]), progress=False
        )

    assert provenance["fell_back"] is False and "reason" not in provenance
    assert provenance["format"] == "python" and provenance["location"] == official["official"].location
    assert provenance["file"] == str(tmp_path / "cifar-10-python.tar.gz")


def test_auto_falls_back_to_the_mirror_loudly_when_the_official_server_is_unreachable(archives, tmp_path):
    url = f"http://127.0.0.1:{closed_loopback_port()}/cifar-10-python.tar.gz"
    mirror = mirror_of(archives["images"])
    start = time.perf_counter()

    with pytest.warns(
        MirrorFallbackWarning,
        match=rf"using the bundled mirror {archives['images']}, tiny mirror, because the official release could not be fetched: {url}: unreachable",
    ):
        dataset, provenance = fetch(
            "auto", 5, downloads=tmp_path, official=official_at(url, md5_hex="0" * 32), mirror=mirror, progress=False
        )

    assert time.perf_counter() - start < 5
    # why it fell back is the warning's (the console's), never the provenance's: a DVC output
    assert provenance["fell_back"] is True and url not in json.dumps(provenance)
    assert provenance["format"] == "image-folder" and provenance["dataset"] == "tiny mirror"
    assert provenance["location"] == str(archives["images"]) and provenance["sha256"] == mirror.sha256
    assert dataset.x_test.shape == (10, 32, 32, 3)


def test_auto_falls_back_within_the_timeout_when_the_server_never_answers(archives, tmp_path):
    with socket.socket() as silent:  # accepts connections into its backlog, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/cifar-10-python.tar.gz"
        start = time.perf_counter()
        with pytest.warns(MirrorFallbackWarning, match=r"no answer within 0.5 s"):
            _, provenance = fetch(
                "auto",
                0.5,
                downloads=tmp_path,
                official=official_at(url, md5_hex="0" * 32),
                mirror=mirror_of(archives["images"]),
                progress=False,
            )
        elapsed = time.perf_counter() - start

    assert provenance["fell_back"] is True
    assert elapsed < 0.5 + 2.0  # the timeout, plus reading the tiny mirror


def test_auto_refuses_a_mirror_whose_sha256_does_not_match(archives, tmp_path):
    url = f"http://127.0.0.1:{closed_loopback_port()}/cifar-10-python.tar.gz"
    mirror = mirror_of(archives["images"], sha256_hex="f" * 64)

    with (
        pytest.warns(MirrorFallbackWarning),
        pytest.raises(
            DataError,
            match=r"img.tar.gz: sha256 is [0-9a-f]{64}; expected f{64}.*; and the official release could not be fetched",
        ),
    ):
        fetch("auto", 5, downloads=tmp_path, official=official_at(url, md5_hex="0" * 32), mirror=mirror, progress=False)


def test_a_known_archive_given_as_a_path_is_recognised_by_its_checksum(archives, tmp_path):
    official = official_at("http://127.0.0.1:9/unused", archives["python"])
    _, provenance = fetch(
        str(archives["python"]),
        5,
        downloads=tmp_path,
        official=official,
        mirror=mirror_of(archives["images"]),
        progress=False,
    )
    assert provenance["dataset"] == "tiny official" and provenance["location"] == str(archives["python"])


def test_an_unknown_source_says_what_is_accepted(tmp_path):
    with pytest.raises(DataError, match=r"data.source: 'oficial' is neither auto, official, official-binary, a URL"):
        fetch("oficial", 5, downloads=tmp_path, progress=False)


def test_the_bundled_mirror_matches_its_recorded_checksums():
    assert file_digests(ROOT / layout.MIRROR) == {"md5": MIRROR.md5, "sha256": MIRROR.sha256}
