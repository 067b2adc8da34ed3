# Thin wrapper over `python -m generator` and nox. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GEN := $(PY) -m generator
# The profile `make build` and friends use: the sandbox (one machine, for real) unless told otherwise,
# e.g. `make build PROFILE=default` on a machine that can pull the real base images.
PROFILE ?= sandbox
JOBS ?= 2

.DEFAULT_GOAL := help
.PHONY: help setup fleet list check generate generate-check lint test clean sandbox-up sandbox-status sandbox-clean sandbox-down \
	lock outdated build probe bench push audit promote publish

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_%-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

setup: $(INSTALLED) ## create .venv and install the project with its dev tools

fleet: $(INSTALLED) ## the main job: images/ up to date, the sandbox fleet built, probed, pushed to staging with its SBOM, benchmarked, audited, promoted and signed, verified, its page published
	$(GEN) generate
	$(GEN) sandbox up
	$(GEN) --profile sandbox lock
	$(GEN) --profile sandbox build -j $(JOBS)
	$(GEN) --profile sandbox probe
	$(GEN) --profile sandbox push --atomic
	$(GEN) --profile sandbox sbom --attach
	$(GEN) --profile sandbox bench --quick
	$(GEN) --profile sandbox audit
	$(GEN) --profile sandbox promote --atomic
	$(GEN) --profile sandbox verify
	$(GEN) --profile sandbox publish

sandbox-up: $(INSTALLED) ## start the local Docker engine and registry, build the stand-in base images
	$(GEN) sandbox up

sandbox-status: $(INSTALLED) ## what runs: engine, registry
	$(GEN) sandbox status

sandbox-clean: $(INSTALLED) ## give back the disk earlier runs filled: images tagged for the sandbox registry, build cache, the registry's store
	$(GEN) sandbox clean

sandbox-down: $(INSTALLED) ## stop what sandbox-up started (never an engine it did not start)
	$(GEN) sandbox down

lock: $(INSTALLED) ## resolve every file the $(PROFILE) cells COPY into its lock (name, URL, sha256)
	$(GEN) --profile $(PROFILE) lock

outdated: $(INSTALLED) ## newer upstream releases $(PROFILE) could adopt, as proposals (asks the package index)
	$(GEN) --profile $(PROFILE) outdated

build: $(INSTALLED) ## build every out-of-date cell of $(PROFILE) (JOBS=2 at once)
	$(GEN) --profile $(PROFILE) build -j $(JOBS)

build-%: $(INSTALLED) ## build one cell of $(PROFILE) by index, e.g. `make build-3`
	$(GEN) --profile $(PROFILE) build $*

probe: $(INSTALLED) ## run the probe inside every built image of $(PROFILE)
	$(GEN) --profile $(PROFILE) probe

push: $(INSTALLED) ## push $(PROFILE)'s candidates to its staging repository, all or nothing (cells that built and probed OK)
	$(GEN) --profile $(PROFILE) push --atomic

audit: $(INSTALLED) ## known vulnerabilities of $(PROFILE)'s locked Python packages; promote's policy reads them
	$(GEN) --profile $(PROFILE) audit

promote: $(INSTALLED) ## copy $(PROFILE)'s tested candidates to the release repository by digest, all or nothing
	$(GEN) --profile $(PROFILE) promote --atomic

bench: $(INSTALLED) ## GPU benchmarks in every built image of $(PROFILE) (a GPU runner's job; else "no GPU")
	$(GEN) --profile $(PROFILE) bench

publish: $(INSTALLED) ## the compatibility page of $(PROFILE) from its records (results/$(PROFILE)/site/)
	$(GEN) --profile $(PROFILE) publish

list: $(INSTALLED) ## list every cell of matrix.yaml
	$(GEN) list

check: $(INSTALLED) ## compatibility tables for every cell (exit 1 on FAIL)
	$(GEN) check

generate: $(INSTALLED) ## render images/ and docs/matrix.schema.json (writes only files whose bytes change)
	$(GEN) generate
	$(GEN) schema

generate-check: $(INSTALLED) ## fail if images/ or docs/matrix.schema.json is stale
	$(GEN) generate --check
	$(GEN) schema --check

lint: $(INSTALLED) ## ruff, mypy, hadolint over the generated Dockerfiles
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint --config .hadolint.yaml images/*/Dockerfile

test: $(INSTALLED) ## everything CI runs: lint, stale images/ check, the sandbox services, a browser, the test suite
	$(MAKE) --no-print-directory lint
	$(GEN) generate --check
	$(GEN) schema --check
	$(GEN) sandbox up
	$(GEN) sandbox browser
	$(VENV)/bin/pytest

clean: ## remove the virtualenv, caches and run-time products (images/ is committed and stays)
	rm -rf $(VENV) .nox .mypy_cache .ruff_cache .pytest_cache build results
