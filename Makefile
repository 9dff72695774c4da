# Two entry points: `make quickstart` (the main job) and `make test` (the test suite).
# Both create .venv and install the core and every bundled plugin on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cvkit-installed
# Development only: the linter, the type checker, and timm as a reference implementation in
# equivalence tests.
DEV_TOOLS := ruff mypy timm
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))

.PHONY: install quickstart test test-fast lint typecheck clean

install: $(STAMP)

$(STAMP): framework/pyproject.toml $(wildcard plugins/*/pyproject.toml) constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cvkit needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet --no-build-isolation -c constraints.txt \
		-e "./framework[testing]" $(foreach p,$(PLUGINS),-e ./$(p)) $(DEV_TOOLS)
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/cvkit run recipes/quickstart.toml

# The whole suite: tests/ (the core) and plugins/*/tests/ (each plugin's own), after the
# linter and the type checker.
test: lint typecheck
	$(BIN)/python -m pytest -q

# The edit loop: the same without the slow end-to-end tests (subprocesses, installs).
test-fast: lint typecheck
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy framework/src $(wildcard plugins/*/src)

clean:
	rm -rf $(VENV)
