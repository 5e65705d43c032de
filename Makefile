# influmatch: the two commands a newcomer runs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0

.PHONY: demo test test-fast lint typecheck install install-dev bench clean

# The stamp files make re-runs cheap: the install only runs again when pyproject.toml changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests exercise the Ray backend on a local instance, so the dev install includes the ray extra.
$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev,ray]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/influmatch demo --out runs/demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q -n 2

# The inner loop: everything but learning, subprocess, Ray and large-pool tests (under 2 minutes).
test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

bench: $(VENV)/.installed
	$(BIN)/influmatch bench --out runs/bench.json

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
