"""Benchmark: peak memory and time of `fetch` on real-size CIFAR-10 and on hostile inputs (issue 16).

    .venv/bin/python bench/hostile_archives.py                   # from the project root
    .venv/bin/python bench/hostile_archives.py --compare-with dffdce7   # also the normal inputs
                                                                 # on an older commit's code

Each input is fetched by `scratchnet.data.fetch` in its own fresh Python process; its peak
resident memory is that child's VmHWM (see `run_fetch`), its time the process's wall time.
All inputs are built here in a temporary folder, in one run:

- normal: the bundled mirror (image folders, 60,000 JPEGs), and the release-size python and
  binary archives made from the mirror's pixels (the official releases' layouts and sizes);
- hostile: the issue's archives (a 3 GB zero member in each layout, a batch that calls
  `numpy.ndarray((700000, 3072))`, an object-dtype array), a 3 GB pax header, pickles that
  ask for memory by opcode count or memo index, too many members, and downloads that announce
  or send more than the release they claim to be (from a server on 127.0.0.1).

Prints a Markdown section for bench/RESULTS.md. Hostile inputs are run on the current code only:
on older code some take several GB.
"""

from __future__ import annotations

import argparse
import http.server
import io
import os
import pickle
import platform
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the archive builders the tests use

from cifar_archives import chw_rows, zero_bomb_tar_gz  # noqa: E402

from scratchnet.data import CIFAR10_CLASSES, read_cifar10  # noqa: E402
from scratchnet.data.sources import MIRROR  # noqa: E402

GB3 = 3 << 30

CHILD = """
import dataclasses, sys
from scratchnet.data import DataError, fetch
from scratchnet.data.sources import OFFICIAL
source, downloads, url = sys.argv[1], sys.argv[2], sys.argv[3]
# A URL stands in for the official python release, so that its size limit is the release's.
official = {**OFFICIAL, "official": dataclasses.replace(OFFICIAL["official"], location=url)} if url else OFFICIAL
try:
    dataset, _ = fetch(source, 5, downloads=downloads, official=official, progress=False)
    print(f"read {len(dataset.y_train):,} + {len(dataset.y_test):,} images")
except DataError as err:
    print(f"refused: {err}")
finally:
    with open("/proc/self/status") as status:
        print(next(line for line in status if line.startswith("VmHWM")).strip())
"""


def run_fetch(source: str, downloads: Path, src: Path, url: str = "") -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, outcome line) of fetch(source) in a child using the code in `src`.

    The peak is the child's VmHWM (/proc/self/status), the high-water mark of its own process
    image; getrusage's ru_maxrss is not used because Linux carries it across fork and exec, so
    a child would report at least its parent's peak."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, source, str(downloads), url], env=env, cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    peak_kb = int(lines[-1].split()[1])
    outcome = lines[-2] if len(lines) > 1 else (done.stderr.strip().splitlines() or ["?"])[-1]
    return seconds, peak_kb / 1024, outcome


# --- inputs ------------------------------------------------------------------------------------


def release_size_archives(folder: Path) -> None:
    """The mirror's pixels in the python and binary releases' layouts, 10,000 images a batch."""
    dataset, _ = read_cifar10(ROOT / MIRROR.location)
    rows = {"train": chw_rows(dataset.x_train), "test": chw_rows(dataset.x_test)}
    labels = {"train": dataset.y_train, "test": dataset.y_test}

    def batches():
        for i in range(5):
            yield (
                f"data_batch_{i + 1}",
                rows["train"][i * 10_000 : (i + 1) * 10_000],
                labels["train"][i * 10_000 : (i + 1) * 10_000],
            )
        yield "test_batch", rows["test"], labels["test"]

    python, binary = (folder / file for file in RELEASE_SIZE.values())
    with tarfile.open(python, "w:gz", compresslevel=1) as tar:
        for name, x, y in batches():
            _add(
                tar,
                f"cifar-10-batches-py/{name}",
                pickle.dumps(
                    {
                        b"batch_label": name.encode(),
                        b"labels": y.tolist(),
                        b"data": x,
                        b"filenames": [f"{name}_{j}.png".encode() for j in range(len(y))],
                    },
                    protocol=4,
                ),
            )
        _add(
            tar,
            "cifar-10-batches-py/batches.meta",
            pickle.dumps({b"label_names": [n.encode() for n in CIFAR10_CLASSES]}, protocol=2),
        )
    with tarfile.open(binary, "w:gz", compresslevel=1) as tar:
        for name, x, y in batches():
            _add(tar, f"cifar-10-batches-bin/{name}.bin", np.concatenate([y[:, None].astype(np.uint8), x], 1).tobytes())
        _add(tar, "cifar-10-batches-bin/batches.meta.txt", ("\n".join(CIFAR10_CLASSES) + "\n").encode())


RELEASE_SIZE = {
    "python release layout, release size": "cifar-10-python.tar.gz",
    "binary release layout, release size": "cifar-10-binary.tar.gz",
}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


class CallsNdarray:
    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def __reduce__(self):
        return np.ndarray, (self.shape, self.dtype)


