#!/usr/bin/env python
"""Run from a project folder: `PYTHONPATH=src .venv/bin/python bench/stage_imports.py`.

CPU seconds (user+sys, min of 3) of a fresh python running each stage script's top-level imports,
plus `import mlflow` where the stage opens MLflow (lazily, inside scratchnet.study.tracking)."""

import ast
import resource
import subprocess
import sys

stages = ["source", "fetch", "preprocess", "fit", "train", "ablate", "evaluate", "attack", "report"]


def cpu(code):
    best = 1e9
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", code], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return best


print(f"| python start alone | {cpu('pass'):.2f} |")
for s in stages:
    tree = ast.parse(open(f"pipeline/{s}.py").read())
    imports = [
        ast.unparse(n)
        for n in tree.body
        if isinstance(n, ast.Import) or (isinstance(n, ast.ImportFrom) and n.module != "__future__")
    ]
    code = "\n".join(imports)
    uses_mlflow = "Tracker" in open(f"pipeline/{s}.py").read()
    line = f"| {s} | {cpu(code):.2f} |"
    if uses_mlflow:
        line += (
            f" {cpu(code + chr(10) + 'import mlflow; from mlflow.tracking import MlflowClient'):.2f} (with mlflow) |"
        )
    print(line, flush=True)
