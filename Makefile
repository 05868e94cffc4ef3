# The README's commands. Each creates .venv from plain python3 when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/evaltui demo

lint: $(STAMP)
	$(BIN)/ruff check evaltui tests bench
	$(BIN)/ruff format --check evaltui tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -n auto evaltui tests

bench: $(STAMP)
	$(BIN)/python bench/import.py
	$(BIN)/python bench/keypress.py
	$(BIN)/python bench/agreement.py
	$(BIN)/python bench/judge.py
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
