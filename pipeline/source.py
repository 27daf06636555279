"""source: fingerprint what `data.source` points at, so `fetch` reruns when those files change.

    python pipeline/source.py     (from the project root; DVC runs it on every `dvc repro`)

Reads params `data.source`; writes layout.SOURCE_FINGERPRINT (scratchnet.data.fingerprint says
what it holds). Unchanged files give a byte-identical fingerprint, so DVC skips fetch.
"""

from scratchnet.data.fingerprint import source_fingerprint
from scratchnet.files import write_json
from scratchnet.study import layout
from scratchnet.study.cli import stage_main
from scratchnet.study.params import load_params


def main() -> None:
    source = load_params()["data"]["source"]
    fingerprint = source_fingerprint(source)
    write_json(layout.SOURCE_FINGERPRINT, fingerprint)
    print(
        f"source: {source} ({fingerprint['kind']})"
        + (f", {fingerprint['files']} files" if "files" in fingerprint else "")
    )


if __name__ == "__main__":
    stage_main("source", main)
