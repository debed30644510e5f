# FlowLink developer entry points. `make up` and `make test` are the only set-up a fresh
# machine needs: both create or update the virtualenvs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU wheel of torch lies on this machine's disk; installing it first keeps pip from
# resolving a multi-GB CUDA build for sentence-transformers.
TORCH_PIN := torch==2.13.0

# Validators that must not share the project's virtualenv: aws-sam-cli pins its own boto3,
# botocore and friends. They live in a separate tools virtualenv; the MCP Inspector CLI
# (0.15.0 is the newest that runs on Node 20) goes next to them, for the e2e tests.
TOOLS_VENV := .venv-tools
TOOLS_BIN := $(TOOLS_VENV)/bin
TOOLS_STAMP := $(TOOLS_VENV)/.installed
SAM_CLI_PIN := aws-sam-cli==1.170.0
INSPECTOR_PIN := @modelcontextprotocol/inspector@0.15.0
# cfn-lint does not look inside DefinitionUri: the state machine has its own validator.
ASL_VALIDATOR_PIN := asl-validator@4.0.0
ASL_VALIDATOR := $(TOOLS_VENV)/node/node_modules/.bin/asl-validator
LINT_REGION := us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: venv tools up status test test-fast lint eval bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip show torch >/dev/null 2>&1 || $(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[dev,semantic]'
	touch $(STAMP)

tools: $(TOOLS_STAMP)

# Re-run when the pins above change (they live in this file).
$(TOOLS_STAMP): Makefile
	test -x $(TOOLS_BIN)/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_BIN)/python -m pip install -q --upgrade pip
	$(TOOLS_BIN)/python -m pip install -q $(SAM_CLI_PIN)
	if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix $(TOOLS_VENV)/node --no-audit --no-fund --loglevel=error $(INSPECTOR_PIN) $(ASL_VALIDATOR_PIN); \
	else \
	  echo "npm not found: the MCP Inspector e2e tests and the state machine check will be skipped" >&2; \
	fi
	touch $(TOOLS_STAMP)

# The whole stack on this machine: moto on 4566 (provisioned from template.yaml), the
# gateway on 9080, one enrolled relay with health on 9081. Ctrl-C stops everything.
up: venv
	$(BIN)/flowlink local up

status: venv
	$(BIN)/flowlink local status

# Unit, integration and e2e tests. They pick free ports, so they also pass while `make up` runs.
test: venv tools
	$(BIN)/python -m pytest -q

# Without the e2e tier (no stack processes): the quick loop while editing.
test-fast: venv
	$(BIN)/python -m pytest -q -m "not e2e"

# All three run even when one fails, so one pass shows every problem.
lint: venv tools
	status=0; \
	$(BIN)/python -m ruff check shield edge_relay functions layers tests || status=1; \
	$(TOOLS_BIN)/sam validate --lint --region $(LINT_REGION) --template-file template.yaml || status=1; \
	$(BIN)/cfn-lint template.yaml || status=1; \
	$(ASL_VALIDATOR) --json-path statemachines/approval.asl.json || status=1; \
	exit $$status

eval: venv
	$(BIN)/python -m scripts.eval

bench: venv
	$(BIN)/python -m scripts.bench

clean:
	rm -rf $(VENV) $(TOOLS_VENV) .pytest_cache .flowlink
