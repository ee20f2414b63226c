# Sluice — run `make help` for the targets. Every tool is built from Go modules pinned in
# hack/tools/go.mod (or hack/envtest/*) and cached outside the repo; a fresh machine needs only Go.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TOOLS := go tool -modfile=hack/tools/go.mod
CONTROLLER_GEN := $(TOOLS) controller-gen
KUSTOMIZE := $(TOOLS) kustomize
GOLANGCI_LINT := $(TOOLS) golangci-lint

# Files controller-gen writes; `verify-generated` fails when regenerating changes them.
GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml config/webhook/manifests.yaml

# Extra flags for go test, e.g. `make test GOTEST_FLAGS='-run TestSamples -v'`.
GOTEST_FLAGS ?=

# The release `make bundle` and `make docker-build` describe, e.g. `make bundle VERSION=0.2.0`.
VERSION ?= 0.1.0
IMAGE_REPO ?= ghcr.io/sluice-mesh/sluice
IMG ?= $(IMAGE_REPO):v$(VERSION)
BUNDLE_IMG ?= $(IMAGE_REPO)-bundle:v$(VERSION)
# docker or podman; no container engine is needed for anything but the image targets.
CONTAINER_TOOL ?= docker

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Regenerate CRDs, RBAC and webhook configurations from the Go markers.
	$(CONTROLLER_GEN) rbac:roleName=manager crd:allowDangerousTypes=true webhook paths="./..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook

.PHONY: generate
generate: ## Regenerate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: verify-generated
verify-generated: ## Fail when `make manifests generate` would change generated files.
	@before=$$(find $(GENERATED) -type f -print0 | sort -z | xargs -0 sha256sum); \
	$(MAKE) --no-print-directory manifests generate >/dev/null; \
	after=$$(find $(GENERATED) -type f -print0 | sort -z | xargs -0 sha256sum); \
	if [[ "$$before" != "$$after" ]]; then \
		diff <(echo "$$before") <(echo "$$after") || true; \
		echo "generated files were stale: they are regenerated now, commit them"; exit 1; \
	fi

.PHONY: verify-tracked-files
verify-tracked-files: ## Fail when git tracks a binary or a file over 1 MiB.
	@hack/verify-tracked-files.sh

.PHONY: fmt
fmt: ## Format the code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet (the bundle generator's module too).
	go vet ./...
	cd hack/bundle && go vet ./...

.PHONY: lint
lint: ## Run golangci-lint (the bundle generator's module too).
	$(GOLANGCI_LINT) run ./...
	cd hack/bundle && go tool -modfile=../tools/go.mod golangci-lint run ./...

.PHONY: envtest
envtest: ## Build (once) the Kubernetes binaries for tests and print their directory.
	@hack/envtest.sh

.PHONY: prometheus
prometheus: ## Build (once) the Prometheus server for tests and print its path.
	@hack/prometheus.sh

.PHONY: kwok
kwok: ## Build (once) kwok, the fake node for tests, and print its path.
	@hack/kwok.sh

.PHONY: cert-manager
cert-manager: ## Build (once) cert-manager's controllers for tests and print their directory.
	@hack/cert-manager.sh

##@ Test

.PHONY: test
test: verify-tracked-files lint vet verify-generated bundle-validate ## Run every check and test (what CI runs).
	cd hack/bundle && go test ./... $(GOTEST_FLAGS)
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" PROMETHEUS_BINARY="$$(hack/prometheus.sh)" KWOK_BINARY="$$(hack/kwok.sh)" CERT_MANAGER_DIR="$$(hack/cert-manager.sh)" go test ./... $(GOTEST_FLAGS)

.PHONY: test-unit
test-unit: ## Run the tests that need no API server.
	go test -short ./... $(GOTEST_FLAGS)

##@ Release

.PHONY: bundle
bundle: ## Write the OLM bundle for VERSION (bundle/, bundle.Dockerfile) from config/ (docs/install.md).
	cd hack/bundle && go run . generate -root ../.. -version $(VERSION) -image $(IMG)

.PHONY: bundle-validate
bundle-validate: ## Check bundle/ with the operator-framework validators, the OperatorHub suite included.
	cd hack/bundle && go run . validate -dir ../../bundle

.PHONY: docker-build
docker-build: ## Build the manager's image IMG (needs Docker or Podman; see docs/install.md).
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: bundle-build
bundle-build: ## Build the bundle image BUNDLE_IMG from bundle/ (needs Docker or Podman).
	$(CONTAINER_TOOL) build -f bundle.Dockerfile -t $(BUNDLE_IMG) .

##@ Benchmarks

# Extra flags for the xDS benchmark, e.g. `make bench-xds BENCH_XDS_FLAGS='-watch 10 -modes delta'`.
BENCH_XDS_FLAGS ?=

.PHONY: bench-xds
bench-xds: ## xDS push benchmark: 1000 services, 2000 proxies, SotW and delta (docs/benchmarks.md).
	go run ./test/bench/xds $(BENCH_XDS_FLAGS)

##@ Build and run

.PHONY: build
build: ## Build the manager binary into bin/.
	go build -o bin/manager ./cmd/manager

.PHONY: run
run: ## Run the manager against the cluster of the current kubeconfig.
	go run ./cmd/manager --leader-elect=false --webhook-port=0 --xds-bind-address=0 --xds-plaintext-bind-address=127.0.0.1:15010

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: demo
demo: sandbox-build ## The story on a local sandbox: a canary promoted, a bad one rolled back (exit 0 if both).
	bin/sluice-sandbox demo

.PHONY: sandbox
sandbox: sandbox-build ## The local sandbox in the foreground, for exploring (Ctrl-C stops it).
	bin/sluice-sandbox run

.PHONY: sandbox-up
sandbox-up: sandbox-build ## Start the local sandbox in the background; returns once it is ready.
	bin/sluice-sandbox up

.PHONY: sandbox-down
sandbox-down: ## Stop the background sandbox.
	@if [ -x bin/sluice-sandbox ]; then bin/sluice-sandbox down; else echo "No sandbox runs."; fi

.PHONY: test-e2e
test-e2e: ## Run the sandbox end to end (the demo, sandbox-up/down); make test includes it.
	KUBEBUILDER_ASSETS="$$(hack/envtest.sh)" PROMETHEUS_BINARY="$$(hack/prometheus.sh)" KWOK_BINARY="$$(hack/kwok.sh)" go test ./test/e2e/ -count=1 -v

.PHONY: sandbox-build
sandbox-build: ## Build the sandbox and the demo app into bin/.
	go build -o bin/ ./cmd/sluice-sandbox ./cmd/demoapp
