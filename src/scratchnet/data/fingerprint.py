"""What `data.source` holds now, in a few bytes: the change detector for a local source.

DVC reruns a stage when a declared dependency changes, but `data.source` is a param naming a
path (or `auto`, or a URL), and dvc.yaml cannot declare a dependency whose path comes from a
param that is not always a path. So the `source` stage, run on every `dvc repro`, writes this
fingerprint, and `fetch` depends on the fingerprint file: DVC reruns fetch, and what follows,
only when the fingerprint changes. Its cost: 2 s of CPU for a folder of the 60,000 CIFAR-10
JPEGs (236 MB on disk, the extracted mirror), 0.04 s for the 20 MB mirror archive, nothing
for a named release.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .sources import _is_url, file_digests

#: sources that name a release, not a local file: their content is fixed by published
#: checksums (and the bundled mirror is a dependency of `fetch` itself).
NAMED = ("auto", "official", "official-binary")


def source_fingerprint(source: str, root: Path | str = ".") -> dict:
    """A JSON-able record that changes whenever the data `source` points at changes.

    source: params `data.source`; a relative path is taken from `root`.
    - a file (an archive): its size and sha256;
    - a directory (an image folder or an unpacked release): the number of files and one
      sha256 over the sorted lines `<relative path>\\t<size>\\t<sha256 of content>`, so adding,
      deleting, renaming or replacing any file changes it;
    - a named release or a URL: the source alone (a URL is downloaded on every fetch anyway);
    - a path that does not exist: marked missing, and `fetch` then says what is wrong.
    A local file or folder's fingerprint is its content only, not where it lies: the same files
    at another path (another clone, an absolute data.source) give the same bytes. Pointing
    data.source elsewhere still reruns fetch, which depends on the param itself.
    """
    if source in NAMED or _is_url(source):
        return {"source": source, "kind": "named" if source in NAMED else "url"}
    path = Path(root) / source
    if path.is_file():
        return {"kind": "file", "bytes": path.stat().st_size, "sha256": file_digests(path)["sha256"]}
    if path.is_dir():
        listing = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            relative = file.relative_to(path).as_posix()
            listing.update(f"{relative}\t{file.stat().st_size}\t{file_digests(file)['sha256']}\n".encode())
        return {"kind": "directory", "files": len(files), "sha256": listing.hexdigest()}
    return {"source": source, "kind": "missing"}
