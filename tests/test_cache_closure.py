"""The run cache's code key (study/cache.py code_hash): the source of the run function's import
closure, computed from its imports, plus NumPy and the BLAS library. Each test edits a copy of
the scratchnet package, never the installed one."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import scratchnet
from scratchnet.study.cache import blas_identity, code_hash, import_closure, numeric_environment
from scratchnet.study.classifier import train_run

RUN_MODULE = train_run.__module__  # scratchnet.study.classifier
ENV = {"numpy": "1.0", "blas": []}  # a fixed environment: the tests edit code, not libraries


@pytest.fixture
def package(tmp_path) -> Path:
    """A copy of the scratchnet package's sources."""
    copy = tmp_path / "scratchnet"
    shutil.copytree(Path(scratchnet.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def key(package: Path) -> str:
    return code_hash(train_run, package=package, environment=ENV)


def touch(file: Path) -> None:
    with open(file, "a") as f:
        f.write("\n# an edit\n")


def module_path(package: Path, name: str) -> Path:
    base = package.joinpath(*name.split(".")[1:])
    return base / "__init__.py" if (base / "__init__.py").exists() else base.with_suffix(".py")


def test_the_closure_is_the_numeric_code_and_the_params_rules_not_tracking_or_the_report():
    closure = set(import_closure(RUN_MODULE))
    assert {
        "scratchnet.study.classifier",
        "scratchnet.study.params",
        "scratchnet.training",
        "scratchnet.nn.models",
        "scratchnet.nn.layers",
        "scratchnet.nn.losses",
        "scratchnet.nn.optim",
        "scratchnet.nn.normalize",
        "scratchnet.nn.init",
    } <= closure
    assert "scratchnet" in closure and "scratchnet.nn" in closure  # packages run their __init__
    for edge in ("tracking", "runs", "sweep", "cache", "report", "plots", "evaluation", "pyfunc_model"):
        assert not [m for m in closure if m.startswith(f"scratchnet.study.{edge}")], edge


def test_touching_any_module_of_the_closure_changes_the_key(package):
    base = key(package)
    closure = import_closure(RUN_MODULE, package)
    assert len(closure) >= 10
    seen = {base}
    for name in closure:
        touch(module_path(package, name))
        seen.add(key(package))
    assert len(seen) == len(closure) + 1  # every edit gave a new key


@pytest.mark.parametrize(
    "edge",
    [
        "study/report/sections.py",
        "study/tracking.py",
        "study/plots/study.py",
        "study/runs.py",
        "study/sweep.py",
        "study/evaluation.py",
        "study/attack_study.py",
    ],
)
def test_touching_a_report_tracking_or_stage_module_keeps_the_key(package, edge):
    base = key(package)
    touch(package / edge)
    assert key(package) == base


def test_a_module_the_run_function_starts_importing_enters_the_key_with_no_list_to_edit(package):
    base = key(package)
    (package / "study" / "newhelper.py").write_text("SCALE = 1.0\n")
    assert key(package) == base  # not imported yet: not in the closure
    classifier = package / "study" / "classifier.py"
    classifier.write_text(
        classifier.read_text().replace(
            "from scratchnet.study.params import model_config\n",
            "from scratchnet.study.params import model_config\nfrom scratchnet.study.newhelper import SCALE\n",
        )
    )
    imported = key(package)
    assert "scratchnet.study.newhelper" in import_closure(RUN_MODULE, package)
    touch(package / "study" / "newhelper.py")
    assert key(package) != imported  # its edits now retrain


def test_relative_and_function_level_imports_are_followed(package):
    (package / "nn" / "extra.py").write_text("X = 1\n")
    (package / "nn" / "deeper.py").write_text("Y = 2\n")
    optim = package / "nn" / "optim.py"
    optim.write_text(
        optim.read_text() + "\nfrom . import extra\n\n\ndef later():\n    from .deeper import Y\n    return Y\n"
    )
    closure = import_closure(RUN_MODULE, package)
    assert {"scratchnet.nn.extra", "scratchnet.nn.deeper"} <= set(closure)


def test_the_key_names_numpy_and_the_blas_library_not_its_path(package):
    env = numeric_environment()
    assert env["numpy"] == np.__version__
    assert env["blas"] == blas_identity() and env["blas"], "NumPy's BLAS is loaded"
    assert set(env["blas"][0]) == {"internal_api", "version", "architecture"}
    assert code_hash(train_run, package=package, environment={**ENV, "numpy": "2.0"}) != key(package)
    other_blas = {**ENV, "blas": [{"internal_api": "openblas", "version": "0.3.27", "architecture": "SkylakeX"}]}
    assert code_hash(train_run, package=package, environment=other_blas) != key(package)


@pytest.mark.parametrize("stage", ["train", "ablate"])
def test_the_training_stages_depend_on_every_module_of_the_closure(stage):
    # A result holds its run's key, and the key covers the closure: DVC must rerun the stage
    # when any of it changes, as the run cache retrains.
    import yaml

    root = Path(__file__).resolve().parents[1]
    deps = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]
    deps = (deps.get("do") or deps)["deps"]
    package = Path(scratchnet.__file__).parent
    for name, file in import_closure(RUN_MODULE).items():
        rel = Path("src") / file.relative_to(package.parent)
        assert any(rel == Path(d) or Path(d) in rel.parents for d in deps), f"{stage} lacks {rel} ({name})"
