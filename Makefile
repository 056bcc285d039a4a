# Two set-up commands on a fresh machine: `make demo` (main job) and `make test` (test suite).
# Each creates .venv and installs what it needs. torch is pinned: on the dev/CI box pip finds a local
# CPU wheel for 2.13.0 (an unpinned torch would pull GBs of CUDA).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test test-all lint docs clean

demo: $(VENV)/.installed
	$(BIN)/polymodal train

test: $(VENV)/.installed
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-all: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m ""

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests

# The docs site (mkdocs.yml, docs/) into site/; --strict fails on a broken link, anchor or nav entry. The
# reference pages are generated from the code by docs/hooks/reference.py during the build.
docs: $(VENV)/.installed
	$(BIN)/mkdocs build --strict

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,pretrained,caption,export,hyperopt,tensorboard,serve,svg,mlflow,docs]"
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache site
