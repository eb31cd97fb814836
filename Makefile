# Two commands on a fresh clone: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install dev test test-fast test-quick lint typecheck clean bench slapd chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Embedded Temporal dev server + worker + SQLite store with the demo tenant.
dev: install
	$(BIN)/pim dev --seed demo

## Lint, format check, import contracts and type check, then the whole suite:
## unit, store and workflow tests on real Temporal servers, on SQLite and PostgreSQL.
test: install lint typecheck slapd chromium
	$(BIN)/pytest

## OpenLDAP's slapd (Debian package) for the LDAP directory tests, installed once.
slapd:
	@bash .ci/install-slapd

## Debian's chromium for the portal's browser tests (tests/portal, Playwright), installed once.
chromium:
	@bash .ci/install-chromium

## ruff's checks, ruff's formatting and the import contracts (pyproject.toml, docs/architecture.md).
lint: install
	$(BIN)/ruff check pim workflows activities worker tests bench
	$(BIN)/ruff format --check pim workflows activities worker tests bench
	$(BIN)/lint-imports

## mypy on pim, workflows, activities and worker (settings in pyproject.toml): 0 errors.
typecheck: install
	$(BIN)/mypy

## Only the tests that need no Temporal server.
test-fast: install
	$(BIN)/pytest tests/unit tests/store

## Everything but the slow crash-and-restart tests.
test-quick: install chromium
	$(BIN)/pytest -m "not slow"

## Benchmarks (issue 6; the command line's latency: issue 14; the portal's: issue 16), in order; JSON and the plot go to bench/results/.
## About an hour and a half with SCALE_N=10000 (make bench SCALE_N=1000: about 25 minutes).
SCALE_N ?= 10000
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.revocation_lag
	$(BIN)/python -m bench.scale --n $(SCALE_N)
	$(BIN)/python -m bench.cli_latency
	$(BIN)/python -m bench.api_latency
	$(BIN)/python -m bench.portal_latency
	$(BIN)/python -m bench.plot

## Forget the development state (store and Temporal history in .pim/).
clean:
	rm -rf .pim
