"""Networks from scratch in NumPy: layers, losses, models, input scaling, initialisation,
gradient checks, SGD.

    from scratchnet.nn import Normalizer, build_model, load_model
    model = build_model({"kind": "twolayer", "hidden_dim": 100}, input_dim=3072, num_classes=10, seed=0,
                        normalizer=Normalizer("mean", mean, std))   # takes uint8 pixels
    loss, grads = model.loss(X, y, reg=0.0)
"""

from .models import KINDS, Network, build_model, load_model
from .normalize import METHODS, Normalizer

__all__ = ["KINDS", "METHODS", "Network", "Normalizer", "build_model", "load_model"]
