# The two commands of the README, and the checks behind them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench bench-quick clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --config-settings editable_mode=compat -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

## the main job: the demonstration, on the embedded default unless INTERACTIONS_* name services
demo: $(STAMP)
	$(BIN)/interactions demo

## every check: lint, format, types, then the tests on PostgreSQL and Redis. .ci/bootstrap
## first installs or starts what the suite needs, or names what to install and stops.
test: $(STAMP)
	@exports="$$(.ci/bootstrap)" && eval "$$exports" && \
	$(MAKE) --no-print-directory lint typecheck && $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

## every benchmark beside its baseline, one table (var/bench/results.json); ARGS=--quick for small counts
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

## the same figures at small counts, in about three minutes
bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick
