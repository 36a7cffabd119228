# Everyday commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format validate install dev clean template chaos bench

run: $(VENV)/.installed ## Set up and run the whole service on the embedded defaults
	$(BIN)/drip db upgrade
	$(BIN)/drip run

test: $(VENV)/.installed-dev ## Set up and run the whole test suite
	$(BIN)/pytest

lint: $(VENV)/.installed-dev ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

validate: $(VENV)/.installed ## Check the sequence files as the service would at start
	$(BIN)/drip sequences validate --production

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) .drip drip.db drip.db-* outbox .pytest_cache .mypy_cache .ruff_cache

template: $(VENV)/.installed-dev ## Rebuild the executive resume template that email 1 delivers
	$(BIN)/python -m drip.downloads.resume_template sequences/files/executive-resume-template.docx

chaos: $(VENV)/.installed-dev ## The full fault-injection run; writes docs/reliability.md
	$(BIN)/python scripts/chaos.py --contacts 700 --race 500 --report docs/reliability.md

bench: $(VENV)/.installed-dev ## Throughput and latency figures; writes docs/performance.md
	$(BIN)/python bench/run.py --deliveries 20000 --rows 1000000 --seconds 30 --report docs/performance.md
