# influmatch: the two commands a newcomer runs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0

.PHONY: demo test test-fast test-exhaustive lint typecheck install install-dev browser bench docs clean

# The stamp files make re-runs cheap: the install only runs again when pyproject.toml changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests exercise the Ray backend on a local instance, so the dev install includes the ray extra,
# and they check the HTML report in a real headless browser: Debian's chromium, installed if missing
# (a browser download by an installer such as Playwright's cannot reach its host here). Without apt
# (or without root) the browser test is skipped and says why.
$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev,ray]"
	$(MAKE) --no-print-directory browser
	touch $@

browser:
	@if command -v chromium >/dev/null 2>&1; then \
		echo "chromium: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium \
			|| echo "chromium could not be installed: the browser test of the report will be skipped"; \
	else \
		echo "no apt-get: chromium not installed, the browser test of the report will be skipped"; \
	fi

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
	$(BIN)/python -m pytest -q -n 2 -m "not exhaustive"

# The inner loop: everything but learning, subprocess, Ray and large-pool tests (under 2 minutes).
test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not exhaustive"

# The whole hyperparameter grids whose corners make test runs (about 10 minutes on 2 cores).
test-exhaustive: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2 -m exhaustive

bench: $(VENV)/.installed
	$(BIN)/influmatch bench --out runs/bench.json --overwrite

# The README's demo table, figures and timings, rerun and written back (influmatch docs).
docs: $(VENV)/.installed
	$(BIN)/influmatch docs

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
