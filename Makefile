# Thin wrapper over `python -m generator` and nox. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GEN := $(PY) -m generator

.DEFAULT_GOAL := help
.PHONY: help setup fleet list check generate generate-check lint test clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

setup: $(INSTALLED) ## create .venv and install the project with its dev tools

fleet: $(INSTALLED) ## the main job: check every cell, then render images/
	$(GEN) check > /dev/null || { $(GEN) check | grep -B2 -A12 ': FAIL' ; exit 1; }
	$(GEN) list
	$(GEN) generate

list: $(INSTALLED) ## list every cell of matrix.yaml
	$(GEN) list

check: $(INSTALLED) ## compatibility tables for every cell (exit 1 on FAIL)
	$(GEN) check

generate: $(INSTALLED) ## render images/ (writes only files whose bytes change)
	$(GEN) generate

generate-check: $(INSTALLED) ## fail if images/ is stale
	$(GEN) generate --check

lint: $(INSTALLED) ## ruff, mypy, hadolint over the generated Dockerfiles
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint --config .hadolint.yaml images/*/Dockerfile

test: $(INSTALLED) ## everything CI runs: lint, stale images/ check, the test suite
	$(MAKE) --no-print-directory lint
	$(GEN) generate --check
	$(VENV)/bin/pytest

clean: ## remove the virtualenv and caches (images/ is committed and stays)
	rm -rf $(VENV) .nox .mypy_cache .ruff_cache .pytest_cache
