"""evaluate stage: gathers every run's test accuracy, judges every sweep, measures the distance
from the study, and writes it all as one summary, with the tables, the headline metrics and the
sweeps' plot data rendered from it. Prints one line."""

from scratchnet.files import write_json, write_text
from scratchnet.study import evaluation, layout, reproduction
from scratchnet.study.cli import stage_main
from scratchnet.study.params import load_params
from scratchnet.study.plots.dvc_data import write_sweep_plots


def main() -> None:
    params = load_params()
    results = evaluation.ablation_results(params)
    train = {m: evaluation.read_result(layout.train_run(m)) for m in params["models"]}
    study = reproduction.load_study(layout.STUDY_NUMBERS, params["models"])
    summary = evaluation.build_summary(params, results, train, study)

    write_json(layout.ABLATION_SUMMARY_JSON, evaluation.summary_to_json(summary))
    write_text(layout.ABLATION_RUNS_CSV, evaluation.runs_frame(results).to_csv(index=False))
    write_text(layout.ABLATION_SUMMARY_CSV, evaluation.summary_frame(summary).to_csv(index=False))
    write_text(
        layout.ABLATION_TABLES_MD, "# Ablations: test accuracy over seeds\n\n" + evaluation.markdown_tables(summary)
    )
    write_sweep_plots(summary)
    write_json(layout.STUDY_METRICS, evaluation.headline_metrics(summary))
    print(f"evaluate: {evaluation.summary_line(summary)}")


if __name__ == "__main__":
    stage_main("evaluate", main)
