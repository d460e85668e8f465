# Two-command setup: `make demo` and `make test` create .venv when missing.
# `make test` is what CI runs (.ci/run): the house rules (lint, format, types), then the tests.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
ELMAN_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),$(HOME)/.cache/elman)
export ELMAN_DATA
PY_SOURCES := src tests benchmarks tools

.PHONY: demo test lint format typecheck unit distributed browser-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Torch is installed first and on its own, so the CPU build (or TORCH_SPEC) is what
# satisfies the `torch>=2.4` requirement and pip never pulls a CUDA build by surprise.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python -m elman demo

test: lint typecheck unit

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy src/elman

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

# the tests that start several processes (also part of `unit`)
distributed: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m distributed

# the playground in a real Chromium (Debian's `chromium`; skipped with the reason without it)
browser-test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m browser tests/serve

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/recurrent.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
