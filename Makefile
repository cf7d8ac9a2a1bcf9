# The two commands a platform engineer needs: `make synth` and `make test`.
# Both set everything up on first use (venv, pinned Python deps, pinned cdktf-cli,
# checkov's own venv) and skip that work when nothing it depends on changed.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov

# Node 20 makes jsii print an end-of-life banner on every process; it buries real output.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# The cdktf CLI and Terraform phone home for version checks; banks' CI has no route out.
export CHECKPOINT_DISABLE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup synth test lint pytest rehearse checkov bench lock clean

help:
	@echo "make synth   set up, then synthesize every environment into cdktf.out/"
	@echo "make test    set up, then lint and run the whole test suite"
	@echo "make rehearse boot the prod user data on simulated nodes (tests/rehearsal; needs root)"
	@echo "make checkov synthesize, then run the checkov gate (checkov-skips.yaml) over cdktf.out"
	@echo "make bench   measure synth and test time against the provider-load floor"
	@echo "make lock    re-resolve requirements*.lock from pyproject.toml / requirements-checkov.in"
	@echo "make clean   remove venvs, node_modules and build output"

setup: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found " + sys.version.split()[0] + "); run make PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	@touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.lock
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements-checkov.lock
	@touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

synth: setup
	$(PY) main.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

# PYTEST_FLAGS: extra pytest arguments, e.g. make test PYTEST_FLAGS='-m "not rehearsal"'
PYTEST_FLAGS ?=
pytest: setup
	$(PY) -m pytest $(PYTEST_FLAGS)

# `make pytest` runs the rehearsal too (tests/test_rehearsal.py, in the background of the rest of
# the suite); this runs it alone.
rehearse: setup
	$(PY) -m pytest -m rehearsal tests/test_rehearsal.py --durations=5

test: lint pytest

checkov: synth
	$(PY) -m obiam.checkov_gate --outdir cdktf.out

bench: setup
	$(PY) tools/bench.py

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip==26.0 pip-tools==7.6.2
	.lock-venv/bin/pip-compile --quiet --strip-extras --extra test --generate-hashes --allow-unsafe \
	  --no-emit-find-links --no-emit-index-url --no-emit-trusted-host -o requirements.lock pyproject.toml
	.lock-venv/bin/pip-compile --quiet --strip-extras --generate-hashes --allow-unsafe \
	  --no-emit-find-links --no-emit-index-url --no-emit-trusted-host -o requirements-checkov.lock requirements-checkov.in
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules cdktf.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
