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

.PHONY: install browser run test lint typecheck unit integration e2e gpu bench bench-eval bench-sdk lock clean

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

# Headless Chromium for the dashboard's browser tests (Debian packages; about 30 s the first time).
browser:
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

test: install browser lint typecheck
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

# Evaluator throughput next to the libraries they wrap, drift at 5k vs 5k, and the online runner's lag.
bench-eval: install
	$(BIN)/python bench/evaluators.py $(BENCH_ARGS)
	$(BIN)/python bench/online_eval.py $(BENCH_ARGS)

# SDK overhead next to competitors, in a separate venv so they never enter requirements.lock. Each competitor
# is installed on its own; one that cannot be installed is noted in the venv and the bench reports it as skipped.
# `make bench-sdk BENCH_ARGS=--quick` for a smoke run.
BENCH_VENV := .venv-bench
BENCH_SDK_COMPETITORS := langfuse==5.0.4 traceloop-sdk==0.62.4 openlit==1.45.0
BENCH_ARGS ?=

bench-sdk: install
	@test -x $(BENCH_VENV)/bin/python || $(UV) venv --quiet --python $(BIN)/python $(BENCH_VENV)
	$(UV) pip install --quiet --python $(BENCH_VENV)/bin/python --find-links $(FIND_LINKS) -e './sdk[otlp]' httpx
	@rm -f $(BENCH_VENV)/bench-sdk-not-installed.txt
	@for pkg in $(BENCH_SDK_COMPETITORS); do \
		echo "$(UV) pip install $$pkg"; \
		$(UV) pip install --quiet --python $(BENCH_VENV)/bin/python --find-links $(FIND_LINKS) "$$pkg" \
			|| echo "$$pkg: install failed (see the make output)" >> $(BENCH_VENV)/bench-sdk-not-installed.txt; \
	done
	@if $(UV) pip freeze --python $(BENCH_VENV)/bin/python 2>/dev/null | grep -qiE '^(nvidia-|torch==[^+]*$$)'; then \
		echo "CUDA packages were pulled into $(BENCH_VENV); remove it and pin what pulled them" >&2; exit 1; fi
	$(BENCH_VENV)/bin/python bench/sdk_overhead.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .loopwise .pytest_cache .mypy_cache .ruff_cache
