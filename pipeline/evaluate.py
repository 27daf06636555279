"""evaluate stage: gathers every run's test accuracy into tables, measures the distance from the
study, and writes the headline metrics and the sweeps' plot data. Prints one line."""

from scratchnet.files import write_csv, write_json, write_text
from scratchnet.study import evaluation, layout, reproduction
from scratchnet.study.cli import stage_main
from scratchnet.study.params import MODELS, load_params


def main() -> None:
    params = load_params()
    results = evaluation.ablation_results(params)
    summary = evaluation.summarize(params, results)
    dist = reproduction.distance(summary, reproduction.load_study(layout.STUDY_NUMBERS))

    write_text(layout.ABLATION_RUNS_CSV, evaluation.runs_frame(results).to_csv(index=False))
    write_text(layout.ABLATION_SUMMARY_CSV, evaluation.summary_frame(summary).to_csv(index=False))
    write_json(layout.ABLATION_SUMMARY_JSON, evaluation.summary_to_json(summary))
    write_text(layout.ABLATION_TABLES_MD, "# Ablations: test accuracy over seeds\n\n"
               + evaluation.markdown_tables(summary))
    # A declared DVC output even when no value differs from its baseline (no sweep to draw).
    layout.SWEEP_PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    for model, sweeps in summary.items():
        for param, rows in sweeps.items():
            write_csv(layout.sweep_plot_data(model, param),
                      [{"value": r.value, "test_acc_mean": r.mean, "test_acc_std": r.std,
                        "is_baseline": r.is_baseline} for r in rows],
                      ("value", "test_acc_mean", "test_acc_std", "is_baseline"))
    test_acc = {m: evaluation.read_result(layout.train_run(m))["seeds"][0]["test_acc"] for m in MODELS}
    write_json(layout.STUDY_METRICS, reproduction.headline_metrics(test_acc, dist))
    print(f"evaluate: {reproduction.summary_line(test_acc, dist)}")


if __name__ == "__main__":
    stage_main("evaluate", main)
