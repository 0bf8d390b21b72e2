# ead-connector developer commands. `make demo` and `make test` work on a fresh clone:
# they create .venv and install the locked dependencies first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
PYTEST_ARGS ?=

.PHONY: install demo test lint fmt typecheck unit soak bench bench-quick openapi lock clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(BIN)/uv requirements/dev.lock pyproject.toml
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed  ## create .venv with the locked dependencies

demo: install  ## run the whole flow on the embedded default and print a summary
	$(BIN)/ead-connector demo --items 1000

test: lint typecheck unit  ## everything CI runs

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest $(PYTEST_ARGS)

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

SOAK_KILLS ?= 50

soak: install  ## the reliability suite, long: many kill -9s, longer outages, more fuzzing
	CONNECTOR_SOAK_KILLS=$(SOAK_KILLS) $(BIN)/pytest -m reliability -s -p no:cacheprovider tests/reliability $(PYTEST_ARGS)

bench: install  ## throughput figures with their in-run baselines
	$(BIN)/python -m bench

bench-quick: install
	$(BIN)/python -m bench --quick

openapi: install  ## write docs/openapi.json from the app's routes
	$(BIN)/python -m connector.adapters.web.openapi > docs/openapi.json

lock: $(BIN)/uv  ## re-resolve the locked dependency sets after editing pyproject.toml
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements/dev.lock
	$(BIN)/uv pip compile --quiet pyproject.toml --generate-hashes --python-version 3.11 -o requirements/runtime.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
