"""What `dvc plots show` reads: one file per sweep that ran (study/plots/dvc_data.py), drawn by
the `sweep` template over the folder dvc.yaml names, on a page that carries Vega itself
(study/plots/offline.py). The drawing, offline in Chromium: tests/test_newcomer_e2e.py."""

import json
from pathlib import Path
from types import SimpleNamespace

import yaml

from scratchnet.study import layout
from scratchnet.study.analysis import SweepRow
from scratchnet.study.plots.dvc_data import write_sweep_plots

ROOT = Path(__file__).resolve().parents[1]


def summary_of(rows: dict) -> SimpleNamespace:
    """What write_sweep_plots reads of evaluate's summary: sweeps() -> (model, sweep)."""
    return SimpleNamespace(
        sweeps=lambda: [
            (model, SimpleNamespace(param=param, rows=r, robustness=None))
            for model, sweeps in rows.items()
            for param, r in sweeps.items()
        ]
    )


def test_each_numeric_sweep_of_the_summary_is_one_file_named_model_dot_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_sweep_plots(
        summary_of(
            {
                "softmax": {"reg": [SweepRow(0.0, 0.41, 0.002, 3, is_baseline=True), SweepRow(0.1, None, None, 3, 3)]},
                "twolayer": {
                    "init": [SweepRow("he", 0.5, 0.01, 3, is_baseline=True), SweepRow("gaussian", 0.4, 0.0, 3)]
                },
            }
        )
    )
    assert sorted(p.name for p in layout.SWEEP_PLOTS_DIR.iterdir()) == ["softmax.reg.json"]  # labels: report only
    assert json.loads(layout.sweep_plot_data("softmax", "reg").read_text()) == [
        {
            "value": 0.0,
            "test_acc_mean": 0.41,
            "test_acc_std": 0.002,
            "robust_targeted_mean": None,
            "robust_targeted_std": None,
            "is_baseline": True,
        },
        {
            "value": 0.1,
            "test_acc_mean": None,
            "test_acc_std": None,
            "robust_targeted_mean": None,
            "robust_targeted_std": None,
            "is_baseline": False,
        },
    ]


def test_no_sweep_still_leaves_the_declared_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_sweep_plots(summary_of({"softmax": {}, "twolayer": {}}))
    assert layout.SWEEP_PLOTS_DIR.is_dir()


def test_dvc_yaml_plots_the_sweeps_folder_not_a_list_of_sweeps():
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    folder = [p[layout.SWEEP_PLOTS_DIR.as_posix()] for p in plots if layout.SWEEP_PLOTS_DIR.as_posix() in p]
    assert folder == [
        {
            "template": "sweep",
            "x": "value",
            "y": ["test_acc_mean", "robust_targeted_mean"],
            "x_label": "the swept value (log scale)",
            "y_label": "test accuracy / targeted attack success",
        }
    ]
    assert not [p for p in plots if "sweeps/" in json.dumps(p)]


def test_the_sweep_template_draws_on_a_log_axis_from_the_smallest_value():
    template = json.loads((ROOT / ".dvc/plots/sweep.json").read_text())
    scales = [
        layer["encoding"]["x"]["scale"] for layer in template["layer"] if "scale" in layer["encoding"].get("x", {})
    ]
    assert scales and all(s == {"type": "log", "nice": False, "padding": 16} for s in scales)
    assert "<DVC_METRIC_TITLE>" in template["params"][0]["expr"]  # titled from the file's name


def test_dvc_is_told_to_use_the_offline_page():
    config = (ROOT / ".dvc/config").read_text()
    assert "[plots]" in config and "html_template = plots/page.html" in config
