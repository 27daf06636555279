"""A trained scratchnet network as an MLflow pyfunc model (`log` logs one).

Its own module because it subclasses mlflow.pyfunc.PythonModel, so importing it imports MLflow;
the train stage imports it only when it logs a model. The model is logged from code, not pickled
(MLflow warns about pickles, which run arbitrary code when loaded): `pyfunc_script.py` is the
script MLflow runs to build it at load time, with the class names from the model's config.
The model carries its own code: the `scratchnet` package is logged under the model's `code/`
folder (MLflow puts it on sys.path when the model loads), so its requirements are only the
packages that code imports. They never name `scratchnet`: on PyPI that is an unrelated
project, which a virtualenv would install.
"""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel  # not mlflow.pyfunc.PythonModel: mypy sees mlflow.pyfunc as a lazy loader

IMAGE_SHAPE = (32, 32, 3)  # height, width, RGB channels
PIXELS = math.prod(IMAGE_SHAPE)  # the values of one image, flattened in HWC order
EXPECTED = (
    "expected RGB pixels as whole numbers in [0, 255]: one image (32, 32, 3), a batch "
    "(N, 32, 32, 3), or flat HWC rows (3072,) or (N, 3072)"
)


class ImageClassifier(PythonModel):
    """A scratchnet network as an MLflow model: predict(images) with images in pixel space.

    Input (checked by `predict` itself, see `as_images`): RGB pixels in [0, 255], height x
    width x channel as in the CIFAR-10 arrays, as any of
        one image (32, 32, 3) or a batch (N, 32, 32, 3), as an array or nested lists;
        flat HWC rows: one (3072,) or a batch (N, 3072);
        a DataFrame with one column whose cells are flat 3072-value rows, or with 3072
        numeric columns (one row per image);
    of any integer dtype, or floats that are whole numbers. Over REST: `{"inputs": image}` or
    `{"inputs": [image, ...]}` with each image as nested lists of 32 x 32 x [r, g, b] integers.
    Anything else (grayscale or RGBA images, values outside [0, 255], pixels already scaled to
    [0, 1], an empty batch) raises MlflowException INVALID_PARAMETER_VALUE (HTTP 400 when
    served) saying what was received and what is expected.
    Output: pandas DataFrame, one row per image (one row for a single image), in this order:
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

    # The np.ndarray hint (the usual input; `as_images` takes the others) tells MLflow not to
    # infer a schema from it; without any hint MLflow warns at every import of this class.
    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        pixels = as_images(model_input)
        probs = self.network.probabilities(pixels.reshape(len(pixels), -1))
        labels = probs.argmax(axis=1)
        frame = pd.DataFrame(probs, columns=self.class_names)
        frame.insert(0, "class", [self.class_names[i] for i in labels])
        frame.insert(0, "label", labels.astype(np.int64))
        return frame


def as_images(model_input) -> np.ndarray:
    """Any input ImageClassifier documents -> uint8 (N, 32, 32, 3), N >= 1.

    Integer-valued pixels convert to uint8 exactly, so every accepted form of the same images
    gives the library's predictions. Raises MlflowException (INVALID_PARAMETER_VALUE) naming
    what was received and what is expected.
    """
    if isinstance(model_input, pd.DataFrame):
        values, received = _frame_values(model_input)
    else:
        try:
            values = np.asarray(model_input)
        except ValueError:
            _refuse(f"received a {type(model_input).__name__} of uneven lengths")
        received = (
            f"an array of shape {values.shape}"
            if isinstance(model_input, np.ndarray)
            else f"a {type(model_input).__name__} read as shape {values.shape}"
        )
    if values.size == 0:
        _refuse(f"received no pixels ({received})")
    if values.dtype.kind not in "iuf":
        _refuse(f"received {values.dtype} values, not numbers ({received})")
    if values.shape in (IMAGE_SHAPE, (PIXELS,)):
        values = values[None]  # one image is a batch of one
    if values.shape[1:] not in (IMAGE_SHAPE, (PIXELS,)):
        _refuse(f"received {received}{_shape_hint(values.shape)}")
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            _refuse(f"received NaN or infinite pixel values ({received})")
        fractional = values[values != np.round(values)]
        if fractional.size:
            _refuse(
                f"received pixel values with fractions such as {fractional[0]:.4g} ({received}; "
                "scaled to [0, 1]? multiply by 255 and round)"
            )
    low, high = values.min(), values.max()
    if low < 0 or high > 255:
        _refuse(f"received pixel values from {low} to {high} ({received})")
    return values.astype(np.uint8).reshape(len(values), *IMAGE_SHAPE)


def _frame_values(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """A DataFrame's pixels, one row per image, and how to name what was received."""
    if frame.shape[1] == 1 and frame.dtypes.iloc[0] == np.dtype(object) and len(frame):
        # One column of array-like cells: each cell is one image (flat HWC or 32 x 32 x 3).
        column = frame.columns[0]
        try:
            values = np.stack([np.asarray(cell) for cell in frame[column]])
        except ValueError:
            _refuse(f"received a DataFrame column {column!r} whose cells differ in shape")
        if values.ndim == 1:  # scalar cells: one value per image, never one flat image
            return values[:, None], f"a DataFrame column {column!r} of single values"
        return values, f"a DataFrame column {column!r} of cells of shape {values.shape[1:]}"
    return frame.to_numpy(), f"a DataFrame of {len(frame)} rows x {frame.shape[1]} columns"


