"""The training loop: it learns, it is deterministic, it records its history, and it reports
divergence instead of training on NaNs."""

import json
import math

import numpy as np
import pytest

from scratchnet.nn import build_model
from scratchnet.nn.optim import decayed_lr, sgd_step
from scratchnet.training import accuracy, train

D, C = 20, 5


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, D)).astype(np.float32), rng.integers(0, C, n)


def twolayer(seed=0, hidden_dim=32):
    return build_model({"kind": "twolayer", "hidden_dim": hidden_dim}, input_dim=D, num_classes=C, seed=seed)


def fit(model, X, y, **overrides):
    X_val, y_val = overrides.pop("val", (X[:10], y[:10]))
    options = dict(epochs=5, lr=0.05, lr_decay=0.9, batch_size=16, reg=0.0, seed=0, progress=False)
    options.update(overrides)
    return train(model, X, y, X_val, y_val, **options)


def test_twolayer_net_overfits_50_random_samples():
    X, y = data(50)  # random labels: only memorisation can fit them
    model = twolayer(hidden_dim=100)
    result = fit(model, X, y, epochs=200, lr=0.2, lr_decay=1.0, batch_size=10)
    assert not result.diverged
    assert accuracy(model, X, y) == 1.0
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.05 * losses[0]
    assert result.history[-1]["train_acc"] == 1.0


def test_same_seed_gives_bit_identical_weights_and_history():
    X, y = data(200)
    a, b = twolayer(seed=1), twolayer(seed=1)
    ra, rb = fit(a, X, y, seed=7), fit(b, X, y, seed=7)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert ra.history == rb.history


def test_different_data_order_seed_gives_different_weights():
    X, y = data(200)
    a, b = twolayer(seed=1), twolayer(seed=1)
    fit(a, X, y, seed=7)
    fit(b, X, y, seed=8)
    assert not np.array_equal(a.params["W1"], b.params["W1"])


def test_history_records_every_epoch_with_the_decayed_lr():
    X, y = data(100)
    seen = []
    result = fit(twolayer(), X, y, epochs=4, lr=0.1, lr_decay=0.5, on_epoch=seen.append)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert [r["lr"] for r in result.history] == [0.1, 0.05, 0.025, 0.0125]
    assert seen == result.history
    for r in result.history:
        assert set(r) == {"epoch", "loss", "train_acc", "val_acc", "lr"}
        assert 0.0 <= r["train_acc"] <= 1.0 and 0.0 <= r["val_acc"] <= 1.0
    json.dumps(result.history, allow_nan=False)  # plain floats, ready for run.json
    assert result.seconds > 0 and not result.diverged and result.diverged_epoch is None


def test_train_acc_counts_the_minibatch_predictions_made_during_the_epoch():
    X, y = data(100)
    model = twolayer()
    expected = accuracy(model, X, y)
    result = fit(model, X, y, epochs=1, lr=1e-12)  # too small a step to change any prediction
    assert result.history[0]["train_acc"] == expected


def test_val_acc_is_the_end_of_epoch_model_on_the_validation_set():
    X, y = data(100)
    X_val, y_val = data(30, seed=1)
    model = twolayer()
    result = fit(model, X, y, epochs=2, val=(X_val, y_val))
    assert result.history[-1]["val_acc"] == accuracy(model, X_val, y_val)


def test_divergence_stops_training_and_reports_the_epoch():
    X, y = data(100)
    X *= 1e3  # with lr 1e3 the logits blow past float32 range within the second epoch at most
    model = twolayer()
    result = fit(model, X, y, epochs=10, lr=1e3)
    assert result.diverged
    assert result.diverged_epoch is not None and 1 <= result.diverged_epoch <= 2
    assert len(result.history) == result.diverged_epoch - 1
    assert all(math.isfinite(r["loss"]) for r in result.history)


def test_divergence_mid_run_keeps_the_epochs_completed_before_it():
    X, y = data(100)
    model = twolayer()

    def break_after_epoch_2(record):
        if record["epoch"] == 2:
            model.params["W1"][0, 0] = np.inf  # the next forward pass produces inf - inf = NaN

    result = fit(model, X, y, epochs=6, on_epoch=break_after_epoch_2)
    assert (result.diverged, result.diverged_epoch) == (True, 3)
    assert [r["epoch"] for r in result.history] == [1, 2]


def test_a_stable_run_does_not_report_divergence():
    X, y = data(100)
    result = fit(twolayer(), X, y)
    assert not result.diverged and len(result.history) == 5


def test_training_keeps_float32_weights():
    X, y = data(100)
    model = twolayer()
    fit(model, X.astype(np.float64), y)
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_trains_from_a_memory_mapped_training_set(tmp_path):
    X, y = data(100)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    a, b = twolayer(), twolayer()
    fit(a, X, y)
    fit(b, mapped, y)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_batch_size_larger_than_the_training_set_is_one_full_batch():
    X, y = data(30)
    result = fit(twolayer(), X, y, epochs=2, batch_size=1000)
    assert len(result.history) == 2


def test_progress_bar_is_silent_when_asked(capsys):
    X, y = data(50)
    fit(twolayer(), X, y, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_shows_loss_and_accuracy(capsys):
    X, y = data(50)
    fit(twolayer(), X, y, epochs=2, progress=True, desc="demo")
    err = capsys.readouterr().err
    assert "demo" in err and "loss=" in err and "val_acc=" in err


def test_decayed_lr_is_lr_times_decay_to_the_epochs_before():
    assert decayed_lr(0.1, 0.9, 1) == 0.1
    assert decayed_lr(0.1, 0.9, 3) == pytest.approx(0.081)
    assert type(decayed_lr(np.float64(0.1), np.float64(0.9), 2)) is float


def test_sgd_step_subtracts_lr_times_the_gradients_in_place():
    params = {"W": np.ones(3, np.float32)}
    before = params["W"]
    sgd_step(params, {"W": np.full(3, 0.5, np.float32)}, lr=0.5)
    assert params["W"] is before and params["W"].dtype == np.float32
    np.testing.assert_array_equal(params["W"], [0.75, 0.75, 0.75])


def test_one_training_step_is_forward_backward_then_sgd_step():
    X, y = data(16)
    trained, by_hand = twolayer(), twolayer()
    fit(trained, X, y, epochs=1, batch_size=16, lr=0.05, reg=0.1)  # one full batch: one step
    _, grads, _ = by_hand.forward_backward(X, y, reg=0.1)
    sgd_step(by_hand.params, grads, 0.05)
    for k in trained.params:
        np.testing.assert_allclose(trained.params[k], by_hand.params[k], rtol=1e-6, atol=1e-7)


def test_accuracy_is_the_fraction_correct():
    model = build_model({"kind": "softmax"}, input_dim=2, num_classes=2, seed=0)
    model.params["W1"][:] = [[1, -1], [0, 0]]  # predicts class 0 iff x0 > 0
    X = np.array([[1.0, 0], [2, 0], [-1, 0], [-3, 0]], np.float32)
    assert accuracy(model, X, np.array([0, 0, 0, 1]), batch_size=3) == 0.75
