"""What MLflow runs when it loads a logged scratchnet model ("models from code"): builds the
model object. Its settings (class names) and files (network, normalisation statistics) come
from the logged model's config and artifacts; see `pyfunc_model.ImageClassifier`."""

from mlflow.models import set_model

from scratchnet.study.pyfunc_model import ImageClassifier

set_model(ImageClassifier())
