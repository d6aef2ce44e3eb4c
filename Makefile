# make install | test | test-core | demo | bench | lint | lock | test-gpu | bench-gpu
# Every target installs what it needs first; `make install` is quick when nothing changed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.anymodal-installed
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
DEBIAN_PACKAGES := libusb-1.0-0 ffmpeg espeak-ng
PYTEST_ARGS ?=

.PHONY: install system-packages test test-core demo bench lint test-gpu bench-gpu clean compare lock lock-upgrade

install: system-packages $(STAMP)

# The plugins need these Debian packages (open3d links libusb; tests write mp3/mp4 with
# ffmpeg; the demo speaks with espeak-ng). Installed only when missing and when root.
system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "warning: missing Debian packages:$$missing (run as root or: sudo apt-get install$$missing)"; fi; \
	fi

# The lock (requirements/lock.txt) is the only list of what goes into .venv: `make install`
# syncs the venv to it exactly (removing anything else) and re-syncs whenever the lock or a
# local pyproject.toml changes, then proves the install by loading every compiled dependency.
$(STAMP): requirements/lock.txt pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(PY) || python3 -m venv $(VENV)
	@# uv itself comes from the lock too (its pinned version), bootstrapped once with pip.
	test -x $(UV) || $(PIP) install -q "$$(grep -E '^uv==' requirements/lock.txt)"
	@# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on the
	@# development machines) Python would otherwise recompile torch and more at every start.
	$(UV) pip sync --python $(PY) --compile-bytecode requirements/lock.txt
	$(PY) -m anymodal doctor --strict
	sha256sum requirements/lock.txt > $(STAMP)

# Re-resolve requirements/lock.in (the loose requirements and every local pyproject.toml)
# into requirements/lock.txt, keeping the pinned versions that still satisfy them;
# `make lock-upgrade` moves every package to its newest allowed version.
LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-manylinux_2_36 --quiet
lock:
	@test -x $(UV) || { python3 -m venv $(VENV) && $(PIP) install -q "$$(grep -E '^uv==' requirements/lock.txt)"; }
	$(UV) pip compile requirements/lock.in $(LOCK_FLAGS) -o requirements/lock.txt

lock-upgrade:
	@test -x $(UV) || { python3 -m venv $(VENV) && $(PIP) install -q "$$(grep -E '^uv==' requirements/lock.txt)"; }
	$(UV) pip compile requirements/lock.in $(LOCK_FLAGS) --upgrade -o requirements/lock.txt

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The core suite with no plugin loaded (tests that need one live in tests/integration/).
test-core: install
	ANYMODAL_DISABLE_PLUGIN_AUTOLOAD=1 $(PY) -m pytest -q tests --ignore=tests/integration $(PYTEST_ARGS)

# ruff (style, complexity, Google docstrings, no heavy media imports in the core) and mypy.
lint: install
	$(VENV)/bin/ruff check anymodal plugins tests benchmarks examples
	$(VENV)/bin/mypy

demo: install
	$(VENV)/bin/anymodal demo --digits

bench: install
	$(PY) benchmarks/run_all.py

test-gpu: install
	$(PY) -m pytest -q -m gpu tests plugins

bench-gpu: install
	$(PY) benchmarks/kernels.py --gpu-only

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs

# The objective study: every objective with and without subset-consistent training, 3 seeds,
# one run per core at a time, items decoded once (sample cache under data/).
compare: install
	$(PY) examples/compare_objectives.py --jobs $$(nproc) --cache data/digits3-cache
