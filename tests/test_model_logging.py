"""The logged MLflow model: a signature, an input example, its own code, honest requirements.

A small network is logged into a temporary store the way the train stage logs a baseline
(`Run.log_model`); the model is then loaded where the installed scratchnet is out of reach, as a
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
                with tracker.run("baseline", {}, {}) as run:
                    run.log_model(tmp / "net.npz", CLASSES, example=images[:1])
        finally:
            logging.getLogger("mlflow").removeHandler(logged_warnings)
        import mlflow.artifacts

        folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.run_id}/model",
                                                          dst_path=str(tmp / "downloaded")))
    return folder, images, expected, (
        [f"{w.category.__name__}: {w.message}" for w in caught] + logged_warnings.messages)


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


def test_the_model_declares_its_input_and_output_and_keeps_a_real_input_example(logged):
    folder, images, _, _ = logged
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    inputs = json.loads(meta["signature"]["inputs"])
    assert inputs == [{"type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 32, 32, 3]}}]
    outputs = json.loads(meta["signature"]["outputs"])
    assert [c["name"] for c in outputs] == ["label", "class", *CLASSES]
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
flat_rows = pd.DataFrame({"pixels": list(images.reshape(len(images), 3072))})  # MLflow reshapes
import scratchnet
print(json.dumps({"scratchnet": scratchnet.__file__, "frame": predicted.to_dict("list"),
                  "from_flat_rows": model.predict(flat_rows)["label"].tolist(),
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
        cwd=tmp, capture_output=True, text=True, timeout=180,
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
    assert loaded_elsewhere["from_flat_rows"] == frame["label"]
    assert loaded_elsewhere["dtypes"][0] == "int64"
    assert set(loaded_elsewhere["dtypes"][2:]) == {"float32"}  # as the signature says


def test_the_model_imports_no_package_beyond_mlflow_and_its_requirements(loaded_elsewhere, logged):
    folder, *_ = logged
    declared = {r.split("==")[0].lower() for r in (folder / "requirements.txt").read_text().split()}
    imported = {d.lower() for d in loaded_elsewhere["imported_by_the_model"]}
    # scratchnet itself is the model's code/ folder (the test above), not a requirement
    assert imported - {"scratchnet"} <= declared
