# SynapseNet developer commands. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# What the install builds: the package metadata and the two C extensions.
BUILD_INPUTS := pyproject.toml setup.py $(wildcard src/synapsenet/services/dataversion/_csvscan*.[ch] src/synapsenet/services/dataversion/_cuts.c)

.PHONY: run test lint typecheck services bench clean

$(VENV)/.run-installed: $(BUILD_INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(BUILD_INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run-installed

## run: install, then serve every service on embedded defaults at http://127.0.0.1:8000
run: $(VENV)/.run-installed
	$(BIN)/synapsenet serve

## test: install with test extras, make sure PostgreSQL and Redis are up, lint, type-check, test
test: $(VENV)/.test-installed services lint typecheck
	$(BIN)/python -m pytest --cov=synapsenet --cov-report=term-missing:skip-covered \
		--cov-report=json:coverage.json
	$(BIN)/python scripts/coverage_gate.py coverage.json

services:
	bash scripts/ensure-services.sh

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests scripts setup.py
	$(BIN)/ruff format --check src tests scripts setup.py

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

## bench: run every benchmark under benchmarks/ (gbstats without its numpy<2/pandas<2 pins)
bench: $(VENV)/.test-installed services
	$(BIN)/python -m pip install --quiet --no-deps gbstats==0.8.0
	for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) src/synapsenet/services/dataversion/_csvscan.*.so src/synapsenet/services/dataversion/_cuts.*.so .mypy_cache .ruff_cache .pytest_cache .hypothesis coverage.json .coverage
