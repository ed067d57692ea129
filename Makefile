# Two commands set everything up on a fresh machine with Python 3.11+ and make:
#   make demo   - create the environment, start the sandbox, run the guide's flow against it
#   make test   - create the environment if needed, run the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: env demo test test-slow bench lint catalogue clean

env: $(STAMP)

$(STAMP): pyproject.toml hatch_build.py src/sparc/client/_md5lanes.c
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: env
	$(BIN)/python examples/guide_demo.py

# Tests mostly wait on loopback HTTP (retries, backoff, slow faults): 4 workers, each with its
# own sandbox, keep the suite short on 2 cores.
TEST_WORKERS ?= 4

test: env
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

test-slow: env
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) -m slow

bench: env
	$(BIN)/python bench/import_time.py
	$(BIN)/python bench/download.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/walk.py --delay 20
	$(BIN)/python bench/zinc_export.py
	$(BIN)/python bench/o2sparc_fanout.py
	$(BIN)/python bench/upload.py

lint: env
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/ruff check src tests bench examples hatch_build.py
	$(BIN)/mypy

catalogue: env
	$(BIN)/python -m sparc.sandbox.catalogue.build

clean:
	rm -rf $(VENV) build dist .pytest_cache
