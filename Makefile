# Platform Hub. `make help` lists the targets.
#
# Every tool is pinned in a Go module under hack/ and built into bin/ on first
# use; nothing needs to be installed beyond Go, make and git.

GO ?= go
BIN := $(CURDIR)/bin
IMG ?= ghcr.io/minimax/platform-hub:dev
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Test flags; CI may add -v. The race detector needs cgo (gcc).
TEST_FLAGS ?= -race -count=1
BENCH_FLAGS ?= -run='^$$' -bench=. -benchmem -timeout=30m

# Control-plane versions, read from the module that pins them.
CONTROLPLANE_MOD := hack/controlplane/go.mod
KUBE_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2 }' $(CONTROLPLANE_MOD))
KUBE_MAJOR := $(word 1,$(subst ., ,$(patsubst v%,%,$(KUBE_VERSION))))
KUBE_MINOR := $(word 2,$(subst ., ,$(patsubst v%,%,$(KUBE_VERSION))))
# Stamp the version the way Kubernetes' own build does, so that
# `kube-apiserver --version` prints it and version-dependent defaults hold.
KUBE_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(KUBE_MAJOR) \
	-X k8s.io/component-base/version.gitMinor=$(KUBE_MINOR) \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/client-go/pkg/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=$(KUBE_MAJOR) \
	-X k8s.io/client-go/pkg/version.gitMinor=$(KUBE_MINOR)

CONTROLLER_GEN := $(BIN)/controller-gen
OPENAPI_GEN := $(BIN)/openapi-gen
MODULE := github.com/minimax/platform-hub
GOLANGCI_LINT := $(BIN)/golangci-lint
# kubectl is built beside them: the README walkthrough test runs it.
CONTROLPLANE := $(BIN)/etcd $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kubectl
# The control plane's first build is long: list packages as they build,
# except in CI, whose log keeps only its tail.
BUILD_PROGRESS := $(if $(CI),,-v)

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
		/^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } \
		/^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) $(OPENAPI_GEN) ## Generate DeepCopy methods for the API types, and the management API's OpenAPI.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(OPENAPI_GEN) --output-dir internal/apiserver/openapi --output-pkg $(MODULE)/internal/apiserver/openapi \
		--output-file zz_generated.openapi.go --go-header-file hack/boilerplate.go.txt \
		--output-model-name-file zz_generated.model_name.go --readonly-pkg k8s.io/apimachinery/pkg/apis/meta/v1 \
		--readonly-pkg k8s.io/apimachinery/pkg/runtime --readonly-pkg k8s.io/apimachinery/pkg/version \
		--report-filename hack/openapi-violations.list \
		k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version \
		$(MODULE)/api/management/v1alpha1 $(MODULE)/api/v1alpha1

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC and webhook configuration into config/.
	$(CONTROLLER_GEN) crd paths=./api/v1alpha1/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./controllers/... paths=./webhooks/... output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=server-role paths=./internal/server/... paths=./internal/notify/... output:rbac:artifacts:config=config/server/rbac
	$(CONTROLLER_GEN) rbac:roleName=apiserver-role paths=./internal/apiserver/... output:rbac:artifacts:config=config/apiserver/rbac
	$(CONTROLLER_GEN) webhook paths=./webhooks/... output:webhook:artifacts:config=config/webhook

.PHONY: fmt
fmt: ## Format the Go code.
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: generate manifests ## Fail when generated code, manifests or go.mod files are stale.
	$(GO) mod tidy -diff
	cd hack/tools && $(GO) mod tidy -diff
	cd hack/controlplane && $(GO) mod tidy -diff
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 1048576 { print $$2 }'); \
	if [ -n "$$big" ]; then echo "Tracked files over 1 MiB (build outputs belong in bin/):"; echo "$$big"; exit 1; fi
	@changed=$$(git status --porcelain -- api config internal/apiserver/openapi hack/openapi-violations.list); \
	if [ -n "$$changed" ]; then \
		echo "Generated files are stale; run 'make generate manifests' and commit:"; \
		echo "$$changed"; git --no-pager diff --stat -- api config internal/apiserver/openapi hack/openapi-violations.list; exit 1; \
	fi

.PHONY: test
test: envtest-assets test-deps ## Run all tests, envtest suites included, against the control plane in bin/.
	$(GO) test $(TEST_FLAGS) ./...

.PHONY: test-deps
test-deps: ## Install PostgreSQL and Prometheus from Debian packages if missing (the tests run them).
	hack/install-test-deps.sh

.PHONY: bench
bench: envtest-assets ## Run the benchmarks.
	$(GO) test $(BENCH_FLAGS) ./...

.PHONY: demo
demo: build envtest-assets ## Run the hub with a local control plane and the samples (hub dev).
	$(BIN)/hub dev $(DEMO_FLAGS)

##@ Build

.PHONY: build
build: ## Build bin/hub.
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN)/hub ./cmd/hub

.PHONY: envtest-assets
envtest-assets: $(CONTROLPLANE) ## Build etcd, kube-apiserver, kube-controller-manager and kubectl into bin/ (once).

# The control plane is rebuilt only when its pinned versions change.
$(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kubectl: $(CONTROLPLANE_MOD)
	@echo "Building $(@F) $(KUBE_VERSION) from the Go module proxy (5 to 20 minutes the first time; packages are listed as they build)"
	cd hack/controlplane && $(GO) build $(BUILD_PROGRESS) -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/$(@F)

$(BIN)/etcd: $(CONTROLPLANE_MOD)
	@echo "Building etcd from the Go module proxy"
	cd hack/controlplane && $(GO) build $(BUILD_PROGRESS) -trimpath -ldflags "-s -w" -o $@ go.etcd.io/etcd/server/v3

$(CONTROLLER_GEN): hack/tools/go.mod
	cd hack/tools && $(GO) build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(OPENAPI_GEN): hack/tools/go.mod
	cd hack/tools && $(GO) build -o $@ k8s.io/kube-openapi/cmd/openapi-gen

$(GOLANGCI_LINT): hack/tools/go.mod
	cd hack/tools && $(GO) build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: docker-build
docker-build: ## Build the container image $(IMG).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

##@ Deployment (to the cluster of the current kubeconfig context)

.PHONY: deploy
deploy: ## Install the CRDs and the manager, with image $(IMG), using kustomize (needs cert-manager).
	kubectl kustomize config/default | sed 's|image: controller:latest|image: $(IMG)|' | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the manager and the CRDs (and with them every hub resource).
	kubectl kustomize config/default | kubectl delete --ignore-not-found -f -

.PHONY: clean
clean: ## Remove build outputs (not the control plane in bin/, which is slow to rebuild).
	rm -f $(BIN)/hub
