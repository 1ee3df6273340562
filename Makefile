# make run  : create .venv, install everything, run the default experiment on the embedded LM
# make test : the same set-up, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SPEC   ?= experiments/routing_clinc150.yaml
PYTEST_ARGS ?=

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# llama-cpp-python compiles from source the first time (~5 min on 2 cores); pip caches the wheel.
	$(BIN)/python -m pip install --quiet --progress-bar off -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

run: setup
	$(BIN)/workbench run $(SPEC)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/routing.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