def hostile_archives(folder: Path) -> dict[str, Path]:
    meta = pickle.dumps({b"label_names": [n.encode() for n in CIFAR10_CLASSES]}, protocol=2)
    small = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
    py = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

    def python_with(first: bytes | int) -> dict:
        return {
            "cifar-10-batches-py/data_batch_1": first,
            **{f"cifar-10-batches-py/{n}": small for n in py[1:]},
            "cifar-10-batches-py/batches.meta": meta,
        }

    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    built = {
        "python batch of 3 GB zeros (the issue's archive)": python_with(GB3),
        "binary batch of 3 GB zeros": {"cifar-10-batches-bin/data_batch_1.bin": GB3},
        "image file of 3 GB zeros": {"cifar-10-png/train/cat/0001.png": GB3},
        "pax header of 3 GB": {"cifar-10-png/train/cat/0000.png": b"x", pax: GB3},
        "batch calling ndarray((700000, 3072), 'u1')": python_with(
            pickle.dumps({b"data": CallsNdarray((700_000, 3072), "u1"), b"labels": [0]}, protocol=2)
        ),
        "batch calling ndarray((10**6,), object)": python_with(
            pickle.dumps({b"data": CallsNdarray((10**6,), "O"), b"labels": [0]}, protocol=2)
        ),
        "batch of 60 MB of empty lists (3.4 GB of objects)": python_with(b"\x80\x02(" + b"]" * (60 << 20) + b"l."),
        "batch naming memo slot 2**30 (16 GB memo table)": python_with(
            b"\x80\x02N" + b"r" + (1 << 30).to_bytes(4, "little") + b"."
        ),
        "200,000 empty members": {f"cifar-10-png/train/cat/{i}.png": b"" for i in range(200_000)},
    }
    return {
        name: zero_bomb_tar_gz(folder / f"hostile-{i}.tar.gz", members)
        for i, (name, members) in enumerate(built.items())
    }


class ZeroServer:
    """127.0.0.1 server of endless zeros: /announced says Content-Length 3 GB, /unannounced none."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                if self.path == "/announced/cifar-10-python.tar.gz":
                    self.send_header("Content-Length", str(GB3))
                self.end_headers()
                chunk = bytes(1 << 20)
                try:
                    for _ in range(GB3 >> 20):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-with", metavar="REV", help="also fetch the normal inputs with this commit's code")
    parser.add_argument("--build-release-size", metavar="DIR", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_release_size:  # in a child: a parent holding the decoded mirror would pass its
        release_size_archives(args.build_release_size)  # resident pages on to every child it forks
        return
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        tmp = Path(tmp)
        sources = {"src": ROOT / "src"}
        if args.compare_with:
            subprocess.run(f"git archive {args.compare_with} src | tar -x -C {tmp}", shell=True, cwd=ROOT, check=True)
            sources = {args.compare_with: tmp / "src", "this code": ROOT / "src"}
        subprocess.run([sys.executable, __file__, "--build-release-size", str(tmp)], check=True)
        normal = {
            "bundled mirror (image folders, JPEG)": ROOT / MIRROR.location,
            **{name: tmp / file for name, file in RELEASE_SIZE.items()},
        }
        rows = []
        for name, path in normal.items():
            for label, src in sources.items():  # old and new interleaved, so load hits both alike
                seconds, mb, outcome = run_fetch(str(path), tmp / "dl", src)
                rows.append(
                    (
                        f"{name}" + (f" [{label}]" if args.compare_with else ""),
                        f"{path.stat().st_size / 2**20:.1f} MB",
                        seconds,
                        mb,
                        outcome,
                    )
                )
        normal_peak = max(mb for name, _, _, mb, _ in rows if not args.compare_with or name.endswith("[this code]"))
        for name, path in hostile_archives(tmp).items():
            seconds, mb, outcome = run_fetch(str(path), tmp / "dl", ROOT / "src")
            rows.append(
                (name, f"{path.stat().st_size / 2**20:.1f} MB", seconds, mb, outcome.replace(str(tmp), "<tmp>"))
            )
        server = ZeroServer()
        for name, path in {
            "download announcing 3 GB for the 163 MB release": "/announced/cifar-10-python.tar.gz",
            "download of endless zeros, no length, for the release": "/unannounced/cifar-10-python.tar.gz",
        }.items():
            url = server.url(path)
            seconds, mb, outcome = run_fetch("official", tmp / "dl", ROOT / "src", url=url)
            rows.append((name, "-", seconds, mb, outcome))
        server.httpd.shutdown()

    hostile_peak = max(mb for name, _, _, mb, _ in rows[len(normal) * len(sources) :])
    lines = [
        "## Hostile archives (issue 16)",
        "",
        f"Command: `.venv/bin/python bench/hostile_archives.py{' --compare-with ' + args.compare_with if args.compare_with else ''}` "
        f"(each input fetched by `fetch` in a fresh child process; peak = the child's VmHWM), "
        f"{platform.machine()}, {os.cpu_count()} cores (1-min load average {load:.1f} at start), "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| input | archive | wall time (s) | peak RSS (MB) | outcome |",
        "| --- | ---: | ---: | ---: | --- |",
        *(
            f"| {name} | {size} | {s:.1f} | {mb:.0f} | {outcome[:150].replace('|', '/')} |"
            for name, size, s, mb, outcome in rows
        ),
        "",
        "(`<tmp>`: the run's temporary folder.)",
        "",
        f"Peak over the hostile inputs: {hostile_peak:.0f} MB; over the normal ones (this code): {normal_peak:.0f} MB. "
        f"Target (hostile no higher than normal): {'met' if hostile_peak <= normal_peak else 'NOT met'}.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
