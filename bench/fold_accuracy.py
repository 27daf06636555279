"""The folded input scaling against the explicit one on the study's real baselines (issue 26).

    cd PROJECT && /path/to/.venv/bin/python /path/to/bench/fold_accuracy.py [softmax twolayer]

PROJECT is a project folder whose data/processed exists (`dvc repro preprocess`). For each
model: trains the train stage's baseline run (params.yaml's section, train.seed, train.epochs)
with this library, single-threaded (scratchnet.study.classifier.train_classifier), and prints its test
accuracy; then, on the trained weights and the 10,000 test images, the largest logit error of
the float32 network (scaling folded into its first GEMM) and of the explicit float32 path
(Normalizer.forward, then the same layers) against the float64 explicit path.
"""

from __future__ import annotations

import sys

import numpy as np

from scratchnet.nn import build_model
from scratchnet.study.classifier import train_classifier
from scratchnet.study.params import load_params, run_config
from scratchnet.study.runs import load_splits


def explicit_scores(model, X, dtype):
    """The pre-issue-26 path: the batch normalised as a whole, then plain affine layers."""
    plain = build_model(model.config, model.input_dim, model.num_classes, dtype=dtype)
    plain.params = {k: v.astype(dtype) for k, v in model.params.items()}
    return plain.scores(model.normalizer.forward(X, dtype))


def main(models: list[str]) -> None:
    params = load_params()
    splits = load_splits()
    X_test = np.asarray(splits["test"][0])
    for name in models:
        config = run_config(params, name, "baseline", params["train"]["epochs"][name])
        record, _, model = train_classifier(name, config, params["train"]["seed"], splits, progress=False)
        reference = explicit_scores(model, X_test, np.float64)
        scale = np.abs(reference).max()
        folded = model.scores(X_test).astype(np.float64)
        explicit = explicit_scores(model, X_test, np.float32).astype(np.float64)
        agree = np.mean(folded.argmax(1) == explicit.argmax(1))
        print(
            f"{name} ({config['normalize']}, {config['epochs']} epochs): test_acc {record['test_acc']:.4f}, "
            f"final val_acc {record['final_val_acc']:.4f}; max |logit| {scale:.2f}; max |error| vs float64: "
            f"folded float32 {np.abs(folded - reference).max():.2e}, explicit float32 "
            f"{np.abs(explicit - reference).max():.2e}; argmax agreement folded/explicit {agree:.4%}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["softmax", "twolayer"])
