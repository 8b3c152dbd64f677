# Quick start: `make run` (daemon on built-in defaults) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean

$(BIN)/maild: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/maild

run: $(BIN)/maild
	$(BIN)/maild run

test: $(BIN)/maild
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadfile $(PYTEST_ARGS)

bench: $(BIN)/maild
	$(BIN)/python bench/smtp_ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache
