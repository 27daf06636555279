"""The preprocess stage: a seeded validation split, uint8 outputs and the training split's
per-pixel statistics, written all together or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scratchnet.data import DataError, PixelStats, RawDataset, split_indices, write_processed
from scratchnet.nn import Normalizer
from scratchnet.nn.normalize import MIN_STD


def raw_dataset(n_train: int = 60, n_test: int = 20, seed: int = 0) -> RawDataset:
    rng = np.random.default_rng(seed)
    return RawDataset(
        rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        np.arange(n_train, dtype=np.int64) % 10,
        rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        np.arange(n_test, dtype=np.int64) % 10,
    )


class Outputs:
    """The preprocess outputs under one folder, named as layout names them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.stats = folder / "stats.npz"
        self.meta = folder / "meta.json"

    def split_paths(self, split: str) -> tuple[Path, Path]:
        return self.folder / f"X_{split}.npy", self.folder / f"y_{split}.npy"

    def write(self, raw: RawDataset, **params) -> dict:
        settings = dict(val_size=10, train_limit=None, test_limit=None, seed=0)
        settings.update(params)
        return write_processed(
            raw,
            {"source": "test"},
            split_paths=self.split_paths,
            stats_path=self.stats,
            meta_path=self.meta,
            **settings,
        )

    def load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        x_path, y_path = self.split_paths(split)
        return np.load(x_path, mmap_mode="r"), np.load(y_path)


# --- the split -----------------------------------------------------------------------------------


def test_the_split_is_disjoint_complete_and_sized_as_asked():
    index = split_indices(100, 30, val_size=15, train_limit=None, test_limit=None, seed=0)

    assert len(index["val"]) == 15 and len(index["train"]) == 85
    assert sorted(np.concatenate([index["train"], index["val"]])) == list(range(100))
    np.testing.assert_array_equal(index["test"], np.arange(30))


def test_the_split_is_reproducible_from_its_seed_and_changes_with_it():
    a = split_indices(100, 30, val_size=15, train_limit=None, test_limit=None, seed=7)
    b = split_indices(100, 30, val_size=15, train_limit=None, test_limit=None, seed=7)
    c = split_indices(100, 30, val_size=15, train_limit=None, test_limit=None, seed=8)

    np.testing.assert_array_equal(a["val"], b["val"])
    assert not np.array_equal(a["val"], c["val"])


def test_limits_take_random_subsets_without_moving_the_validation_set():
    full = split_indices(100, 30, val_size=15, train_limit=None, test_limit=None, seed=0)
    limited = split_indices(100, 30, val_size=15, train_limit=20, test_limit=12, seed=0)

    np.testing.assert_array_equal(limited["val"], full["val"])
    assert len(limited["train"]) == 20 and set(limited["train"]) <= set(full["train"])
    assert len(limited["test"]) == 12 and len(set(limited["test"])) == 12
    assert limited["train"].max() > 20  # a random subset, not the first 20 (often one class)
    assert list(limited["train"]) == sorted(limited["train"])


@pytest.mark.parametrize("val_size", [100, 150])
def test_a_validation_set_that_leaves_no_training_data_is_refused(val_size):
    with pytest.raises(
        DataError, match=rf"preprocess.val_size is {val_size}; expected at least 1 and fewer than the 100"
    ):
        split_indices(100, 30, val_size=val_size, train_limit=None, test_limit=None, seed=0)


# --- the statistics and the scaling a model applies with them ---------------------------------


