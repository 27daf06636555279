# `make run`: the whole study on the bundled data. `make test`: `make lint`, then the test suite
# in a random order (its seed is printed; PYTEST_ARGS=--randomly-seed=N replays it).
# `make ui`: the MLflow UI on the study's runs (prints the URL; PORT=5001 make ui for another port).
# Each sets up .venv first, exactly as requirements.lock pins it; it is rebuilt only when
# pyproject.toml or the lock changes. `make lock`: upgrade the lock on purpose.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The page `dvc plots show` fills (.dvc/config plots.html_template), with Vega inlined: offline.
PLOTS_PAGE := .dvc/plots/page.html

.PHONY: run test lint typecheck ui venv lock bench clean

PORT ?= 5000

run: $(STAMP) $(PLOTS_PAGE)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Two pytest-xdist workers, a test module to one worker (its module-scoped fixtures built once):
# the slow end-to-end tests overlap. PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 2
test: lint $(PLOTS_PAGE)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# Linter and formatter check (ruff) on src, pipeline and tests; type check (mypy) of src/ and
# pipeline/ (pyproject.toml's [tool.mypy]: strict on the NumPy core) and of the tests' helpers.
# All configured in pyproject.toml; `make typecheck` runs the type check alone.
LINT_PATHS ?= src pipeline tests
lint: $(STAMP) typecheck
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --follow-imports=silent tests/processes.py tests/tiny_study.py tests/conftest.py

ui: $(STAMP)
	$(BIN)/python -m scratchnet.study.ui --port $(PORT)

venv: $(STAMP) $(PLOTS_PAGE)

$(PLOTS_PAGE): $(STAMP)
	$(BIN)/python -m scratchnet.study.plots.offline $@

# The environment is locked: requirements.lock pins every package of the pipeline and dev extras,
# with hashes, and `make venv` installs exactly those (then scratchnet itself, without resolving
# anything). uv installs the ~170 packages in seconds where pip takes ~2 min; where uv cannot be
# had, pip installs the same pins. --compile-bytecode as pip does: without .pyc files every
# stage's Python process would compile mlflow again (5-6 s per import instead of 2 s).
# `make lock` upgrades the lock on purpose (then commit it); tests/test_lock.py fails when
# pyproject.toml and the lock disagree.
LOCK := requirements.lock
LOCK_CMD := uv pip compile pyproject.toml --extra pipeline --extra dev --universal --generate-hashes \
	--no-emit-index-url --no-emit-find-links -o $(LOCK)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	( $(BIN)/python -m pip install --quiet uv && \
	  $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode --require-hashes -r $(LOCK) && \
	  $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode --no-deps -e . ) || \
	( $(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK) && \
	  $(BIN)/python -m pip install --quiet --no-deps -e . )
	touch $(STAMP)

# Not from $(STAMP): the lock must be writable when the venv cannot be built from it.
# `make lock LOCK_UPGRADE=` re-locks after a pyproject.toml edit without upgrading the rest.
LOCK_UPGRADE ?= --upgrade
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/$(LOCK_CMD) $(LOCK_UPGRADE)
	$(MAKE) venv

bench: $(STAMP)
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/data_stages.py

clean:
	rm -rf $(VENV)
