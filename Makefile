# Every target does its own set-up: a fresh machine needs only Python.
#
#   make demo      run the main example
#   make test      fast test suite + documentation build (what CI runs)
#   make test-all  whole suite (slow tests too) on every Python 3.10-3.13 found
#   make bench     benchmarks against other parallel-map libraries
#   make docs      documentation only (redraws the demo pipeline; warnings are errors)
#   make lint      ruff
#   make clean     remove virtual environments, caches and build output
#
# Recipes are plain /bin/sh. Virtual environments are .venv (default
# interpreter, $(PYTHON)) and .venv-X.Y (one per interpreter of the matrix).
# Stamp files inside a venv record what was installed, so re-runs skip pip
# until the packaging files change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_PYTHONS ?= 3.10 3.11 3.12 3.13
SPHINXOPTS ?= -W --keep-going

# Re-install when the packaging changes or a top-level package appears.
PKG_FILES := setup.cfg setup.py pyproject.toml $(wildcard imap/__init__.py papy/__init__.py)

.DEFAULT_GOAL := help

.PHONY: help demo test test-all bench docs lint clean

help:
	@sed -n 's/^#   //p' Makefile

# --- default virtual environment -------------------------------------------

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed-base: $(VENV)/.created $(PKG_FILES)
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.created $(PKG_FILES)
	$(BIN)/pip install -e '.[test,docs,dask,graphviz]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.created $(PKG_FILES)
	$(BIN)/pip install -e '.[bench]'
	touch $@

$(VENV)/.installed-ruff: $(VENV)/.created
	$(BIN)/pip install ruff
	touch $@

# --- targets -----------------------------------------------------------------

demo: $(VENV)/.installed-base
	$(BIN)/python examples/pipeline_demo.py

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest
	$(BIN)/python -m sphinx $(SPHINXOPTS) -b html doc doc/_build/html

# The drawing of the demo pipeline: its DOT text always, its SVG when Graphviz
# is installed (otherwise the committed SVG stays).
docs: $(VENV)/.installed-test
	$(BIN)/python doc/draw_demo.py
	$(BIN)/python -m sphinx $(SPHINXOPTS) -b html doc doc/_build/html

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/papy_pipeline.py
	$(BIN)/python benchmarks/journal.py

lint: $(VENV)/.installed-ruff
	$(BIN)/ruff check .

# --- the interpreter matrix ------------------------------------------------------
# `make test-3.12` runs the whole suite (slow tests included) on Python 3.12 in
# .venv-3.12; `make test-all` does that for each of TEST_PYTHONS that is
# installed (on PATH, or known to pyenv), then builds the docs once, and fails
# if any of them failed or if no interpreter was found at all.

# Keep the stamps: make would otherwise delete them as intermediate files.
.PRECIOUS: .venv-%/.installed-test

.venv-%/.installed-test: $(PKG_FILES)
	py=$$(.ci/find-python $*) || { echo "Python $* not found" >&2; exit 1; }; \
	[ -x .venv-$*/bin/python ] || $$py -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-$*/bin/pip install -e '.[test,dask,graphviz]'
	touch $@

test-%: .venv-%/.installed-test
	.venv-$*/bin/python -m pytest -m ""

test-all:
	@found=""; failed=""; \
	for v in $(TEST_PYTHONS); do \
	    if ! .ci/find-python $$v >/dev/null; then \
	        echo "== Python $$v: not installed, skipped"; continue; \
	    fi; \
	    found="$$found $$v"; \
	    echo "== Python $$v"; \
	    $(MAKE) --no-print-directory test-$$v || failed="$$failed $$v"; \
	done; \
	if [ -z "$$found" ]; then echo "== no Python of $(TEST_PYTHONS) found" >&2; exit 1; fi; \
	echo "== documentation"; \
	$(MAKE) --no-print-directory docs || failed="$$failed docs"; \
	if [ -n "$$failed" ]; then echo "== FAILED:$$failed" >&2; exit 1; fi; \
	echo "== passed on Python$$found, docs built"

clean:
	rm -rf $(VENV) .venv-* build dist *.egg-info doc/_build \
	    .pytest_cache .hypothesis .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
