"""evaluate stage: gathers every run's test accuracy into tables, DVC metrics and sweep plot data."""

import time

from scratchnet.study import evaluation, layout
from scratchnet.files import write_json, write_text
from scratchnet.study.cli import stage_main
from scratchnet.study.params import load_params


def main() -> None:
    started = time.perf_counter()
    params = load_params()
    runs = evaluation.ablation_runs(params)
    summary = evaluation.ablation_summary(params, runs)

    write_text(layout.ABLATION_RUNS_CSV, runs.to_csv(index=False))
    write_text(layout.ABLATION_SUMMARY_CSV, summary.to_csv(index=False))
    write_text(layout.ABLATION_TABLES_MD, "# Ablations: test accuracy over seeds\n\n"
               + evaluation.markdown_tables(summary))
    for (model, param), sweep in summary.groupby(["model", "param"], sort=False):
        table = sweep[["value", "test_acc_mean", "test_acc_std", "is_baseline"]]
        write_text(layout.sweep_plot_data(model, param), table.to_csv(index=False))
    metrics = evaluation.metrics(params, summary)
    metrics["seconds"] = time.perf_counter() - started
    write_json(layout.METRICS, metrics)
    print(evaluation.markdown_tables(summary))


if __name__ == "__main__":
    stage_main("evaluate", main)
