"""The data `dvc plots show` draws for each sweep: one file per sweep,
layout.sweep_plot_data(model, key), so a sweep added in params.yaml is drawn with no edit to
dvc.yaml, whose `plots:` names only the folder (results/evaluate/sweeps/) and draws each file
with the `sweep` template (.dvc/plots/sweep.json), titled from its name `<model>.<key>.json`.
Each file is a list of rows, numbers as JSON numbers:

    [{"value": 0.01, "test_acc_mean": 0.52, "test_acc_std": 0.004, "robust_targeted_mean": 0.61,
      "robust_targeted_std": 0.02, "is_baseline": false}, ...]

(null where every seed diverged; robust_*: the runs' targeted attack success at the robustness
budget, null where not measured). dvc.yaml draws both means as the template's two y fields
(`<name>_mean`, its bars from `<name>_std`). A sweep of labels (`init: [gaussian]`) has no numeric axis:
it is in the report's tables and figures, not here.
"""

from __future__ import annotations

from scratchnet.files import write_json
from scratchnet.study import layout
from scratchnet.study.analysis import is_number


def write_sweep_plots(summary) -> None:
    """Writes the file of every numeric sweep of the evaluation summary."""
    # A declared DVC output even when no sweep is run.
    layout.SWEEP_PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    for model, sweep in summary.sweeps():
        if not all(is_number(r.value) for r in sweep.rows):
            continue
        fooled = sweep.robustness.fooled if sweep.robustness else [None] * len(sweep.rows)
        write_json(
            layout.sweep_plot_data(model, sweep.param),
            [
                {
                    "value": r.value,
                    "test_acc_mean": r.mean,
                    "test_acc_std": r.std,
                    "robust_targeted_mean": f and f.mean,
                    "robust_targeted_std": f and f.std,
                    "is_baseline": r.is_baseline,
                }
                for r, f in zip(sweep.rows, fooled)
            ],
        )
