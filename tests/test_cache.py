"""The run cache (study/cache.py): keyed by everything that decides a run's numbers, never
trusting a bad entry."""

import json
from pathlib import Path

import pytest
from tiny_runs import CONFIG

from scratchnet.nn import build_model
from scratchnet.study.cache import RunCache, data_identity, run_key

NETWORK = build_model({"kind": "softmax"}, input_dim=4, num_classes=3, seed=0)


def record(key: str, **extra) -> dict:
    """A run's training part (the entry's record; robustness is kept beside it)."""
    return {
        "key": key,
        "seed": 0,
        "test_acc": 0.5,
        "final_val_acc": 0.4,
        "diverged": False,
        "diverged_epoch": None,
        "history": [{"epoch": 1, "loss": 2.0}],
        **extra,
    }


FACTS = {"started": 100.0, "ended": 101.6, "worker": "host:1"}


def test_the_key_covers_config_epochs_seed_data_and_code():
    base = run_key("twolayer", CONFIG, 0, "data", "code")
    assert base == run_key("twolayer", dict(reversed(CONFIG.items())), 0, "data", "code")
    changed = [
        run_key("softmax", CONFIG, 0, "data", "code"),
        run_key("twolayer", {**CONFIG, "epochs": 3}, 0, "data", "code"),
        run_key("twolayer", {**CONFIG, "lr": 0.01}, 0, "data", "code"),
        run_key("twolayer", CONFIG, 1, "data", "code"),
        run_key("twolayer", CONFIG, 0, "other data", "code"),
        run_key("twolayer", CONFIG, 0, "data", "other code"),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_the_data_identity_covers_the_arrays_the_preprocessing_and_its_statistics(tmp_path):
    stats = tmp_path / "stats.npz"
    stats.write_bytes(b"mean and std")
    base = data_identity("abc", {"normalize": "mean_std"}, stats)
    assert base != data_identity("abd", {"normalize": "mean_std"}, stats)
    assert base != data_identity("abc", {"normalize": "mean"}, stats)
    stats.write_bytes(b"other statistics")
    assert base != data_identity("abc", {"normalize": "mean_std"}, stats)


def test_a_stored_run_is_found_under_its_key_with_its_facts(tmp_path):
    cache = RunCache(tmp_path)
    cache.put(record("k1"), FACTS, NETWORK)
    assert cache.get("k1") == (record("k1"), FACTS)
    assert json.loads(cache.path("k1").read_text()) == {"record": record("k1"), "facts": FACTS}
    assert cache.get("k2") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1.json", "k1.npz"]  # no temporary file left


@pytest.mark.parametrize(
    "content",
    [
        "",  # created, nothing written yet
        json.dumps({"record": record("k1"), "facts": FACTS})[:50],  # half-written
        "\x00\x00\x00",  # garbage
        json.dumps([1, 2]),  # not an entry
        json.dumps({**record("k1"), **FACTS}),  # an old flat record
        json.dumps({"record": record("another key"), "facts": FACTS}),  # another run's entry
        json.dumps(
            {"record": {k: v for k, v in record("k1").items() if k != "history"}, "facts": FACTS}
        ),  # a record field missing
        json.dumps({"record": record("k1"), "facts": {"started": 1.0}}),  # facts incomplete
    ],
)
def test_a_corrupt_or_foreign_entry_reads_as_missing(tmp_path, content):
    RunCache(tmp_path).put(record("k1"), FACTS, NETWORK)  # its network is there
    (tmp_path / "k1.json").write_text(content)
    assert RunCache(tmp_path).get("k1") is None


def test_retrain_ignores_every_entry_and_the_environment_names_the_folder(tmp_path, monkeypatch):
    RunCache(tmp_path).put(record("k1"), FACTS, NETWORK)
    monkeypatch.setenv("SCRATCHNET_CACHE", str(tmp_path))
    assert RunCache().root == tmp_path and RunCache().get("k1") is not None
    monkeypatch.setenv("SCRATCHNET_RETRAIN", "1")
    assert RunCache().get("k1") is None
    monkeypatch.delenv("SCRATCHNET_CACHE")
    assert RunCache().root == Path(".scratchnet/runs").absolute()  # workers elsewhere find it
