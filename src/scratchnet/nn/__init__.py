"""Networks from scratch in NumPy: layers, losses, models, initialisation, gradient checks.

    from scratchnet.nn import build_model, load_model
    model = build_model({"kind": "twolayer", "hidden_dim": 100}, input_dim=3072, num_classes=10, seed=0)
    loss, grads = model.loss(X, y, reg=0.0)
"""

from .models import KINDS, Network, build_model, load_model

__all__ = ["KINDS", "Network", "build_model", "load_model"]
