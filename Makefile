# Two commands on a fresh clone: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install dev test test-fast test-quick lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Embedded Temporal dev server + worker + SQLite store with the demo tenant.
dev: install
	$(BIN)/pim dev --seed demo

## Lint (errors only), then the whole suite: unit, store and workflow tests on
## real Temporal servers, on SQLite and PostgreSQL.
test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check pim workflows activities worker tests

## Only the tests that need no Temporal server.
test-fast: install
	$(BIN)/pytest tests/unit tests/store

## Everything but the slow crash-and-restart tests.
test-quick: install
	$(BIN)/pytest -m "not slow"

## Forget the development state (store and Temporal history in .pim/).
clean:
	rm -rf .pim
