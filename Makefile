# pwgate: see README.md. The two commands a newcomer needs:
#   make demo   the lab in network namespaces (MODE=ip6, eth or evpn; ENCRYPT=wireguard)
#   make test   everything CI runs
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin

# eBPF: compiler and flags pinned; the generated object is committed and
# check-generate proves that regenerating it changes nothing.
BPF_CLANG ?= clang-14
BPF_CFLAGS ?= -O2 -g -Wall -Werror
export BPF_CLANG BPF_CFLAGS

# Debian packages the tests, the demo and the benchmarks use.
PKGS := clang-14 llvm libbpf-dev iproute2 iputils-ping ethtool tcpdump iperf3 radvd \
	netsniff-ng procps util-linux curl linux-perf wireguard-go wireguard-tools frr python3 chromium lldpd
MODE ?= ip6
ENCRYPT ?= none

.PHONY: all build deps generate check-generate test unit integration lint root-check demo lab-up lab-down bench bench-quick bench-ab failover soak web-vendor man image-deps image-deps-igb image image-test image-test-igb image-check clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/...

# deps installs what is missing, as root, from Debian's packages.
deps:
	@missing=$$(for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing packages: $$missing (run as root to install them)"; exit 1; fi; \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# XDP programs: pwgated's (bpf/) and the benchmark's sink (bench/sink/).
BPF_DIRS := bpf bench/sink bench/xdpgen

generate:
	for d in $(BPF_DIRS); do (cd $$d && $(GO) generate ./...) || exit 1; done

check-generate:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cp -r . $$tmp/src && \
	for d in $(BPF_DIRS); do (cd $$tmp/src/$$d && $(GO) generate ./... >/dev/null) || exit 1; done && \
	for f in $$(git ls-files $(addsuffix /*_bpfel.*,$(BPF_DIRS))); do \
		cmp -s $$f $$tmp/src/$$f || { echo "$$f differs when regenerated with $(BPF_CLANG): run make generate and commit"; exit 1; }; \
	done && echo "eBPF: generated files are up to date"

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

# Unit tests, race detector on, fuzz targets' seed corpora included;
# -short skips the privileged tests.
unit:
	$(GO) test -race -short -count=1 ./...

# Privileged tests: real namespaces, XDP and pwgated processes.
integration:
	@[ "$$(id -u)" = 0 ] || { echo "integration tests need root"; exit 1; }
	$(GO) test -count=1 -timeout 15m -run . ./bpf/ ./control/... ./dataplane/xsk/ ./cmd/...

test: deps
	@bash bench/run-steps.sh \
		"lint" "$(MAKE) --no-print-directory lint" \
		"generated eBPF up to date" "$(MAKE) --no-print-directory check-generate" \
		"unit tests (-race, fuzz seeds)" "$(MAKE) --no-print-directory unit" \
		"integration tests (root)" "$(MAKE) --no-print-directory integration"

# The two-site lab in network namespaces (MODE=ip6 or MODE=eth).
root-check:
	@[ "$$(id -u)" = 0 ] || { echo "make $(MAKECMDGOALS): must run as root (it creates network namespaces and attaches XDP programs)"; exit 1; }

demo: root-check deps build
	$(BIN)/pwlab demo --mode $(MODE) --encrypt $(ENCRYPT)

lab-up: root-check deps build
	$(BIN)/pwlab up --mode $(MODE) --encrypt $(ENCRYPT)

lab-down: root-check build
	$(BIN)/pwlab down

# Throughput and CPU per frame against a Linux bridge and kernel VXLAN on
# the same topology; writes bench/results and bench/README.md's bench section.
bench: root-check deps build
	$(GO) run ./bench/pwbench --bin $(BIN)

bench-quick: root-check deps build
	$(GO) run ./bench/pwbench --bin $(BIN) --quick --readme ""

# Before and after from one run: pwgate's cases with this build and with
# the pwgated of BASE (a commit), alternately; bench/results/*-ab.md.
# AB_ONLY: other devices than eth and ip6 (pwgate-ip6+wg,pwgate-ip6+wg-xdp).
BASE ?= HEAD~1
ROUNDS ?= 5
AB_ONLY ?=
ABDIR := $(or $(TMPDIR),/tmp)/pwgate-bench-ab
VERSION_FLAG := -X github.com/pwgate/pwgate/control/client.Version
bench-ab: root-check deps
	rm -rf $(ABDIR) && mkdir -p $(ABDIR)/src
	git archive $(BASE) | tar -x -C $(ABDIR)/src
	cd $(ABDIR)/src && CGO_ENABLED=0 $(GO) build -ldflags "$(VERSION_FLAG)=$$(git -C $(CURDIR) rev-parse --short $(BASE))" -o $(ABDIR)/before/ ./cmd/pwgated
	CGO_ENABLED=0 $(GO) build -ldflags "$(VERSION_FLAG)=$$(git describe --always --dirty)" -o $(ABDIR)/after/ ./cmd/pwgated
	$(GO) run ./bench/pwbench --bin $(ABDIR)/after --against $(ABDIR)/before --rounds $(ROUNDS) --only "$(AB_ONLY)"
	rm -rf $(ABDIR)

# 30 minutes of iperf3 both ways through the ip6 lab; fails when pwgated's
# memory, goroutines or open files grow. Results in bench/results/soak-*.
SOAK ?= 30m
# WG_BIND=xdp: with ENCRYPT=wireguard, wireguard.bind: xdp.
WG_BIND ?= kernel
# Failover with two parallel pseudowires between two LAN bridges, with and
# without downlink.follow_peer, under RSTP (Open vSwitch) and legacy STP;
# BRIDGES=rstp for RSTP only; ENCRYPT=wireguard for the pseudowires inside
# WireGuard. bench/results/failover-*.md.
BRIDGES ?= rstp,stp
failover: root-check deps build
	@$(MAKE) --no-print-directory deps PKGS=openvswitch-switch
	$(GO) run ./bench/pwfailover --bin $(BIN) --bridges $(BRIDGES) --encrypt $(ENCRYPT)

# The status page's charting library, from npm (control/statsrv/web).
web-vendor:
	control/statsrv/web/vendor.sh

soak: root-check deps build
	$(GO) run ./bench/pwsoak --bin $(BIN) --duration $(SOAK) --encrypt $(ENCRYPT) --wg-bind $(WG_BIND)

# The appliance's disk image (hw/image): Debian from its mirror, our
# binaries, A/B root slots; bin/pwgate.img and .zst, and bin/pwgate.update
# (the same build as an update bundle for pwctl update). image-test boots
# two of it in qemu (TCG: minutes), sends frames across their pseudowire,
# and updates one: a failing update rolls back, a good one is blessed, a
# power cut mid-update leaves the old slot.
IMAGE ?= $(BIN)/pwgate.img
IMAGE_PKGS := mmdebstrap squashfs-tools dosfstools mtools e2fsprogs fdisk zstd qemu-system-x86 ovmf openssh-client

image-deps: root-check
	@missing=$$(for p in $(IMAGE_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	command -v systemd-repart >/dev/null || missing="$$missing systemd-repart"; \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The man pages the image installs (man pwgated.yaml, man pwctl), from
# the manuals cmd/pwgated/README.md and cmd/pwctl/README.md (hw/man).
man:
	$(GO) run ./hw/man/mkman -out $(BIN)/man -version "$$(git describe --always --dirty 2>/dev/null || echo dev)"

image: root-check image-deps build man
	hw/image/mkimage --bin $(BIN) --out $(IMAGE)

image-test: image
	$(GO) run ./bench/pwimagetest --image $(IMAGE)

# The image on the boxes' NIC: two appliances with 4 vCPUs, the boxes' DMI
# strings and CPU, and emulated igb ports (qemu's 82576, run by the I211's
# driver): both modes, zero-copy, the profile, link resets. Debian 12's
# qemu (7.2) has no -device igb; bookworm-backports' (10.0) has.
image-deps-igb: image-deps
	@qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"' || { \
		echo "installing qemu-system-x86 from bookworm-backports (for -device igb)"; \
		printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			> /etc/apt/sources.list.d/pwgate-backports.sources; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null; }

image-test-igb: image image-deps-igb
	$(GO) run ./bench/pwimagetest --igb --image $(IMAGE)

# CI's quick look at the image (no qemu): partitions, files, the bundle.
image-check: image
	$(GO) run ./bench/pwimagetest --check --image $(IMAGE)

clean:
	rm -rf $(BIN)
