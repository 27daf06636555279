"""The logged MLflow model: its output signature, an input example, its own code, honest
requirements, and one image or a batch in, anything else refused with a clear message.

A small network is logged into a temporary store the way the train stage logs a baseline
(`pyfunc_model.log`); the model is then loaded where the installed scratchnet is out of reach, as a
fresh virtualenv would be, and must predict what the library predicts.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from scratchnet.nn import Normalizer, build_model
from scratchnet.study import pyfunc_model
from scratchnet.study.tracking import Tracker

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(model folder, images (5, 32, 32, 3) uint8, the library's probabilities (5, 10), warnings)."""
    tmp = tmp_path_factory.mktemp("logged")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(20, 3072)).astype(np.float64)
    normalizer = Normalizer("mean_std", pixels.mean(axis=0), pixels.std(axis=0))
    network = build_model({"kind": "twolayer", "hidden_dim": 8}, seed=0, normalizer=normalizer)
    network.save(tmp / "net.npz")
    expected = network.probabilities(images.reshape(len(images), -1))

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.chdir(tmp)  # a sqlite store keeps its artifacts under the working directory
        tracker = Tracker("unit", root=tmp)
        logged_warnings = Records()
        logging.getLogger("mlflow").addHandler(logged_warnings)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                record = {
                    "key": "net",
                    "seed": 0,
                    "test_acc": 0.5,
                    "diverged": False,
                    "diverged_epoch": None,
                    "history": [],
                }
                run_id = tracker.log_run(
                    record,
                    {"started": 0.0, "ended": 1.0, "worker": "here"},
                    run_name="baseline",
                    params={},
                    tags={},
                    on_logged=lambda run_id: pyfunc_model.log(run_id, tmp / "net.npz", CLASSES, images[:1]),
                )
        finally:
            logging.getLogger("mlflow").removeHandler(logged_warnings)
        import mlflow.artifacts

        folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp / "downloaded")))
    return (
        folder,
        images,
        expected,
        ([f"{w.category.__name__}: {w.message}" for w in caught] + logged_warnings.messages),
    )


class Records(logging.Handler):
    """Keeps the messages of MLflow's logger at WARNING and above (MLflow warns through
    `logging` as often as through `warnings`)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


def test_logging_the_model_raises_no_mlflow_warning(logged):
    *_, caught = logged
    assert caught == []


def test_the_model_declares_its_output_and_shows_its_input_by_a_real_example(logged):
    folder, images, _, _ = logged
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    # No input schema: MLflow would hold every input to one number of dimensions, so one image
    # (32, 32, 3) could not pass where a batch (N, 32, 32, 3) does; the model checks its input.
    assert meta["signature"]["inputs"] is None
    outputs = json.loads(meta["signature"]["outputs"])
    assert [(c["name"], c["type"]) for c in outputs] == [
        ("label", "long"),
        ("class", "string"),
        *((name, "float") for name in CLASSES),
    ]
    info = meta["saved_input_example_info"]
    example = json.loads((folder / info["artifact_path"]).read_text())
    assert np.array_equal(np.asarray(example), images[:1])
    # the body a REST client posts to /invocations, ready to copy
    request = json.loads((folder / info["serving_input_path"]).read_text())
    assert np.array_equal(np.asarray(request["inputs"]), images[:1])


def test_the_requirements_are_real_dependencies_and_the_code_travels_with_the_model(logged):
    folder, *_ = logged
    requirements = (folder / "requirements.txt").read_text().split()
    names = {r.split("==")[0] for r in requirements}
    assert names == {"mlflow", "numpy", "pandas"}
    assert all("==" in r for r in requirements)  # pinned, as MLflow pins by default
    assert (folder / "code" / "scratchnet" / "nn" / "models.py").is_file()


LOAD_WITHOUT_INSTALLED_SCRATCHNET = """
import importlib.metadata, importlib.util, json, os, sys
# every folder that holds a scratchnet package (the editable install's src/, PYTHONPATH) goes
sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "scratchnet"))]
assert importlib.util.find_spec("scratchnet") is None, "scratchnet still importable"
mapping = importlib.metadata.packages_distributions()
def distributions():
    return {d for m in list(sys.modules) for d in mapping.get(m.split(".")[0], [])}
import numpy as np, mlflow.pyfunc
with_mlflow = distributions()
model = mlflow.pyfunc.load_model(sys.argv[1])
images = np.load(sys.argv[2])
predicted = model.predict(images)
import pandas as pd
def outcome(model_input):  # what predict does; one case failing fails only its own test
    try:
        return {"frame": model.predict(model_input).to_dict("list")}
    except Exception as err:
        return {"raised": type(err).__name__, "code": getattr(err, "error_code", None), "message": str(err)}
