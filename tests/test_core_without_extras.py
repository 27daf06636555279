"""The NumPy-only core works with the pipeline extras absent (DESIGN: usable without DVC,
MLflow, pandas or matplotlib installed): every core module imports and a tiny model trains."""

import subprocess
import sys
import textwrap

CORE = (
    "scratchnet",
    "scratchnet.nn",
    "scratchnet.data",
    "scratchnet.training",
    "scratchnet.fitting",
    "scratchnet.attacks",
    "scratchnet.files",
)
ABSENT = ("mlflow", "pandas", "matplotlib", "dvc")

PROGRAM = textwrap.dedent(f"""
    import sys

    class Absent:
        # A finder that makes the extras unimportable, as if they were not installed.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {ABSENT!r}:
                raise ImportError(f"{{name}} is not installed (blocked by the test)")
            return None

    sys.meta_path.insert(0, Absent())
    import importlib
    for module in {CORE!r}:
        importlib.import_module(module)

    import numpy as np
    from scratchnet.attacks import pgd
    from scratchnet.data import PixelStats
    from scratchnet.nn import Normalizer, build_model
    from scratchnet.training import accuracy, train

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 3072)).astype(np.uint8)
    y = rng.integers(0, 10, 60)
    stats = PixelStats.fit(X)
    model = build_model({{"kind": "twolayer", "hidden_dim": 8}}, seed=0,
                        normalizer=Normalizer("mean", stats.mean, stats.std))
    result = train(model, X, y, X[:10], y[:10], epochs=2, lr=0.1, lr_decay=0.9, batch_size=16,
                   reg=0.0, seed=0, progress=False)
    assert len(result.history) == 2 and not result.diverged
    pgd(model, X[:2], y[:2], norm="l2", epsilon=10.0, steps=1, step_size=10.0)
    print(accuracy(model, X, y), sorted(m for m in sys.modules if m.split(".")[0] in {ABSENT!r}))
""")


def test_the_core_imports_and_trains_with_mlflow_pandas_matplotlib_and_dvc_absent():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    accuracy, loaded = out.stdout.strip().split(" ", 1)
    assert 0.0 <= float(accuracy) <= 1.0
    assert loaded == "[]"