def _shape_hint(shape: tuple[int, ...]) -> str:
    """How to fix the usual wrong image shapes, or nothing."""
    if shape[-3:] == (32, 32, 4):
        return "; RGBA? drop the alpha channel: x[..., :3]"
    if shape[-3:] == (3, 32, 32):
        return "; channels first? move them last: np.moveaxis(x, -3, -1)"
    if shape[-2:] == (32, 32) or shape[-3:] == (32, 32, 1):
        return "; grayscale? repeat it on 3 channels (32, 32, 3)"
    return ""


def _refuse(problem: str) -> NoReturn:
    raise MlflowException.invalid_parameter_value(f"{problem}; {EXPECTED}")


# What the model's code imports when it loads and predicts: mlflow, pandas, and numpy, the one
# dependency of scratchnet.nn. (The model is logged from code: nothing needs cloudpickle.)
# Tested against a fresh process's imports (tests/test_model_logging.py).
REQUIRED = ("mlflow", "numpy", "pandas")


def log(run_id: str, model_path: Path, class_names: list[str], example: np.ndarray) -> None:
    """Logs the network saved at `model_path` into run `run_id` as this model ("model").

    example: uint8 (n, 32, 32, 3) real images in [0, 255], stored as the model's input
    example (what the UI shows and `mlflow models serve` users copy); a few images, since
    MLflow keeps them as JSON.
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    import scratchnet

    # The signature is the output only (ImageClassifier's docstring): no input schema admits
    # both one image and a batch (MLflow checks a TensorSpec's number of dimensions exactly, in
    # `predict` and over REST; a column-based one makes every input a DataFrame). `as_images`
    # checks the input instead, and the input example shows it.
    outputs = Schema(
        [ColSpec("long", "label"), ColSpec("string", "class"), *(ColSpec("float", name) for name in class_names)]
    )
    with mlflow.start_run(run_id=run_id):
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_script.py")),
            model_config={"class_names": list(class_names)},
            artifacts={"network": str(model_path)},
            signature=ModelSignature(outputs=outputs),
            input_example=np.asarray(example, dtype=np.uint8),
            code_paths=[str(Path(scratchnet.__file__).resolve().parent)],
            # pinned to the versions installed here, as MLflow pins by default
            pip_requirements=[f"{name}=={importlib.metadata.version(name)}" for name in REQUIRED],
        )
