"""The locked environment (requirements.lock, `make lock`): every dependency pyproject.toml
declares is pinned in the lock within its declared range, with hashes, and the lock names no
machine's paths or indexes. A dependency added to pyproject.toml without `make lock` fails here."""

import re
from pathlib import Path

import pytest
import tomllib
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[1]
LOCK = PROJECT / "requirements.lock"
LOCKED_EXTRAS = ("pipeline", "dev")  # `make venv` installs these; `mutation` is bench-only


def declared() -> list[Requirement]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        names += project["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


def pins(text: str) -> dict[str, list[tuple[str, Marker | None]]]:
    """name -> [(version, marker)]: a universal lock may pin a package once per marker."""
    found: dict[str, list] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if match:
            name, _, version, marker = match.groups()
            found.setdefault(canonicalize_name(name), []).append((version, Marker(marker) if marker else None))
    return found


def disagreements(requirements: list[Requirement], locked: dict) -> list[str]:
    """What keeps the lock from installing `requirements` within their ranges on this
    interpreter (markers evaluated here: CI runs the same interpreter as `make venv`)."""
    problems = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        here = [v for v, marker in locked.get(name, []) if marker is None or marker.evaluate()]
        if not here:
            problems.append(f"{req.name} is not in {LOCK.name}")
        elif not all(req.specifier.contains(v, prereleases=True) for v in here):
            problems.append(f"{req.name} is pinned to {', '.join(here)}, outside {req.specifier}")
    return problems


def test_every_declared_dependency_is_pinned_in_the_lock_within_its_range():
    assert disagreements(declared(), pins(LOCK.read_text())) == []


def test_extras_of_a_dependency_are_locked_too():
    # dask[distributed] needs distributed itself in the lock
    locked = pins(LOCK.read_text())
    for req in declared():
        if req.name == "dask" and "distributed" in req.extras:
            assert "distributed" in locked


@pytest.mark.parametrize(
    "requirement, expected",
    [
        ("numpy>=1.24", []),
        ("numpy>=9.0", ["numpy is pinned to"]),
        ("a-package-nobody-locked>=1.0", ["a-package-nobody-locked is not in"]),
    ],
)
def test_a_dependency_missing_from_the_lock_or_outside_its_range_is_named(requirement, expected):
    problems = disagreements([Requirement(requirement)], pins(LOCK.read_text()))
    assert len(problems) == len(expected)
    assert all(p.startswith(e) for p, e in zip(problems, expected))


def test_every_pin_is_exact_and_hashed():
    text = LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])  # after the two header lines
    assert len(entries) > 100
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9._\[\]-]+==", entry), entry[:80]
        assert "--hash=sha256:" in entry, entry[:80]


def test_the_lock_names_no_machine_path_or_index_and_no_bench_only_package():
    text = LOCK.read_text()
    for forbidden in (
        "file:",
        "/opt/",
        "/home/",
        "/work/",
        "/tmp/",
        "--index-url",
        "--extra-index-url",
        "--find-links",
        "-f ",
        "http://",
        "https://",
    ):
        assert forbidden not in text, forbidden
    assert "torch" not in pins(text)  # the benchmarks' torch is not part of the study's environment


def test_make_lock_writes_the_lock_with_the_command_its_header_names():
    makefile = (PROJECT / "Makefile").read_text()
    command = " ".join(
        re.search(r"^LOCK_CMD := (.*?)(?<!\\)$", makefile, re.M | re.S)
        .group(1)
        .replace("\\\n", " ")
        .replace("$(LOCK)", LOCK.name)
        .split()
    )
    header = LOCK.read_text().splitlines()[1].lstrip("# ").strip()
    assert header == command
