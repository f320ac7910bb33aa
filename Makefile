# `make test` and `make demo` work on a fresh machine: they create .venv and install everything.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch must come from the package registry: the CPU wheel in a local find-links folder has no
# matching torchvision, and nnU-Net's trainer lookup imports torchvision (via timm). So pip's
# find-links setting is pointed at an empty folder for our installs.
NO_LOCAL_WHEELS := $(abspath $(VENV))/no-local-wheels
PIP := PIP_FIND_LINKS=$(NO_LOCAL_WHEELS) $(PY) -m pip

.PHONY: install test demo clean-demo

$(VENV)/.installed: setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	mkdir -p $(NO_LOCAL_WHEELS)
	$(PIP) install -e ".[test]"
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q --durations=25 tests

demo: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh

clean-demo:
	rm -rf demo_data
