# bayesgmm: two set-up commands
#   make demo   creates .venv, installs the package, runs `bayesgmm demo`
#   make test   creates .venv, installs with test extras, runs the test suite
# PYTHON=/path/to/python3.12 overrides the interpreter search.

SHELL := /bin/bash
VENV := .venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=

# Find a Python >= 3.12: PATH first, then pyenv's versions (newest first).
PYTHON ?= $(shell for c in python3.13 python3.12 python3 python \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do \
	  p=$$(command -v $$c 2>/dev/null) || continue; \
	  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; \
	done)

.PHONY: demo test test-slow lint bench clean venv browser

venv: $(VENV)/.installed-base

$(VENV)/bin/python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: no Python >= 3.12 found on PATH or under ~/.pyenv/versions;" \
	       "install one or run 'make PYTHON=/path/to/python3.12 ...'" >&2; exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { \
	  echo "error: PYTHON=$(PYTHON) is older than 3.12 (PyMC 6 needs >= 3.12)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: $(VENV)/bin/python pyproject.toml
	$(VPY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml
	$(VPY) -m pip install --quiet -e ".[test,docs]"
	@touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(VENV)/bin/bayesgmm demo

test: $(VENV)/.installed-test browser
	$(VPY) -m ruff check bayesgmm tests benchmarks scripts
	$(VPY) -m pytest $(PYTEST_ARGS)

# The report test opens the HTML in Debian's chromium; install it when absent
# (root with apt-get), otherwise that one test is skipped with a message.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report browser test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	    >/dev/null 2>&1 || echo "note: could not install chromium; the browser test will be skipped"; }

test-slow: $(VENV)/.installed-test
	$(VPY) -m pytest --run-slow -m slow $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VPY) -m ruff check bayesgmm tests benchmarks scripts

bench: $(VENV)/.installed-base
	$(VPY) benchmarks/bench_em.py

clean:
	rm -rf $(VENV) build *.egg-info
