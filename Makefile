# Every target installs what it needs into .venv first: a fresh machine needs only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: install test lint docs demo bench clean

$(VENV)/bin/python:
	@echo "==> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Everything: the library, the server, the file readers and the developer tools.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing arkitekt-lab with the server and the developer tools (a minute or two the first time)"
	$(BIN)/python -m pip install --progress-bar off -c constraints.txt -e ".[dev]"
	touch $(STAMP) $(DEMO_STAMP) $(DOCS_STAMP)

# The demo needs the library and the server only (the full install above covers it too).
$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing arkitekt-lab with the server (about a minute the first time)"
	$(BIN)/python -m pip install --progress-bar off -c constraints.txt -e ".[server]"
	touch $(DEMO_STAMP)

# The documentation site needs the library and the documentation tools only.
$(DOCS_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing arkitekt-lab with the documentation tools"
	$(BIN)/python -m pip install --progress-bar off -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2  # two workers: most tests wait on servers, not on a core

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples conftest.py
	$(BIN)/ruff format --check src tests bench examples conftest.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache  # its cache has reported import graphs that no longer exist

# The documentation site (docs/ and the API reference from the docstrings) into site/.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

demo: $(DEMO_STAMP)
	$(BIN)/python examples/demo.py

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-bench-lib build dist site .mypy_cache .ruff_cache
