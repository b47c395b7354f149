# uni: build unikernels the way you build containers.
#
#   make demo   installs what it needs, builds example/hello-node, boots it, prints its HTTP answer
#   make test   the whole suite (what .ci/run calls)
#   make frontend-image REGISTRY=host:port
#               builds the BuildKit frontend's image without Docker and pushes it,
#               with the default kernel bundle beside it, to that registry

GO          ?= go
BIN         := bin
UNI         := $(BIN)/uni
INIT_BIN    := internal/initbin/uni-init
GOBIN       := $(shell $(GO) env GOPATH)/bin
REGISTRY_BIN := $(GOBIN)/registry
ORAS        := $(GOBIN)/oras
COSIGN      := $(GOBIN)/cosign
BUILDKIT_VERSION := v0.34.2
BUILDX_VERSION   := v0.38.2
BUILDKITD   := $(GOBIN)/buildkitd
BUILDCTL    := $(GOBIN)/buildctl
BUILDX      := $(GOBIN)/buildx
PACKER_VERSION := v1.12.0
PACKER      := $(GOBIN)/packer
PLUGIN      := $(BIN)/packer-plugin-unikernel
# goreleaser v2.15.1: newer releases need Go 1.27.
GORELEASER_VERSION := v2.15.1
GORELEASER  := $(GOBIN)/goreleaser
# The docker CLI looks for its plugins under $DOCKER_CONFIG, else ~/.docker.
BUILDX_PLUGIN := $(or $(DOCKER_CONFIG),$(HOME)/.docker)/cli-plugins/docker-buildx
export SOURCE_DATE_EPOCH ?= 0

# Debian packages the build and the tests use: QEMU and its firmware, GRUB's
# boot images for the kernel bundle, squashfs-tools and cpio as test oracles,
# and the programs the closure and one-liner tests run (node, python3, gcc);
# runc is the OCI runtime of the tests' buildkitd.
APT_PACKAGES := qemu-system-x86 qemu-utils ovmf grub-pc-bin grub-efi-amd64-bin grub-common \
                squashfs-tools cpio zstd kmod mtools fdisk gdisk dosfstools curl nodejs \
                python3 gcc libc6-dev coreutils runc

.PHONY: all init build plugin deps buildkit test test-unit test-e2e demo examples bench fuzz clean frontend-image mini-kernel

all: build

# The guest init is a static Go program, committed as internal/initbin/uni-init
# so that a fresh clone builds with plain `go build`; `make init` rebuilds it
# after a change to init/ or spec/ (internal/initbin's test says when it is stale).
init:
	@scripts/build-init.sh

$(UNI): $(INIT_BIN) $(shell find . -name '*.go' -not -name '*_test.go' -not -path './example/*')
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/uni

build: $(UNI)

# The Packer plugin (main.go, builder/, post-processor/) builds in go.work's
# workspace, which carries the go-cty fork the SDK needs (go.work says why).
$(PLUGIN): $(INIT_BIN) go.mod go.sum go.work $(shell find . -name '*.go' -not -name '*_test.go' -not -path './example/*')
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ .

plugin: $(PLUGIN)

deps:
	@scripts/install-deps.sh $(APT_PACKAGES)

$(REGISTRY_BIN):
	$(GO) install github.com/distribution/distribution/v3/cmd/registry@v3.1.2

$(ORAS):
	$(GO) install oras.land/oras/cmd/oras@v1.3.6

# cosign signs and verifies pushed artifacts in the tests; built once per
# machine into GOBIN (about 3 CPU minutes), then reused.
$(COSIGN):
	$(GO) install github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3

# The frontend image: REGISTRY/uniforge/unifile:dev (FRONTEND_TAG) holding the
# static frontend, and REGISTRY/uniforge/kernel:<release>, the default kernel
# bundle it names by digest (made from the distribution's kernel if the cache
# lacks it). Plain HTTP for a loopback registry. Prints both references.
FRONTEND_PKG ?= ./cmd/uni-frontend
FRONTEND_TAG ?= dev
frontend-image: $(INIT_BIN)
	@test -n "$(REGISTRY)" || { echo "usage: make frontend-image REGISTRY=host:port" >&2; exit 2; }
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/uni-frontend $(FRONTEND_PKG)
	$(GO) run ./internal/cmd/frontend-image -registry $(REGISTRY) -binary $(BIN)/uni-frontend -tag $(FRONTEND_TAG)

# The tests' BuildKit: buildkitd and buildctl built once per machine into
# GOBIN (about 6 CPU minutes; buildkit refuses `go install`, see the script),
# and buildx installed as the docker CLI's plugin. internal/testtool starts
# the daemon and drives it with these.
$(BUILDKITD) $(BUILDCTL) &:
	@GO=$(GO) scripts/install-buildkit.sh $(BUILDKIT_VERSION) $(GOBIN)

# The tests' packer: built once per machine into GOBIN inside its downloaded
# module (it refuses `go install`, see the script).
$(PACKER):
	@GO=$(GO) scripts/install-packer.sh $(PACKER_VERSION) $(GOBIN)

# The release build's goreleaser (test/release runs `goreleaser check` and a
# snapshot release), built once per machine into GOBIN from the module proxy:
# about 5 CPU minutes with a cold build cache (docs/releasing.md).
$(GORELEASER):
	$(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)

$(BUILDX):
	$(GO) install -ldflags "-X github.com/docker/buildx/version.Version=$(BUILDX_VERSION) -X github.com/docker/buildx/version.Package=github.com/docker/buildx" \
		github.com/docker/buildx/cmd/buildx@$(BUILDX_VERSION)

$(BUILDX_PLUGIN): | $(BUILDX)
	mkdir -p $(dir $@)
	ln -sfn $(BUILDX) $@

buildkit: $(BUILDKITD) $(BUILDCTL) $(BUILDX_PLUGIN)

examples: example/hello-go/hello

example/hello-go/hello: example/hello-go/main.go
	cd example/hello-go && CGO_ENABLED=0 $(GO) build -trimpath -o hello .

demo: deps build
	@scripts/demo.sh $(UNI) example/hello-node 8083

# linux-mini (KERNEL linux-mini, docs/kernel-bundles.md): built from Debian's
# linux-source once per machine (about 10 minutes on 2 CPUs), then taken
# from the cache by the digest of its inputs in a second.
mini-kernel: build
	@scripts/install-deps.sh gcc binutils flex bison bc perl lz4 xz-utils libelf-dev
	$(UNI) kernel build

# -count=1: the e2e tests run bin/uni, which Go's test cache does not track.
test: deps $(REGISTRY_BIN) $(ORAS) $(COSIGN) $(PACKER) $(GORELEASER) buildkit build examples mini-kernel
	$(GO) vet ./...
	UNI="$(CURDIR)/$(UNI)" PATH="$(CURDIR)/$(BIN):$(GOBIN):$$PATH" $(GO) test -count=1 -p 2 -timeout 40m ./...

test-unit:
	$(GO) test -short ./...

bench: deps $(REGISTRY_BIN) $(ORAS) buildkit build examples
	@bench/run.sh
	@bench/oci.sh

fuzz:
	@scripts/fuzz.sh 20s

clean:
	rm -rf $(BIN) out example/hello-go/hello
