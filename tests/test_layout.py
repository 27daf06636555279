"""dvc.yaml and scratchnet.study.layout name the same artifact paths (DVC reads no Python)."""

from pathlib import Path

import yaml

from scratchnet.data import MIRROR
from scratchnet.study import layout

ROOT = Path(__file__).resolve().parents[1]


def stage_paths(kind: str) -> set[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    paths = set()
    for stage in stages.values():
        body = stage.get("do", stage)
        for entry in body.get(kind, []):
            paths.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


def test_every_stage_output_is_a_layout_path():
    outs = stage_paths("outs") | stage_paths("metrics")
    named = {
        layout.SOURCE_FINGERPRINT,
        layout.DATA_RAW,
        layout.DATA_PROCESSED,
        layout.FIT_DIR,
        layout.STUDY_METRICS,
        layout.ABLATION_RUNS_CSV,
        layout.ABLATION_SUMMARY_CSV,
        layout.ABLATION_SUMMARY_JSON,
        layout.ABLATION_TABLES_MD,
        layout.SWEEP_PLOTS_DIR,
        layout.ATTACK_EXAMPLE,
        layout.ATTACK_SWEEP_CSV,
        layout.ATTACK_METRICS,
        *layout.ATTACK_IMAGES.values(),
        layout.ATTACK_SUCCESS_PLOT,
        layout.ATTACK_PLOTS_DIR,
        layout.REPORT_DIR,
        layout.model_path("${item}"),
        layout.train_dir("${item}"),
        layout.ABLATE_DIR,
    }
    assert {p.as_posix() for p in named} <= outs
    unnamed = outs - {p.as_posix() for p in named}
    assert not unnamed, f"dvc.yaml outputs missing from layout.py: {unnamed}"


def test_the_bundled_mirror_is_a_declared_dependency():
    assert layout.MIRROR.as_posix() in stage_paths("deps")
    assert layout.MIRROR.as_posix() == MIRROR.location  # the data library names the same file
