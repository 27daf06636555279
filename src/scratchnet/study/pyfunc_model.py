"""A trained scratchnet network as an MLflow pyfunc model (logged by `tracking.Run.log_model`).

Its own module because it subclasses mlflow.pyfunc.PythonModel, so importing it imports MLflow;
`tracking` imports it only when a model is logged. The model is logged from code, not pickled
(MLflow warns about pickles, which run arbitrary code when loaded): `pyfunc_script.py` is the
script MLflow runs to build it at load time, with the class names from the model's config.
The model carries its own code: the `scratchnet` package is logged under the model's `code/`
folder (MLflow puts it on sys.path when the model loads), so its requirements are only the
packages that code imports. They never name `scratchnet`: on PyPI that is an unrelated
project, which a virtualenv would install.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

IMAGE_SHAPE = (32, 32, 3)  # height, width, RGB channels


class ImageClassifier(mlflow.pyfunc.PythonModel):
    """A scratchnet network as an MLflow model: predict(images) with images in pixel space.

    Input (the model's signature; MLflow checks it before `predict` runs):
        uint8 array (N, 32, 32, 3), RGB pixels in [0, 255], height x width x channel as in
        the CIFAR-10 arrays. One image is a batch of one (`image[None]`). Over REST:
        `{"inputs": [image, ...]}` with each image as nested lists of 32 x 32 x [r, g, b]
        integers. A DataFrame with one column whose cells are flat 3072-value rows (HWC
        order) is reshaped to (N, 32, 32, 3) by MLflow.
    Output: pandas DataFrame, one row per image, columns in this order:
        label   int64, the predicted class index in [0, 10)
        class   str, that class's name (`airplane`, `automobile`, ...)
        one float32 column per class name, in label order: the softmax probabilities
        (each row sums to 1; `label` is the column of the largest).
    """

    def load_context(self, context) -> None:
        from scratchnet.nn import load_model

        self.class_names = list(context.model_config["class_names"])
        # The network carries the input scaling it was trained with (nn.Normalizer).
        self.network = load_model(context.artifacts["network"])

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """pixels (N, 32, 32, 3) in [0, 255] -> (N, C) float32 class probabilities.

        The one call into the library: the network scales the pixels itself.
        """
        return self.network.probabilities(pixels.reshape(len(pixels), -1))

    # The np.ndarray hint tells MLflow not to infer a schema from it (the logged signature
    # says what the input is); without any hint MLflow warns at every import of this class.
    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        probs = self.probabilities(np.asarray(model_input))
        labels = probs.argmax(axis=1)
        frame = pd.DataFrame(probs, columns=self.class_names)
        frame.insert(0, "class", [self.class_names[i] for i in labels])
        frame.insert(0, "label", labels.astype(np.int64))
        return frame


def signature(class_names: list[str]):
    """The model's signature: the input and output that ImageClassifier's docstring states."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, *IMAGE_SHAPE))])
    outputs = Schema([ColSpec("long", "label"), ColSpec("string", "class"),
                      *(ColSpec("float", name) for name in class_names)])
    return ModelSignature(inputs=inputs, outputs=outputs)


# What the model's code imports when it loads and predicts: mlflow, pandas, and numpy, the one
# dependency of scratchnet.nn. (The model is logged from code: nothing needs cloudpickle.)
# Tested against a fresh process's imports (tests/test_model_logging.py).
REQUIRED = ("mlflow", "numpy", "pandas")


def requirements() -> list[str]:
    """pip requirements pinned to the versions installed here, as MLflow pins by default."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIRED]


def script() -> str:
    """The models-from-code script that builds an ImageClassifier when MLflow loads the model."""
    return str(Path(__file__).with_name("pyfunc_script.py"))


def code_path() -> str:
    """The scratchnet package folder, logged with the model as its code."""
    import scratchnet

    return str(Path(scratchnet.__file__).resolve().parent)
