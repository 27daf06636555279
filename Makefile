# `make run`: the whole study on the bundled data. `make test`: the test suite.
# `make ui`: the MLflow UI on the study's runs (prints the URL; PORT=5001 make ui for another port).
# Each sets up .venv first; it is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The page `dvc plots show` fills (.dvc/config plots.html_template), with Vega inlined: offline.
PLOTS_PAGE := .dvc/plots/page.html

.PHONY: run test ui venv bench clean

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
