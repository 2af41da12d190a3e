# The two commands a new user needs: `make serve` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime

export QLEDGER_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: serve test test-fast lint install-dev bench docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Serving needs the runtime dependencies only; tests and lint add the dev extras.
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP) $(RUNTIME)

serve: $(RUNTIME)
	$(BIN)/qledger serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy domain commands projections twin calibration

# Two workers, whole modules at a time (--dist loadfile): a module's tests share the
# server its fixture starts, and half the suite's time is servers starting.
test: lint
	$(BIN)/pytest -n 2 --dist loadfile

# Everything but the end-to-end tests (which start `qledger serve`): about a minute.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not e2e"

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# The documents generated from the code (docs/asyncapi.yaml, the route tables of
# docs/http-api.md); a test fails while one is stale.
docs: $(RUNTIME)
	$(BIN)/qledger docs

clean:
	rm -rf var .pytest_cache
