# The README's two commands are `make run` and `make test`; both set up first via `make install`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU torch wheel lives in pip's configured find-links directory; uv ignores pip's config, so pass it on.
FIND_LINKS := $(shell pip config get global.find-links 2>/dev/null || echo /opt/wheels)
UV := $(BIN)/uv
STAMP := $(VENV)/.installed
PYPROJECTS := pyproject.toml sdk/pyproject.toml collector/pyproject.toml worker/pyproject.toml dashboard/pyproject.toml

.PHONY: install run test lint typecheck unit integration e2e gpu bench lock clean

install: $(STAMP)

$(STAMP): requirements.lock $(PYPROJECTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/pip install --quiet uv==0.13.9
	$(UV) pip sync --python $(BIN)/python --find-links $(FIND_LINKS) --compile-bytecode requirements.lock
	@touch $(STAMP)

# Regenerate the pinned lock after changing a dependency in any pyproject.toml or requirements.in.
lock: $(BIN)/python
	@test -x $(UV) || $(BIN)/pip install --quiet uv==0.13.9
	$(UV) pip compile --find-links $(FIND_LINKS) --python 3.11 -o requirements.lock requirements.in

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

run: install
	$(BIN)/loopwise up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest

unit: install
	$(BIN)/pytest -m unit

integration: install
	$(BIN)/pytest -m integration

e2e: install
	$(BIN)/pytest -m e2e

gpu: install
	$(BIN)/pytest -m gpu --run-gpu

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py

clean:
	rm -rf $(VENV) .loopwise .pytest_cache .mypy_cache .ruff_cache
