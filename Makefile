# `make run`: the whole study on the bundled data. `make test`: the test suite.
# `make ui`: the MLflow UI on the study's runs (prints the URL; PORT=5001 make ui for another port).
# Each sets up .venv first, exactly as requirements.lock pins it; it is rebuilt only when
# pyproject.toml or the lock changes. `make lock`: upgrade the lock on purpose.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The page `dvc plots show` fills (.dvc/config plots.html_template), with Vega inlined: offline.
PLOTS_PAGE := .dvc/plots/page.html

.PHONY: run test ui venv lock bench clean

PORT ?= 5000

run: $(STAMP) $(PLOTS_PAGE)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

lock: $(STAMP)
	$(BIN)/$(LOCK_CMD) --upgrade
	$(MAKE) venv

bench: $(STAMP)
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/data_stages.py

clean:
	rm -rf $(VENV)