def flat(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(len(pixels), -1)


def test_mean_std_gives_zero_mean_unit_std_per_pixel_on_train():
    pixels = raw_dataset(n_train=500).x_train
    stats = PixelStats.fit(pixels)
    X = Normalizer("mean_std", stats.mean, stats.std).forward(flat(pixels))

    assert X.dtype == np.float32 and X.shape == (500, 3072)
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(X.std(axis=0), 1, atol=1e-4)


def test_mean_subtracts_the_mean_and_divides_by_255():
    pixels = raw_dataset().x_train
    stats = PixelStats.fit(pixels)
    expected_mean = flat(pixels).mean(axis=0)

    np.testing.assert_allclose(stats.mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(stats.std, flat(pixels).std(axis=0), rtol=1e-9)
    norm = Normalizer("mean", stats.mean, stats.std)
    np.testing.assert_allclose(norm.forward(flat(pixels)), (flat(pixels) - expected_mean) / 255, atol=1e-6)


def test_flattening_is_hwc_order():
    pixels = np.zeros((1, 32, 32, 3), np.uint8)
    pixels[0, 0, 1, 2] = 255  # row 0, column 1, blue
    norm = Normalizer("mean", np.zeros(3072), np.ones(3072))
    assert np.flatnonzero(norm.forward(flat(pixels))[0]).tolist() == [0 * 96 + 1 * 3 + 2]


def test_a_constant_pixel_is_guarded_against_dividing_by_zero():
    pixels = raw_dataset().x_train.copy()
    pixels[:, 5, 5, 0] = 77  # the same value in every training image: std 0
    stats = PixelStats.fit(pixels)

    assert stats.std[5 * 96 + 5 * 3] == 0
    test_pixels = np.full((1, 3072), 78, np.uint8)
    X = Normalizer("mean_std", stats.mean, stats.std).forward(test_pixels, np.float64)
    assert X[0, 5 * 96 + 5 * 3] == 1 / MIN_STD and np.isfinite(X).all()


def test_saved_statistics_load_back_identically(tmp_path):
    stats = PixelStats.fit(raw_dataset().x_train)
    stats.save(tmp_path / "stats.npz")
    loaded = PixelStats.load(tmp_path / "stats.npz")

    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.std, stats.std)


def test_loading_malformed_statistics_names_the_file(tmp_path):
    np.savez(tmp_path / "stats.npz", mean=np.zeros(10), std=np.ones(10))
    with pytest.raises(DataError, match=r"stats.npz: mean is float64 \(10,\); expected finite float64 \(3072,\)"):
        PixelStats.load(tmp_path / "stats.npz")
    with pytest.raises(DataError, match=r"absent.npz: not readable pixel statistics.*run the preprocess stage"):
        PixelStats.load(tmp_path / "absent.npz")


# --- the written outputs -----------------------------------------------------------------------------


def test_outputs_are_memory_mappable_uint8_with_matching_labels(tmp_path):
    raw = raw_dataset()
    out = Outputs(tmp_path)
    meta = out.write(raw, val_size=10, test_limit=15)

    sizes = {}
    for split in ("train", "val", "test"):
        X, y = out.load(split)
        assert isinstance(X, np.memmap) and X.dtype == np.uint8 and X.shape[1] == 3072
        assert y.dtype == np.int64 and y.shape == (len(X),)
        sizes[split] = len(X)
    assert sizes == {"train": 50, "val": 10, "test": 15}
    assert {s: sum(c.values()) for s, c in meta["counts"].items()} == sizes
    assert json.loads(out.meta.read_text()) == meta
    assert meta["provenance"] == {"source": "test"} and meta["class_names"][9] == "truck"


def test_each_output_row_is_the_raw_image_flattened_with_its_label(tmp_path):
    raw = raw_dataset()
    out = Outputs(tmp_path)
    out.write(raw, seed=4)
    index = split_indices(60, 20, val_size=10, train_limit=None, test_limit=None, seed=4)

    X_val, y_val = out.load("val")
    np.testing.assert_array_equal(X_val, flat(raw.x_train[index["val"]]))
    np.testing.assert_array_equal(y_val, raw.y_train[index["val"]])


def test_statistics_come_from_the_training_split_only(tmp_path):
    raw = raw_dataset()
    changed = RawDataset(raw.x_train.copy(), raw.y_train, np.full_like(raw.x_test, 255), raw.y_test)
    index = split_indices(60, 20, val_size=10, train_limit=None, test_limit=None, seed=0)
    changed.x_train[index["val"]] = 0  # val and test wildly different: the statistics must not move

    Outputs(tmp_path / "a").write(raw)
    Outputs(tmp_path / "b").write(changed)

    a, b = PixelStats.load(tmp_path / "a" / "stats.npz"), PixelStats.load(tmp_path / "b" / "stats.npz")
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    expected = PixelStats.fit(raw.x_train[index["train"]])
    np.testing.assert_array_equal(a.mean, expected.mean)


def disk_full(*args):
    raise OSError("disk full")


def test_a_failure_while_writing_leaves_no_output_and_keeps_the_previous_ones(tmp_path, monkeypatch):
    raw = raw_dataset()
    out = Outputs(tmp_path)
    out.write(raw, seed=0)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    monkeypatch.setattr(PixelStats, "_write", disk_full)  # fails after the arrays are written
    with pytest.raises(OSError, match="disk full"):
        out.write(raw, seed=1)

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files either


def test_a_failed_first_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(PixelStats, "_write", disk_full)
    with pytest.raises(OSError):
        Outputs(tmp_path / "processed").write(raw_dataset())
    assert list((tmp_path / "processed").iterdir()) == []
