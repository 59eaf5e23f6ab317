# The two commands a newcomer runs (see README): `make run` and `make test`.
# Each sets up what it needs: a virtual environment with the package, and the
# Debian package that ships Fashion-MNIST.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR := /usr/share/datasets/fashion-mnist
# pip byte-compiles every file of every package it installs (torch's thousands: about a
# minute of `make test`'s install on 2 cores). With --no-compile, Python compiles a module
# the first time something imports it and keeps the .pyc, which make's Python may write
# (some shells set PYTHONDONTWRITEBYTECODE).
PIP := $(PY) -m pip install -q --no-compile
export PYTHONDONTWRITEBYTECODE :=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
WORKDIR ?= workdirs/icbm
PROFILE ?= full

.PHONY: setup dev data chromium run test test-slow bench device-check results dist lint lint-check format docs docs-test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[train,test]'
	touch $@

data:
	@[ -f $(DATA_DIR)/train-images-idx3-ubyte.gz ] || { \
	  echo "Installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }

# Headless Chromium (Debian's chromium package) for tests/test_docs.py.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Chromium (Debian package chromium)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

run: setup data
	$(PY) -m experiments.icbm --workdir $(WORKDIR)

# Every test not marked slow on 2 fake devices (3 workers: with 2, subprocess and kernel
# start-ups left ~30% of the 2 cores idle), and at the same time, in the background, the
# tests that need 8 (tests/conftest.py), which fill those idle moments; their report follows
# the first one's. The second session collects only the files that mark some (collecting
# all costs ~15 s). `make test-slow` runs the tests marked slow the same way: the notebooks,
# the wheel installed into a fresh venv, Qwix, the benchmark and device-check commands end
# to end (CI runs both: .ci/run).
TEST_MARK ?= not slow
EIGHT_DEVICE_FILES = $(shell grep -l eight_devices tests/test_*.py)
test: setup data
	@log=$$(mktemp); \
	$(PY) -m pytest -q -m "eight_devices and ($(TEST_MARK))" $(EIGHT_DEVICE_FILES) > $$log 2>&1 & \
	eight=$$!; \
	HTAF_TEST_DEVICES=2 $(PY) -m pytest -q -m "$(TEST_MARK)" -n 3 --dist loadfile --no-loadscope-reorder; \
	two=$$?; wait $$eight; rc=$$?; \
	echo "=== the tests that need 8 fake devices (run alongside)"; cat $$log; rm -f $$log; \
	[ $$two = 0 ] && { [ $$rc = 0 ] || [ $$rc = 5 ]; }  # 5: none of the 8-device tests selected

test-slow:
	$(MAKE) test TEST_MARK=slow

# torch is pinned before the bench extra: an unpinned torch range can pull a
# multi-GB CUDA build; torch==2.13.0 resolves to the local CPU wheel where one
# is provided (this workplace) and to PyPI's build elsewhere. Writes BENCHMARKS.md.
bench: setup data
	$(PIP) 'torch==2.13.0'
	$(PIP) -e '.[bench]'
	$(PY) -m benchmarks.run

# The first command on a new GPU/TPU host: devices, 1-vs-N step equality, kernel speeds.
device-check: setup
	$(PY) -m benchmarks.device_check

results: setup data
	$(PY) -m experiments.run all --profile $(PROFILE)

# ruff (pyproject's [tool.ruff]): its lint rules, import order included, and the format
# check; then pyright at its basic level on htaf_jax/ ([tool.pyright]). `make format`
# applies what the two ruff checks ask for.
LINT_PATHS = htaf_jax experiments benchmarks tests notebooks docs/_ext
dev: $(VENV)/.dev-installed
$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

lint-check: lint
lint: dev
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m pyright --pythonpath $(PY)

format: dev
	$(PY) -m ruff check --select I --fix $(LINT_PATHS)
	$(PY) -m ruff format $(LINT_PATHS)

# The documentation site, into docs/_build/html (open docs/_build/html/index.html); any
# Sphinx warning fails it (a broken reference, a public name without an entry). Pages with
# code cells are executed while it builds; the notebooks too, unless a SMALL=1 run of them
# is in docs/_notebooks (HTAF_NOTEBOOK_OUT=docs/_notebooks make test-slow leaves one: docs/conf.py).
# First the examples in the docstrings run as doctests.
docs: setup data
	$(PIP) -e '.[docs]'
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules $(DOCTEST_MODULES)
	rm -rf docs/_build
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# The modules whose docstrings hold examples (>>>).
DOCTEST_MODULES = $(shell grep -l '>>>' htaf_jax/*.py htaf_jax/*/*.py)

# The built site in headless Chromium: screenshots, rendered math, no console errors.
docs-test: setup chromium
	$(PY) -m pytest -q -p no:cacheprovider tests/test_docs.py

# The release files: an sdist and a wheel (built from the sdist) in dist/, checked by twine.
dist: setup
	rm -rf dist
	$(PY) -m build -o dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) workdirs dist docs/_build docs/_notebooks docs/notebooks
