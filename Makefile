# make run      : create .venv, install the locked set, run the default experiment on the embedded LM
# make test     : the same set-up, then the fast tier (logic on the recorded LM; <= 10 min on 2 cores)
# make test-all : the fast tier, then the slow tier (end-to-end on the embedded LM, PostgreSQL, Chromium)
# make test-slow: the slow tier alone
# make lock     : re-make requirements.lock from pyproject.toml (after changing a dependency)
# make notebooks: re-execute the notebooks on small samples and save them with their outputs
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
SPEC   ?= experiments/routing_clinc150.yaml
PYTEST_ARGS ?=
# The fast tier runs in two pytest-xdist workers (9 min instead of 16 on 2 cores: its tests
# wait on subprocesses and SQLite as much as they compute); the slow tier runs serially, since
# the embedded LM and training already use both cores. Each test file goes to one worker
# (--dist loadfile): a module's fixture (an exported RAG/agent bundle, a served run) is then
# built once, not once per worker; 8:31 instead of 11:07 for the fast tier, one run each.
TEST_WORKERS ?= 2

# uv installs the locked set (13 s from a cold cache, 2 s warm, against 2 min 14 s for pip on
# the same lock). The CPU build of torch is the file these machines keep in /opt/wheels.
UV_VERSION   := 0.13.9
UV           := $(BIN)/uv
TORCH_WHEELS ?= /opt/wheels
SETUP_LOG    := $(VENV)/setup.log
# Each set-up step prints one line; its own output goes to $(SETUP_LOG), shown when it fails.
QUIET = >>$(SETUP_LOG) 2>&1 || { tail -n 40 $(SETUP_LOG); echo "set-up failed; the whole log: $(SETUP_LOG)"; exit 1; }

# llama-cpp-python is built from source with explicit CPU features: a -march=native build
# on these VMs compiles llama.cpp's AMX kernels, which segfault on the first decode. The
# wheel is kept per version + flags under ~/.cache, so clones on one machine share it.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	$(if $(shell grep -m1 -o avx512f /proc/cpuinfo 2>/dev/null),-DGGML_AVX512=ON)
WHEELHOUSE ?= $(HOME)/.cache/dspy-workbench/wheels/$(shell echo "$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS)" | cksum | cut -d' ' -f1)
LLAMA_WHEEL = $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl

# Python's own .pyc caching for everything make runs. With PYTHONDONTWRITEBYTECODE set (as on
# this machine) no process ever wrote one, so each recompiled DSPy, MLflow, sklearn...: importing
# the runner took 16.4 s instead of 6.3 s in every CLI call, test subprocess and sweep worker.
# The set-up's own LM check and registry index write the common ones, so a shell that keeps the
# variable set still reads them; uv's --compile-bytecode did the same for everything, but added
# 47 s to a fresh set-up.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup run test test-all test-slow lock lock-upgrade notebooks bench browser notebooks clean clean-llama

setup: $(STAMP)

$(VENV)/bin/uv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" $(QUIET)

$(STAMP): pyproject.toml $(LOCK) | $(VENV)/bin/uv
	@echo "set-up: $(VENV) (log: $(SETUP_LOG))"
	@if ! ls $(LLAMA_WHEEL) >/dev/null 2>&1; then \
	  echo "set-up: building llama-cpp-python $(LLAMA_CPP_VERSION) from source (once per machine: about 11 min on 2 cores)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --quiet --no-deps --no-cache-dir \
	    --disable-pip-version-check -w $(WHEELHOUSE) llama-cpp-python==$(LLAMA_CPP_VERSION) $(QUIET); fi
	@echo "set-up: installing the locked dependencies ($(LOCK), hashes checked)"
	@$(UV) pip install --python $(BIN)/python --no-deps --find-links $(TORCH_WHEELS) -r $(LOCK) $(QUIET)
	@$(UV) pip install --python $(BIN)/python --no-deps --reinstall-package llama-cpp-python $(LLAMA_WHEEL) $(QUIET)
	@$(UV) pip install --python $(BIN)/python --no-deps -e . $(QUIET)
	@$(BIN)/python -m workbench.environment check || echo "set-up: warning: $(LOCK) is stale (above); run \`make lock\`"
	@echo "set-up: checking the embedded LM"
	@$(BIN)/python -m workbench.lm.check $(QUIET)
	@# the registries' name index (.cache/registry-index.json): later spec checks skip importing DSPy
	@$(BIN)/workbench list >/dev/null 2>>$(SETUP_LOG)
	@rm -f $(VENV)/.installed-* && touch $@

# Exact versions and hashes of every dependency but llama-cpp-python (built above), resolved
# by uv for Python 3.11 on this platform; its first line is the digest `make test` checks.
# The pins already in the lock are kept where pyproject.toml still allows them (uv reads its
# output file); `make lock-upgrade` moves every package to its newest allowed release.
LOCK_FLAGS ?=
lock: | $(VENV)/bin/uv
	@cp $(LOCK) $(LOCK).tmp 2>/dev/null || true
	@$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	    --find-links $(TORCH_WHEELS) --no-emit-package llama-cpp-python --custom-compile-command "make lock" \
	    --quiet $(LOCK_FLAGS) -o $(LOCK).tmp || { rm -f $(LOCK).tmp; exit 1; }
	@{ PYTHONPATH=. $(BIN)/python -m workbench.environment header && grep -v '^# pyproject-dependencies-sha256: ' \
	    $(LOCK).tmp; } > $(LOCK).new && mv $(LOCK).new $(LOCK) && rm -f $(LOCK).tmp
	@echo "lock: $(LOCK) pins $$(grep -c '==' $(LOCK)) packages"

lock-upgrade:
	@$(MAKE) --no-print-directory lock LOCK_FLAGS=--upgrade

run: setup
	$(BIN)/workbench run $(SPEC)

test: setup
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

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

# Re-execute every notebook on a small sample (NB_TEST_SIZE items per evaluation) against a
# fresh store under mlruns/ and save it with its outputs, so the repository shows results.
NB_TEST_SIZE ?= 30
NB_STORE := $(CURDIR)/mlruns/notebooks
notebooks: setup
	@rm -rf $(NB_STORE) && mkdir -p $(NB_STORE)
	@for nb in notebooks/*.ipynb; do \
	  echo "notebooks: executing $$nb (log: $(NB_STORE)/nbconvert.log)"; \
	  WORKBENCH_NB_TEST_SIZE=$(NB_TEST_SIZE) WORKBENCH_TRACKING_URI=sqlite:///$(NB_STORE)/mlflow.db \
	  WORKBENCH_ARTIFACT_ROOT=$(NB_STORE)/artifacts WORKBENCH_NB_OUT=$(NB_STORE)/out-$$(basename $$nb .ipynb) \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 \
	    --ClearMetadataPreprocessor.enabled=True $$nb >>$(NB_STORE)/nbconvert.log 2>&1 || \
	    { tail -n 30 $(NB_STORE)/nbconvert.log; exit 1; }; \
	done

bench: setup
	$(BIN)/python benchmarks/routing.py

clean:
	rm -rf $(VENV) .cache .pytest_cache

clean-llama:  # forget the built llama-cpp-python wheel (e.g. after changing LLAMA_CMAKE_ARGS by hand)
	rm -rf $(WHEELHOUSE) && rm -f $(VENV)/.installed-*
