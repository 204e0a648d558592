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

.PHONY: demo
demo: deps venv collection-link build/ansible-operator build/collections ## Run it: local node, registry, a sample disk imported by the operator and checked (root).
	$(PY) hack/demo.py up

.PHONY: demo-down
demo-down: ## Stop what `make demo` left running and take the local node down.
	$(PY) hack/demo.py down

.PHONY: run
run: venv collection-link build/ansible-operator ## Run the operator on this machine against your kubeconfig (Ctrl-C stops it).
	hack/run-operator.sh

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
lint: venv collection-link ## Run ruff, yamllint and ansible-lint.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/yamllint --strict .
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/ansible-lint --strict

.PHONY: fmt
fmt: venv ## Format the Python code with ruff.
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

##@ Tests

# The one test command. The cluster tier brings the local node up and always takes it
# down again; pytest's exit code 5 (no tests collected) fails the run like any failure.
.PHONY: test
test: lint test-unit test-registry test-sanity test-bundle test-cluster ## Run every tier: lint, unit, registry, sanity, bundle, cluster. CI runs this.

.PHONY: test-unit
test-unit: venv collection-link ## Unit tests: pure logic, no services.
	$(PYTEST) -m unit

.PHONY: test-registry
test-registry: venv collection-link ## Registry tier: real docker-registry (plain, TLS, basic, token), skopeo, umoci, oras (built by hack/oras.sh), qemu-img, xorriso.
	$(PYTEST) -m registry

.PHONY: test-sanity
test-sanity: venv collection-link ## ansible-test sanity on the collection's plugins (slow the first time).
	$(PYTEST) -m sanity

.PHONY: test-bundle
test-bundle: venv ## Bundle tier: the committed bundle is what `make bundle` makes, passes operator-sdk bundle validate (operatorframework suite), broken ones fail; its image builds.
	$(PYTEST) -m bundle

.PHONY: test-cluster
test-cluster: venv collection-link build/ansible-operator build/collections ## Cluster tier: brings the local node up, runs the tests (hardening included), prints the hardening table, takes it down.
	rm -f build/hardening-table.jsonl
	trap '$(CLUSTER) down' EXIT; \
	$(CLUSTER) up; \
	$(CLUSTER) images; \
	$(PYTEST) -m cluster; status=$$?; \
	$(PY) hack/hardening-table.py || true; \
	exit $$status

.PHONY: hardening
hardening: venv collection-link build/ansible-operator build/collections ## Run the hardening cases (faults, bad input, least privilege) on the local node and print the table.
	rm -f build/hardening-table.jsonl
	trap '$(CLUSTER) down' EXIT; \
	$(CLUSTER) up; \
	$(CLUSTER) images; \
	$(PYTEST) -m hardening || true; \
	$(PY) hack/hardening-table.py

.PHONY: bench-operator
bench-operator: venv collection-link build/ansible-operator ## Benchmark the operator on the local node (needs cluster-up and cluster-images); prints figures.
	$(PY) bench/operator.py

.PHONY: bench-datapath
bench-datapath: venv ## Benchmark the data path (synthetic, and a real-files disk as raw/qcow2/compressed qcow2) against a two-pass import and the floor; prints figures.
	$(PY) bench/datapath.py

##@ Deployment (kustomize) and the OLM bundle

# The bundle's version and the images it installs: where a release is pushed. Locally
# built images are localhost/vmdiskimage-{operator,populator}:dev (`make deploy` uses those).
VERSION ?= 0.1.0
IMG ?= quay.io/vm-example/vmdiskimage-operator:v$(VERSION)
POPULATOR_IMG ?= quay.io/vm-example/vmdiskimage-populator:v$(VERSION)
BUNDLE_IMG ?= localhost/vmdiskimage-operator-bundle:v$(VERSION)

.PHONY: deploy
deploy: ## Install the operator into your kubeconfig's cluster with kustomize (config/default; images from operator-image, populator-image).
	hack/deploy.sh deploy

.PHONY: undeploy
undeploy: ## Remove it: VMDiskImages first (imports in flight stop), then the operator and its CRD; filled PVCs stay.
	hack/deploy.sh undeploy

.PHONY: operator-sdk
operator-sdk: ## Build operator-sdk from its Go module (cached in ~/.cache/vmdiskimage) and print its path.
	hack/operator-sdk.sh

.PHONY: bundle
bundle: ## Generate bundle/ and bundle.Dockerfile with operator-sdk and validate them (VERSION, IMG, POPULATOR_IMG).
	VERSION=$(VERSION) IMG=$(IMG) POPULATOR_IMG=$(POPULATOR_IMG) hack/bundle.sh

.PHONY: bundle-image
bundle-image: ## Build the bundle image $(BUNDLE_IMG) from bundle.Dockerfile with buildah (root).
	buildah bud --quiet --isolation chroot --layers=false --ignorefile bundle.Dockerfile.dockerignore \
	  -f bundle.Dockerfile -t $(BUNDLE_IMG) .

##@ Ansible

COLLECTION_LINK := .ansible/collections/ansible_collections/vm_example/vmdiskimage

# ansible-lint installs a copy of the collection there when it finds no link: a copy
# would go stale, so it is replaced by the link.
.PHONY: collection-link
collection-link: ## Make the repository visible to Ansible as the collection vm_example.vmdiskimage.
	mkdir -p $(dir $(COLLECTION_LINK))
	if [[ -e $(COLLECTION_LINK) && ! -L $(COLLECTION_LINK) ]]; then rm -rf $(COLLECTION_LINK); fi
	ln -sfn ../../../.. $(COLLECTION_LINK)

##@ Local cluster (root; see hack/cluster/README.md)

.PHONY: cluster-build
cluster-build: ## Build (or find cached) Kubernetes, etcd, CSI and ansible-operator binaries.
	$(CLUSTER) build

.PHONY: cluster-up
cluster-up: ## Start the single-node cluster; kubeconfig: see `hack/cluster/cluster.sh env`.
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: ## Stop the cluster: processes, mounts, loop devices, bridge.
	$(CLUSTER) down

.PHONY: cluster-images
cluster-images: build/ansible-operator build/collections ## Build the base, operator and populator images and load them into the node.
	$(CLUSTER) images

##@ Images

build/ansible-operator: hack/cluster/cluster.sh
	$(CLUSTER) build
	mkdir -p build
	eval "$$($(CLUSTER) env)"; cp "$$VMDI_ANSIBLE_OPERATOR" $@

.PHONY: build/collections
build/collections: venv
	$(PY) hack/vendor_collections.py requirements.yml $@

.PHONY: operator-image
operator-image: build/ansible-operator build/collections ## Build the operator image localhost/vmdiskimage-operator:dev.
	$(CLUSTER) build-image Dockerfile . localhost/vmdiskimage-operator:dev

.PHONY: populator-image
populator-image: ## Build the populator image localhost/vmdiskimage-populator:dev.
	$(CLUSTER) build-image populator.Dockerfile . localhost/vmdiskimage-populator:dev