flat = images.reshape(len(images), 3072)
# Each form of the same images the model documents, then inputs it must refuse.
same_images = {"flat row": flat[0], "flat rows": flat, "int64 batch": images.astype(np.int64),
               "whole floats": images.astype(np.float64), "nested lists": images.tolist(),
               "DataFrame of flat cells": pd.DataFrame({"pixels": list(flat)}),
               "DataFrame of 3072 columns": pd.DataFrame(flat)}
wrong = {"grayscale": images[0, :, :, 0], "RGBA": np.concatenate([images[0], images[0, :, :, :1]], axis=2),
         "300 values": flat[0, :300], "[0, 1] floats": images / 255.0,
         "above 255": images.astype(np.int64) + 256, "empty": images[:0]}
import scratchnet
print(json.dumps({"scratchnet": scratchnet.__file__, "frame": predicted.to_dict("list"),
                  "one_image": outcome(images[0]),
                  "same_images": {name: outcome(x) for name, x in same_images.items()},
                  "wrong": {name: outcome(x) for name, x in wrong.items()},
                  "dtypes": [str(t) for t in predicted.dtypes],
                  "imported_by_the_model": sorted(distributions() - with_mlflow)}))
"""


@pytest.fixture(scope="module")
def loaded_elsewhere(logged, tmp_path_factory):
    folder, images, _, _ = logged
    tmp = tmp_path_factory.mktemp("elsewhere")
    np.save(tmp / "images.npy", images)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_INSTALLED_SCRATCHNET, str(folder), str(tmp / "images.npy")],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_model_loads_its_own_code_and_predicts_what_the_library_predicts(logged, loaded_elsewhere):
    folder, images, expected, _ = logged
    assert Path(loaded_elsewhere["scratchnet"]).is_relative_to(folder / "code")
    frame = loaded_elsewhere["frame"]
    assert list(frame) == ["label", "class", *CLASSES]
    assert frame["label"] == list(expected.argmax(axis=1))
    assert frame["class"] == [CLASSES[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(np.array([frame[c] for c in CLASSES]).T, expected, rtol=1e-6)
    assert loaded_elsewhere["dtypes"][0] == "int64"
    assert set(loaded_elsewhere["dtypes"][2:]) == {"float32"}  # as the signature says


def test_one_image_gives_one_row_the_batch_gives_for_it(loaded_elsewhere):
    batch, one = loaded_elsewhere["frame"], loaded_elsewhere["one_image"]
    assert "frame" in one, one
    one = one["frame"]
    assert list(one) == list(batch)
    assert len(one["label"]) == 1
    assert (one["label"][0], one["class"][0]) == (batch["label"][0], batch["class"][0])
    # float32: BLAS sums a one-row product in another order than a batch's (~3e-6 apart here)
    np.testing.assert_allclose([one[c][0] for c in CLASSES], [batch[c][0] for c in CLASSES], rtol=1e-5)


def test_every_documented_form_of_the_images_gives_the_same_labels(loaded_elsewhere):
    labels = loaded_elsewhere["frame"]["label"]
    labels_of = {
        name: result["frame"]["label"] if "frame" in result else result
        for name, result in loaded_elsewhere["same_images"].items()
    }
    assert labels_of == {
        "flat row": labels[:1],
        "flat rows": labels,
        "int64 batch": labels,
        "whole floats": labels,
        "nested lists": labels,
        "DataFrame of flat cells": labels,
        "DataFrame of 3072 columns": labels,
    }


@pytest.mark.parametrize(
    "name, problem",
    [
        ("grayscale", "shape (32, 32); grayscale?"),
        ("RGBA", "shape (32, 32, 4); RGBA?"),
        ("300 values", "shape (300,)"),
        ("[0, 1] floats", "fractions such as"),
        ("above 255", "values from 256 to 511"),
        ("empty", "no pixels"),
    ],
)
def test_an_input_that_is_not_rgb_pixels_is_refused_saying_what_it_got_and_what_is_expected(
    loaded_elsewhere, name, problem
):
    refused = loaded_elsewhere["wrong"][name]
    assert refused.get("raised") == "MlflowException", refused
    assert refused["code"] == "INVALID_PARAMETER_VALUE"  # HTTP 400 when served
    assert problem in refused["message"]
    assert "expected RGB pixels as whole numbers in [0, 255]: one image (32, 32, 3)" in refused["message"]
    assert "\n" not in refused["message"]


def test_the_model_imports_no_package_beyond_mlflow_and_its_requirements(loaded_elsewhere, logged):
    folder, *_ = logged
    declared = {r.split("==")[0].lower() for r in (folder / "requirements.txt").read_text().split()}
    imported = {d.lower() for d in loaded_elsewhere["imported_by_the_model"]}
    # scratchnet itself is the model's code/ folder (the test above), not a requirement
    assert imported - {"scratchnet"} <= declared
