# Two entry points: `make quickstart` (the main job) and `make test` (the test suite).
# Both create .venv and install the core and every bundled plugin on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cvkit-installed
# Development only: the linter, the type checker, timm as a reference implementation in
# equivalence tests, ptflops as the reference FLOP counter, playwright to drive Chromium in the
# report's browser test.
DEV_TOOLS := ruff mypy timm ptflops playwright
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))

.PHONY: install quickstart test test-fast lint typecheck browser clean

install: $(STAMP)

$(STAMP): framework/pyproject.toml $(wildcard plugins/*/pyproject.toml) constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cvkit needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet --no-build-isolation -c constraints.txt \
		-e "./framework[testing,onnx]" $(foreach p,$(PLUGINS),-e ./$(p)) $(DEV_TOOLS)
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/cvkit run recipes/quickstart.toml

# The whole suite: tests/ (the core) and plugins/*/tests/ (each plugin's own), after the
# linter and the type checker.
test: lint typecheck browser
	$(BIN)/python -m pytest -q

# The edit loop: the same without the slow end-to-end tests (subprocesses, installs).
test-fast: lint typecheck
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy framework/src $(wildcard plugins/*/src)

# Debian's Chromium for the report's browser test, installed where that is possible (as root
# with apt-get, as CI runs); elsewhere the test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
		|| { apt-get update -qq >/dev/null 2>&1 \
		&& apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; }; } \
		|| echo "note: Chromium is not installed; the report's browser test will skip"

clean:
	rm -rf $(VENV)
