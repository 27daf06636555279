"""Where every artifact of the study lives, relative to the project root.

The one place in Python that names output paths. `dvc.yaml` names the same paths (it must:
DVC reads no Python), and `tests/test_layout.py` checks that the two agree.

    data/source.json     source:      fingerprint of data.source's files (fetch reruns on change)
    data/raw/            fetch:       cifar10.npz (uint8 images) + provenance.json
    data/processed/      preprocess:  uint8 .npy arrays (memory-mappable) + pixel stats.npz + meta.json
    results/fit/         fit:         fit.json (loss curve, optimum)
    results/train/<m>/   train:       run.json, history.csv (the curve `dvc plots` and the report
                                      draw); models/<m>.npz
    results/ablate/<m>/  ablate:      <run>.json, one per ablation value (all seeds inside)
    results/evaluate/    evaluate:    the summary (every number and verdict; the report renders it),
                                      tables (CSV + Markdown), plot data
    results/attack/      attack:      example.json, sweep.csv, three PNGs
    metrics/             evaluate:    study.json; attack: attack.json. The headline numbers
                                      (`dvc metrics show`), small and kept in git (cache: false)
                                      so a clone compares its runs with the reference run's
    report/              report:      report.md, report.html, figures/
"""

from __future__ import annotations

from pathlib import Path

SOURCE_FINGERPRINT = Path("data/source.json")
DATA_RAW = Path("data/raw")
RAW_ARRAYS = DATA_RAW / "cifar10.npz"
PROVENANCE = DATA_RAW / "provenance.json"
DOWNLOADS = Path("data/downloads")  # verified official archives, reused by later fetches
MIRROR = Path("data/mirror/cifar-10-jpeg.tar.gz")
PARAMS = Path("params.yaml")

DATA_PROCESSED = Path("data/processed")
STATS = DATA_PROCESSED / "stats.npz"
PROCESSED_META = DATA_PROCESSED / "meta.json"


def split_arrays(split: str) -> tuple[Path, Path]:
    """(X, y) .npy paths of a split: 'train', 'val' or 'test'. X: (N, 3072) uint8 pixels, y: (N,) int64."""
    return DATA_PROCESSED / f"X_{split}.npy", DATA_PROCESSED / f"y_{split}.npy"


RESULTS = Path("results")
FIT_DIR = RESULTS / "fit"
FIT_RESULT = FIT_DIR / "fit.json"
FIT_CURVE = FIT_DIR / "curve.csv"

MODELS = Path("models")


def model_path(model: str) -> Path:
    return MODELS / f"{model}.npz"


def train_dir(model: str) -> Path:
    return RESULTS / "train" / model


def train_run(model: str) -> Path:
    return train_dir(model) / "run.json"


def train_history(model: str) -> Path:
    """The baseline's per-epoch CSV: epoch, loss, train_acc, val_acc, lr."""
    return train_dir(model) / "history.csv"


ABLATE_DIR = RESULTS / "ablate"


def ablate_run(model: str, run: str) -> Path:
    """One ablation value's result, e.g. ablate_run('softmax', 'reg=0.001')."""
    return ABLATE_DIR / model / f"{run}.json"


EVALUATE_DIR = RESULTS / "evaluate"
METRICS_DIR = Path("metrics")  # short paths: `dvc metrics show` prints each as a row's first column


# The headline numbers (`dvc metrics show`, `dvc exp show`): few, with names unique across the
# files, so DVC prints them without a path prefix (evaluation.headline_metrics, attack_study.AttackStudy.headline).
STUDY_METRICS = METRICS_DIR / "study.json"  # evaluate: acc.<model>, gap, agree


ABLATION_RUNS_CSV = EVALUATE_DIR / "ablation_runs.csv"  # one row per (model, param, value, seed)
ABLATION_SUMMARY_CSV = EVALUATE_DIR / "ablation_summary.csv"  # one row per (model, param, value)
ABLATION_SUMMARY_JSON = EVALUATE_DIR / "ablation_summary.json"  # evaluation.Summary: what the report reads
ABLATION_TABLES_MD = EVALUATE_DIR / "ablation_tables.md"
SWEEP_PLOTS_DIR = EVALUATE_DIR / "sweeps"  # <model>.<param>.json: value, test_acc_mean, test_acc_std, is_baseline


def sweep_plot_data(model: str, param: str) -> Path:
    return SWEEP_PLOTS_DIR / f"{model}.{param}.json"


ATTACK_DIR = RESULTS / "attack"
ATTACK_EXAMPLE = ATTACK_DIR / "example.json"
ATTACK_SWEEP_CSV = ATTACK_DIR / "sweep.csv"
ATTACK_METRICS = METRICS_DIR / "attack.json"  # attack: fooled
ATTACK_IMAGES = {name: ATTACK_DIR / f"{name}.png" for name in ("original", "adversarial", "difference")}
ATTACK_SUCCESS_PLOT = ATTACK_DIR / "success_vs_epsilon.png"
ATTACK_PLOTS_DIR = ATTACK_DIR / "plots"  # <norm>.csv: epsilon, targeted, untargeted (for `dvc plots`)


def attack_plot_data(norm: str) -> Path:
    return ATTACK_PLOTS_DIR / f"{norm}.csv"


REPORT_DIR = Path("report")
REPORT_MD = REPORT_DIR / "report.md"
REPORT_HTML = REPORT_DIR / "report.html"
REPORT_FIGURES = REPORT_DIR / "figures"

STUDY_NUMBERS = Path("reference/study_numbers.yaml")
