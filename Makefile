# vmdiskimage-operator: `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
CLUSTER := hack/cluster/cluster.sh

##@ General

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2} /^##@/ {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)}' $(MAKEFILE_LIST)

##@ Development

.PHONY: deps
deps: ## Install the system packages the tests need (apt, needs root).
	hack/install-deps.sh

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==26.3
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the Python virtualenv with the pinned dev tools.

.PHONY: lint
lint: venv ## Run ruff, yamllint and ansible-lint.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/yamllint --strict .
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/ansible-lint --strict

.PHONY: fmt
fmt: venv ## Format the Python code with ruff.
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

##@ Tests

.PHONY: test
test: lint test-unit ## Run every test tier: lint, unit, registry. The one command CI runs.

.PHONY: test-unit
test-unit: venv ## Run the unit tests (pure logic, no services).
	$(PYTEST) -m unit

