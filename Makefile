# `make run`: the whole study on the bundled data. `make test`: `make lint`, then the test suite
# in a random order (its seed is printed; PYTEST_ARGS=--randomly-seed=N replays it).
# `make ui`: the MLflow UI on the study's runs (prints the URL; PORT=5001 make ui for another port).
# Each sets up .venv first; it is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck ui venv bench clean

PORT ?= 5000

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Linter and formatter check (ruff), type check (mypy); configured in pyproject.toml. The lint
# covers tests/ and the type check the tests' helpers for now: src/ and pipeline/ join once the
# concurrent rewrites of issues 21-27 merge and are cleaned (`make typecheck` shows src/ now).
LINT_PATHS ?= tests
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --follow-imports=silent tests/processes.py tests/tiny_study.py tests/conftest.py

typecheck: $(STAMP)
	$(BIN)/mypy

ui: $(STAMP)
	$(BIN)/python -m scratchnet.study.ui --port $(PORT)

venv: $(STAMP)

# uv installs the ~150 packages of dvc + mlflow in seconds where pip takes ~2 min; where uv
# cannot be had, pip does the same install. --compile-bytecode as pip does: without .pyc files
# every stage's Python process would compile mlflow again (5-6 s per import instead of 2 s).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	( $(BIN)/python -m pip install --quiet uv && \
	  $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[pipeline,dev]' ) || \
	$(BIN)/python -m pip install --quiet -e '.[pipeline,dev]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/data_stages.py

clean:
	rm -rf $(VENV)
