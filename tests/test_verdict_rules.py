"""The rules that decide what the report claims, pinned on made-up numbers: the verdict on a
sweep, the agreement with the study, the reproduction distance and the run-cache key."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from scratchnet.study.analysis import SweepRow as Row
from scratchnet.study.analysis import Trend, judge, row_of
from scratchnet.study.cache import RunCache, data_identity, robustness_entry_key, run_key
from scratchnet.study.reproduction import StudyNumbersError, compare, distance, load_study, study_rows


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rows(means, values=(1, 2, 3), std=0.125, n=3):
    return [Row(v, m, None if m is None else std, n, n if m is None else 0) for v, m in zip(values, means)]


def table(accs, values=(1, 2, 3), conclusion=None):
    return {"rows": [{"value": v, "test_acc": a} for v, a in zip(values, accs)], "conclusion": conclusion}


def comparison(ours, theirs, param="reg"):
    return compare("softmax", param, ours, judge(ours), theirs)


# ----------------------------------------------------------------------------- the run-cache key


def test_the_run_key_is_the_sha256_of_the_runs_canonical_json_so_cached_runs_outlive_a_release():
    # Renaming a field or changing the JSON form would silently retrain every cached run.
    config = {"lr": 0.005, "epochs": 2}
    assert run_key("softmax", config, 0, "d", "c") == sha256(
        '{"code":"c","config":{"epochs":2,"lr":0.005},"data":"d","model":"softmax","seed":0}'
    )


def test_a_robustness_measurement_is_keyed_by_the_run_key_and_its_arguments_canonically():
    assert robustness_entry_key("k", {"epsilons": [50], "budget": 91.0}) == sha256(
        '{"robustness":{"budget":91.0,"epsilons":[50]},"run":"k"}'
    )


def test_the_data_identity_is_the_sha256_of_its_parts_and_needs_no_statistics_file(tmp_path):
    stats = tmp_path / "stats.npz"
    stats.write_bytes(b"stats")
    assert data_identity("b", {"seed": 0}, stats) == sha256(
        f'{{"arrays_sha256":"b","preprocess":{{"seed":0}},"stats":"{sha256("stats")}"}}'
    )
    assert data_identity("b", {"seed": 0}, None) == sha256('{"arrays_sha256":"b","preprocess":{"seed":0},"stats":null}')


def test_an_explicit_retrain_flag_overrides_the_environment_and_0_means_no(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_RETRAIN", "1")
    assert RunCache(tmp_path, retrain=False).retrain is False
    assert RunCache(tmp_path).retrain is True
    monkeypatch.setenv("SCRATCHNET_RETRAIN", "0")
    assert RunCache(tmp_path).retrain is False
    assert RunCache(tmp_path, retrain=True).retrain is True


# ------------------------------------------------------------------------------- a sweep's rows


def test_a_diverged_seed_is_left_out_of_the_mean_even_if_its_record_holds_an_accuracy():
    records = [
        {"seed": 0, "test_acc": 0.40, "diverged": False},
        {"seed": 1, "test_acc": 0.10, "diverged": True, "diverged_epoch": 2},
    ]
    row = row_of(0.1, records)
    assert row.mean == 0.40 and row.std == 0.0 and row.n_diverged == 1 and row.n_converged == 1


# --------------------------------------------------------------------------- the study's numbers


GOOD = {
    "title": "t",
    "source": "s",
    "attack": {},
    "softmax": {"test_acc": 0.41, "baseline": {}, "ablations": {"lr": {"rows": [{"value": 1, "test_acc": 0.4}]}}},
}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("attack"), r"^{path} lacks key\(s\) attack$"),
        (lambda s: [s.pop("title"), s.pop("source")], r"^{path} lacks key\(s\) title, source$"),
        (lambda s: s["softmax"].pop("baseline"), r"^{path} softmax lacks key\(s\) baseline$"),
        (lambda s: s["softmax"]["ablations"].update(lr=[]), r"^{path} softmax.ablations.lr must be a mapping$"),
        (lambda s: s["softmax"]["ablations"]["lr"].pop("rows"), r"^{path} softmax.ablations.lr lacks key\(s\) rows$"),
        (
            lambda s: s["softmax"]["ablations"]["lr"]["rows"][0].pop("test_acc"),
            r"^{path} softmax.ablations.lr.rows lacks key\(s\) test_acc$",
        ),
    ],
)
def test_the_studys_numbers_name_the_file_the_place_and_the_missing_keys(tmp_path, edit, message):
    study = yaml.safe_load(yaml.safe_dump(GOOD))
    edit(study)
    path = tmp_path / "study_numbers.yaml"
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(StudyNumbersError, match=message.format(path=path)):
        load_study(path, ["softmax"])


def test_the_studys_numbers_missing_or_not_yaml_are_named_and_a_model_it_lacks_is_skipped(tmp_path):
    path = tmp_path / "study_numbers.yaml"
    with pytest.raises(StudyNumbersError, match=f"^{path} \\(the study's published numbers\\) is missing$"):
        load_study(path, ["softmax"])
    path.write_text("title: [unclosed")
    with pytest.raises(StudyNumbersError, match=f"^{path} is not valid YAML: "):
        load_study(path, ["softmax"])
    path.write_text(yaml.safe_dump(GOOD))
    assert load_study(path, ["softmax", "mlp"]) == GOOD  # the study had no mlp: no section needed


def test_the_studys_table_is_one_run_per_value_and_no_table_is_no_rows():
    assert study_rows(table([0.4], values=[0.1])) == [Row(0.1, 0.4, None, 1)]
    assert study_rows(None) == [] and study_rows({"conclusion": "c"}) == []


# ------------------------------------------------------------------- one sweep against the study


def test_an_entry_at_exactly_the_noise_is_within_it_and_names_its_model_sweep_and_numbers():
    ours = rows([0.75, 0.5])  # pooled std 0.125: noise 0.25, exact in binary
    c = comparison(ours, table([0.5, 0.5], values=(1, 2)))
    first = c.entries[0]
    assert (first.model, first.param, first.value, first.study, first.ours) == ("softmax", "reg", 1, 0.5, ours[0])
    assert first.diff == 0.25 and first.beyond_noise is False


def test_the_same_best_value_agrees_even_without_a_noise_estimate():
    one_seed = rows([0.40, 0.45], values=(1, 2), std=0.0, n=1)
    c = comparison(one_seed, table([0.30, 0.50], values=(1, 2)))
    assert c.best_agrees is True and c.ours_best == 2 and c.study_best == 2
    assert comparison(one_seed, table([0.50, 0.30], values=(1, 2))).best_agrees is False


def test_our_best_exactly_the_noise_above_ours_at_the_studys_best_still_agrees():
    c = comparison(rows([0.5, 0.75], values=(1, 2)), table([0.5, 0.4], values=(1, 2)))  # 0.25 == 2 x 0.125
    assert c.ours_best == 2 and c.study_best == 1 and c.best_agrees is True


@pytest.mark.parametrize(
    "ours, theirs, ours_kind, agrees",
    [
        ([0.40, 0.41, 0.42], [0.30, 0.35, 0.40], "increasing", True),
        ([0.40, 0.41, 0.42], [0.40, 0.35, 0.30], "increasing", False),
        ([0.40, 0.45, 0.42], [0.30, 0.40, 0.35], "peak", True),  # both peak at 2
        ([0.40, 0.45, 0.42], [0.30, 0.35, 0.40], "peak", False),
        ([0.40, 0.45, 0.42, 0.41], [0.30, 0.35, 0.40, 0.36], "peak", False),  # peaks at 2 and at 3
        ([0.42, 0.42, 0.42], [0.30, 0.35, 0.40], "flat", False),
    ],
)
def test_the_trend_agrees_only_on_the_same_direction_and_the_same_turning_value(ours, theirs, ours_kind, agrees):
    values = (1, 2, 3, 4)[: len(ours)]
    c = comparison(rows(ours, values=values), table(theirs, values=values))
    assert c.ours_trend.kind == ours_kind and c.trend_agrees is agrees


def test_the_trend_of_unordered_labels_is_neither_agreed_nor_disagreed():
    labels = ("he", "gaussian")
    c = comparison(rows([0.40, 0.45], values=labels), table([0.40, 0.45], values=labels), param="init")
    assert c.ours_trend == c.study_trend == Trend("unordered") and c.trend_agrees is None


def test_with_one_shared_value_there_is_no_trend_and_no_best_but_the_difference_and_conclusion_stay():
    c = comparison(rows([0.45, 0.50], values=(1, 5)), table([0.40, 0.30], values=(1, 2), conclusion="So it is."))
    assert c.ours_trend == c.study_trend == Trend("single") and c.trend_agrees is None and c.best_agrees is None
    assert c.mean_diff == pytest.approx(0.05) and c.conclusion == "So it is."


# ------------------------------------------------------------------------ the distance over sweeps


def test_the_distance_counts_compares_and_names_entries_over_trained_and_untrained_sweeps():
    lr = table([0.40, 0.41, 0.50], values=(1, 2, 3))
    lr_ours = rows([0.40, 0.45], values=(1, 2))  # 3 not trained; 2 is 4 points above: beyond 0.25? no
    reg = table([0.41, 0.42, 0.43], values=(1, 2, 3))
    reg_ours = rows([0.40, 0.41, 0.42], values=(1, 2, 3), std=0.001)  # noise 0.002: each 1 point off
    init = table([0.4, 0.5], values=("he", "gaussian"))
    dist = distance(
        [
            ("softmax", "lr", lr, comparison(lr_ours, lr, "lr")),
            ("softmax", "reg", reg, comparison(reg_ours, reg)),
            ("twolayer", "init", init, None),
        ]
    )
    assert [(e.model, e.param, e.value) for e in dist.entries][-2:] == [
        ("twolayer", "init", "he"),
        ("twolayer", "init", "gaussian"),
    ]
    untrained = dist.entries[-1]
    assert untrained.study == 0.5 and untrained.ours is None and untrained.diverged is False
    assert dist.compared == 5 and dist.sweeps == 2
    assert dist.worst.param == "lr" and dist.worst.value == 2
    assert [(e.param, e.value) for e in dist.beyond_noise] == [("reg", 1), ("reg", 2), ("reg", 3)]
    assert [(e.param, e.value) for e in dist.missing] == [("lr", 3)]
    assert dist.untrained_sweeps == ["twolayer `init` (2 values)"]
    assert dist.agree_best == 2 and dist.agree_trend == 2 and dist.diverged == []


def test_the_projects_data_identity_reads_its_provenance_and_statistics(tmp_path, monkeypatch):
    from scratchnet.files import write_json
    from scratchnet.study import layout
    from scratchnet.study.cache import project_data_identity

    write_json(tmp_path / layout.PROVENANCE, {"arrays_sha256": "b", "source": "auto"})
    (tmp_path / layout.STATS).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / layout.STATS).write_bytes(b"stats")
    params = {"preprocess": {"seed": 0}, "softmax": {"lr": 1}}
    assert project_data_identity(params, tmp_path) == data_identity("b", {"seed": 0}, tmp_path / layout.STATS)
    monkeypatch.chdir(tmp_path)  # by default, the project in the working directory
    assert project_data_identity(params) == data_identity("b", {"seed": 0}, tmp_path / layout.STATS)


# ------------------------------------------------------------------------ values, order, verdicts


def test_two_values_are_one_when_equal_as_numbers_or_as_text():
    from scratchnet.study.analysis import same_value

    assert same_value(1, 1.0) and same_value(5e-3, 0.005) and same_value(0.1 + 0.2, 0.3)
    assert same_value("he", "he") and same_value([512, 256], [512, 256])
    assert not same_value("he", "gaussian") and not same_value(1, "he") and not same_value(0.5, "0.50")
    # the tolerance is relative (1e-9 of the larger), even for tiny values
    assert not same_value(1e-6, 1.1e-6) and not same_value(1e-10, 2e-10) and not same_value(1.0, 1.00001)


def test_rows_of_labels_keep_their_order_and_numbers_are_sorted():
    from scratchnet.study.analysis import ordered

    labels = rows([0.4, 0.5], values=("he", "gaussian"))
    assert ordered(labels) == labels
    numbers = rows([0.4, 0.5, 0.6], values=(3, 1, 2))
    assert [r.value for r in ordered(numbers)] == [1, 2, 3]


def test_a_peak_and_a_valley_name_the_value_where_they_turn():
    from scratchnet.study.analysis import trend

    assert trend([1, 2, 3], [0.3, 0.5, 0.4]) == Trend("peak", 2)
    assert trend([1, 2, 3], [0.5, 0.3, 0.4]) == Trend("valley", 2)


def test_a_sweep_with_no_result_has_no_best_and_keeps_the_noise_it_was_given():
    from scratchnet.study.analysis import Verdict

    diverged = rows([None, None], values=(1, 2))
    assert judge(diverged) == Verdict(None, None, 0, None, None, None, None, Trend("single"))
    assert judge(diverged, noise_std=0.125) == Verdict(None, None, 0, None, 0.125, 0.25, None, Trend("single"))
