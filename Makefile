# cloudwatch_rs — `make test` and `make demo` set up what they need themselves (idempotently).
SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv
SO := target/release/libcloudwatch_rs.so
HOST := target/release/cwrs-test-host
export CWRS_PYTHON := $(abspath $(VENV))/bin/python
export CWRS_PLUGIN := $(abspath $(SO))
export CWRS_HOST := $(abspath $(HOST))
# Tests and the demo talk to 127.0.0.1 only: never let the credential chain probe IMDS.
export AWS_EC2_METADATA_DISABLED := true

.PHONY: all setup build test demo soak firelens arm64-host bench bench-fluent-bit clean

all: build

setup:
	@tests/support/setup.sh

build: setup
	$(CARGO) build --release --workspace

test: build firelens arm64-host
	$(CARGO) test --release --workspace

# The libraries for aws-for-fluent-bit images (glibc 2.26 at most), one per architecture:
# build/firelens/amd64/ and build/firelens/arm64/ (Docker's TARGETARCH names).
firelens: setup
	@tests/support/firelens.sh

# qemu-user, the aarch64 glibc and the test host built for aarch64: tests/arm64.rs flushes the
# arm64 library under qemu.
arm64-host: setup
	@tests/support/arm64-host.sh

# The soak tests: many records with every fault mixed in, and many streams, through the strict
# endpoint (docs/TESTING.md).
soak: build
	$(CARGO) test --release --test faults -- --ignored --nocapture soak

# Benchmarks: the pure core alone, then the whole plugin over TLS (docs/PERFORMANCE.md), then,
# when FLUENT_BIT names a Fluent Bit binary, the plugin inside it beside the C plugin and null.
bench: build
	$(CARGO) bench --bench core
	$(CARGO) bench --bench e2e
	$(CARGO) bench --bench fluent_bit

# The plugin inside a real Fluent Bit (built in release mode, -DFLB_RELEASE=On; this builds none):
#   make bench-fluent-bit FLUENT_BIT=/path/to/fluent-bit
bench-fluent-bit: build
	$(CARGO) bench --bench fluent_bit

demo: build
	@tests/support/demo.sh

clean:
	$(CARGO) clean
	rm -rf $(VENV) build .tools
