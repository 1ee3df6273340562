# make run      : create .venv, install everything, run the default experiment on the embedded LM
# make test     : the same set-up, then the fast tier (logic on the recorded LM; <= 10 min on 2 cores)
# make test-all : the fast tier, then the slow tier (end-to-end on the embedded LM, PostgreSQL, Chromium)
# make test-slow: the slow tier alone
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SPEC   ?= experiments/routing_clinc150.yaml
PYTEST_ARGS ?=
# The fast tier runs in two pytest-xdist workers (9 min instead of 16 on 2 cores: its tests
# wait on subprocesses and SQLite as much as they compute); the slow tier runs serially, since
# the embedded LM and training already use both cores.
TEST_WORKERS ?= 2

# llama-cpp-python is built from source with explicit CPU features: a -march=native build
# on these VMs compiles llama.cpp's AMX kernels, which segfault on the first decode. The
# wheel is kept per version + flags under ~/.cache (pip's own cache ignores CMAKE_ARGS).
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	$(if $(shell grep -m1 -o avx512f /proc/cpuinfo 2>/dev/null),-DGGML_AVX512=ON)
WHEELHOUSE ?= $(HOME)/.cache/dspy-workbench/wheels/$(shell echo "$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS)" | cksum | cut -d' ' -f1)
LLAMA_WHEEL = $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl

.PHONY: setup run test test-all test-slow bench browser clean clean-llama

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# llama-cpp-python compiles from source the first time (~4 min on 2 cores), then comes from $(WHEELHOUSE).
	ls $(LLAMA_WHEEL) >/dev/null 2>&1 || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --quiet --no-deps \
		--no-cache-dir -w $(WHEELHOUSE) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall $(LLAMA_WHEEL)
	$(BIN)/python -m pip install --quiet --progress-bar off -e ".[dev]"
	$(BIN)/python -m workbench.lm.check
	# the registries' name index (.cache/registry-index.json): later spec checks skip importing DSPy
	$(BIN)/workbench list >/dev/null
	rm -f $(VENV)/.installed-* && touch $@

run: setup
	$(BIN)/workbench run $(SPEC)

test: setup
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Each test runs once: the fast tier first (quick feedback), then only the tests marked slow.
test-all: test test-slow

test-slow: setup browser
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# Headless Chromium for the MLflow UI test (Debian packages). Without root or a package
# mirror the UI test skips and says why; everything else still runs.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	    >/dev/null 2>&1 || echo "note: could not install chromium + chromium-driver; the UI test will skip"; }

bench: setup
	$(BIN)/python benchmarks/routing.py

clean:
	rm -rf $(VENV) .cache .pytest_cache

clean-llama:  # forget the built llama-cpp-python wheel (e.g. after changing LLAMA_CMAKE_ARGS by hand)
	rm -rf $(WHEELHOUSE) && rm -f $(VENV)/.installed-*
