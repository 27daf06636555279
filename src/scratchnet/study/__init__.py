"""The study layer: everything that needs the pipeline extras (MLflow, pandas, matplotlib).

params (the one loader of params.yaml), layout (every artifact path), runs (training runs and
their records), tracking (the one MLflow wrapper) and the pyfunc model, evaluation (the ablation
tables), plots and report. It holds no numerics of its own: those live in the NumPy-only core
(`scratchnet.nn`, `scratchnet.data`, `scratchnet.training`, `scratchnet.fitting`,
`scratchnet.attacks`), which never imports this package.
"""
