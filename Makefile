# Two commands on a fresh clone: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install dev test test-fast test-quick lint typecheck clean bench bench-quick slapd chromium

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
## Three workers (pytest-xdist), a test file each at a time: the suite mostly waits on
## servers, so three share two cores well, and a file's tests keep their order.
PYTEST_WORKERS ?= 3
test: install lint typecheck slapd chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

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
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow"

## Benchmarks against the bare floor measured in the same run, goals from issue 17 (bench/goals.py);
## each writes bench/results/<name>.json, then a table of figure, product, floor, ratio, goal, met.
## A goal missed prints MISSED and exits 0; a benchmark that fails exits non-zero.
## bench-quick: throughput (SQLite), approve -> active with its floor, 100 expiring together with
## 2,200 open; at most 10 minutes on a quiet 2-core machine.
bench-quick: $(STAMP)
	$(BIN)/python -m bench.suite quick

## The full set: also PostgreSQL (BENCH_POSTGRES_URL), 1,000 together, SCALE_N active (about an hour
## with 10,000: at least an hour and a half; SCALE_N=1000 for less), the command line, the API and the portal; then the plot.
SCALE_N ?= 10000
BENCH_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	SCALE_N=$(SCALE_N) BENCH_POSTGRES_URL=$(BENCH_POSTGRES_URL) $(BIN)/python -m bench.suite full
	$(BIN)/python -m bench.plot

## Forget the development state (store and Temporal history in .pim/).
clean:
	rm -rf .pim
