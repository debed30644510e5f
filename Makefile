# FlowLink developer entry points. `make up` and `make test` are the only set-up a fresh
# machine needs: both create or update the virtualenv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU wheel of torch lies on this machine's disk; installing it first keeps pip from
# resolving a multi-GB CUDA build for sentence-transformers.
TORCH_PIN := torch==2.13.0

.PHONY: venv up test lint eval bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip show torch >/dev/null 2>&1 || $(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[dev,semantic]'
	touch $(STAMP)

up: venv
	$(BIN)/flowlink local up

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/python -m ruff check shield edge_relay functions layers tests

eval: venv
	$(BIN)/python -m scripts.eval

bench: venv
	$(BIN)/python -m scripts.bench

clean:
	rm -rf $(VENV) .pytest_cache .flowlink
