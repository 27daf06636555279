"""A trained scratchnet network as an MLflow pyfunc model (logged by `tracking.Run.log_model`).

Its own module because it subclasses mlflow.pyfunc.PythonModel, so importing it imports MLflow;
`tracking` imports it only when a model is logged. MLflow pickles the class by reference, so
loading a logged model needs scratchnet installed (the model's pip_requirements say so).
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np


class ImageClassifier(mlflow.pyfunc.PythonModel):
    """A scratchnet network as an MLflow model: predict(images) with images in pixel space.

    Input: (N, 32, 32, 3) or (N, 3072) array of pixels in [0, 255] (uint8 or float), or a
    DataFrame of 3072 pixel columns. Output: a DataFrame with `label` (class index), `class`
    (name) and one probability column per class.
    """

    def __init__(self, class_names: list[str]):
        self.class_names = list(class_names)

    def load_context(self, context) -> None:
        from scratchnet.nn import load_model

        # The network carries the input scaling it was trained with (nn.Normalizer).
        self.network = load_model(context.artifacts["network"])

    # The np.ndarray hint tells MLflow not to infer a schema from it (a DataFrame of pixel
    # columns works too); without any hint MLflow warns at every import of this class.
    def predict(self, context, model_input: np.ndarray, params=None):
        import pandas as pd

        pixels = np.asarray(model_input)
        probs = self.network.probabilities(pixels.reshape(len(pixels), -1))
        labels = probs.argmax(axis=1)
        frame = pd.DataFrame(probs, columns=self.class_names)
        frame.insert(0, "class", [self.class_names[i] for i in labels])
        frame.insert(0, "label", labels)
        return frame
