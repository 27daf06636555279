"""Part 1: gradient descent on the least-squares fit approaches the closed-form optimum."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scratchnet.fitting import closed_form, gradient_descent, loss_and_grads, make_problem, run_fit
from scratchnet.nn.gradcheck import numerical_gradient, rel_error
from scratchnet.study import layout

ROOT = Path(__file__).resolve().parents[1]
STUDY = dict(lr=1e-4, steps=500, num_points=1000, degree=5, noise=0.1, seed=0)


@pytest.fixture(scope="module")
def result():
    return run_fit(**STUDY)


def test_gradient_descent_at_the_studys_rate_reaches_the_closed_form_optimum(result):
    assert result["losses"][0] > 40 * result["optimum_loss"]  # it starts far away ...
    assert result["final_loss"] == pytest.approx(result["optimum_loss"], rel=1e-3)  # ... and arrives
    np.testing.assert_allclose(result["fitted"], result["optimum_fitted"], atol=0.01)


def test_loss_curve_has_steps_plus_one_points_and_never_rises(result):
    losses = np.array(result["losses"])
    assert len(losses) == STUDY["steps"] + 1
    assert losses[0] == pytest.approx(0.5 * np.sum(np.array(result["y"]) ** 2))  # from w = 0, b = 0
    assert np.all(np.diff(losses) <= 0)  # lr < 2 / largest eigenvalue: every mode shrinks
    assert np.all(losses >= result["optimum_loss"] - 1e-9)


def test_closed_form_equals_the_ordinary_polynomial_least_squares_fit():
    problem = make_problem(200, 5, 0.1, seed=3)
    w, b = closed_form(problem.features, problem.y)
    monomial_fit = np.polynomial.polynomial.Polynomial.fit(problem.x, problem.y, 5)
    np.testing.assert_allclose(problem.features @ w + b, monomial_fit(problem.x), atol=1e-9)


def test_fit_gradients_match_central_differences():
    problem = make_problem(30, 4, 0.1, seed=1)
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((4, 1)), rng.standard_normal(1)
    _, dw, db = loss_and_grads(problem.features, problem.y, w, b)
    loss = lambda: loss_and_grads(problem.features, problem.y, w, b)[0]  # noqa: E731
    assert rel_error(dw, numerical_gradient(loss, w)) < 1e-7
    assert rel_error(db, numerical_gradient(loss, b)) < 1e-7


def test_a_rate_above_the_stability_limit_diverges(result):
    problem = make_problem(1000, 5, 0.1, 0)
    lr = 1.2 * result["lr_stability_limit"]  # 2 / largest Hessian eigenvalue
    _, _, losses, _ = gradient_descent(problem.features, problem.y, lr, steps=200)
    assert losses[-1] > 1e3 * losses[0]


def test_result_is_strict_json_with_the_contract_keys(result):
    text = json.dumps(result, allow_nan=False)
    assert {
        "lr",
        "steps",
        "losses",
        "optimum_loss",
        "final_loss",
        "problem",
        "x",
        "y",
        "fitted",
        "optimum_fitted",
    } <= set(json.loads(text))
    assert "seconds" not in result  # a DVC output: no time in it
    assert result["problem"]["description"] and result["problem"]["num_points"] == 1000
    assert len(result["x"]) == len(result["y"]) == len(result["fitted"]) == 1000
    assert list(result["x"]) == sorted(result["x"])
    assert [s["step"] for s in result["snapshots"]] == [0, 10, 30, 100, 500]


def test_same_seed_same_problem_different_seed_different_noise():
    a, b, c = make_problem(50, 3, 0.1, 0), make_problem(50, 3, 0.1, 0), make_problem(50, 3, 0.1, 1)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)


def test_too_few_points_for_the_degree_is_an_error():
    with pytest.raises(ValueError, match="num_points"):
        make_problem(4, 5, 0.1, 0)


def test_fit_stage_writes_the_result_and_the_curve(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("fit_stage", ROOT / "pipeline" / "fit.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    stage.main()
    saved = json.loads(layout.FIT_RESULT.read_text())
    rows = layout.FIT_CURVE.read_text().splitlines()
    assert rows[0] == "step,loss,optimum_loss"
    assert len(rows) == 1 + saved["steps"] + 1
    step, loss, optimum = rows[-1].split(",")
    assert int(step) == saved["steps"] and float(loss) == saved["final_loss"]
    assert float(optimum) == saved["optimum_loss"]
    assert sorted(p.name for p in layout.FIT_DIR.iterdir()) == ["curve.csv", "fit.json"]
