"""A baseline's logged model, served by `mlflow models serve`, classifies raw CIFAR images over
REST as the library does, a batch or one image, and answers a malformed request with HTTP 400
and why (README: "Compare runs in MLflow", the requests shown there)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from processes import free_port, service
from tiny_study import BIN, CLASSES, environment, mlflow_runs, one_test_image_per_class

pytestmark = pytest.mark.e2e


def test_mlflow_models_serve_classifies_a_batch_and_one_image_as_the_library_and_refuses_bad_pixels(
    tiny_project, first_repro
):
    from scratchnet.nn import load_model

    client, runs = mlflow_runs(tiny_project)
    baseline = max(
        (
            r
            for r in runs
            if r.data.tags.get("scratchnet.stage") == "train" and r.data.tags["scratchnet.model"] == "twolayer"
        ),
        key=lambda r: r.info.start_time,
    )
    # What the library predicts, from the very files logged with the model.
    (output,) = baseline.outputs.model_outputs  # MLflow 3 keeps a run's model as a LoggedModel
    location = client.get_logged_model(output.model_id).artifact_location  # file: URI, or a path
    model = urlparse(location).path if location.startswith("file:") else location
    logged = yaml.safe_load((Path(model) / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    network = load_model(Path(model) / logged["network"]["path"])  # scales its pixel input itself
    # raw uint8 pixels, one image of each class: a model that always answers one class fails
    images, _ = one_test_image_per_class(tiny_project)
    expected = network.predict(images.reshape(len(images), -1))
    assert len(set(expected)) > len(CLASSES) // 2  # the tiny study's classes are learnt

    port = free_port()
    with service(
        [
            BIN / "mlflow",
            "models",
            "serve",
            "-m",
            f"runs:/{baseline.info.run_id}/model",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tiny_project,
        ready=f"http://127.0.0.1:{port}/ping",
        env=environment(MLFLOW_TRACKING_URI=f"sqlite:///{tiny_project / 'mlflow.db'}"),
    ):
        # The README's requests: {"inputs": [image, ...]}, each image 32 x 32 x [r, g, b] ...
        status, batch = invoke(port, {"inputs": images.tolist()})
        # ... and one image on its own, {"inputs": image}
        status_one, one = invoke(port, {"inputs": images[3].tolist()})
        # an image already scaled to [0, 1] is the client's mistake: 400, saying so
        status_bad, bad = invoke(port, {"inputs": (images[0] / 255.0).tolist()})
    assert status == 200, batch
    assert status_one == 200, one
    predictions = batch["predictions"]
    assert [p["label"] for p in predictions] == list(expected)
    assert [p["class"] for p in predictions] == [CLASSES[i] for i in expected]
    for p in predictions:
        assert sum(p[name] for name in CLASSES) == pytest.approx(1.0, abs=1e-5)

    (single,) = one["predictions"]  # the cat, alone
    assert (single["label"], single["class"]) == (predictions[3]["label"], predictions[3]["class"])
    # float32: a one-row product rounds differently from a batch's
    assert [single[c] for c in CLASSES] == pytest.approx([predictions[3][c] for c in CLASSES], rel=1e-5)

    assert status_bad == 400, bad
    assert bad["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "stack_trace" not in bad  # the model's own refusal, not a crash inside it
    assert "pixel values with fractions" in bad["message"]
    assert "scaled to [0, 1]? multiply by 255 and round" in bad["message"]


def invoke(port: int, body: dict) -> tuple[int, dict]:
    """POSTs body as JSON to the server's /invocations: (HTTP status, the JSON answer)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:  # 4xx/5xx: the answer still says why
        return err.code, json.load(err)
