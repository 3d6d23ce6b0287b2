# coffre — the two commands a newcomer runs: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help demo test test-cluster deps build lint cross doc bench fuzz firmware firmware-elf

help:
	@echo "make demo    build coffre and run the lab on an emulated chip"
	@echo "make test    format check, clippy, no_std cross builds for the device MCUs, the ESP32-C3 firmware, docs, then every test"
	@echo "make test-cluster  the RabbitMQ cluster tests (three nodes, a node killed; a few minutes)"
	@echo "make bench   benchmarks: emulator throughput and datasheet timing; the device binary vs mosquitto_pub"
	@echo "make firmware  the ESP32-C3 firmware as a flashable image (espflash); prints its size and static RAM"
	@echo "make fuzz    every fuzz target for FUZZ_SECONDS each (default 600; FUZZ_JOBS side by side; nightly + cargo-fuzz)"

# System packages the project needs; installed when missing (apt-get when root,
# otherwise the exact command is printed and the target fails).
deps:
	@scripts/need.sh cargo:- openssl:openssl mosquitto:mosquitto mosquitto_pub:mosquitto-clients chromium:chromium /usr/bin/time:time python3:python3

build: deps
	$(CARGO) build --release -p coffre

demo: build
	target/release/coffre demo

lint: deps
	$(CARGO) fmt --all -- --check
	cd firmware/esp32c3 && $(CARGO) fmt -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The protocol core, the driver and the sensor drivers must build for the
# device's MCU: Cortex-M4F and the ESP32-C3 (RISC-V).
cross: deps
	@scripts/cross-check.sh

# The ESP32-C3 firmware (firmware/esp32c3, its own workspace): `make test`
# builds its ELF so it never rots; `make firmware` also makes the image.
firmware-elf: deps
	@scripts/firmware.sh build

firmware: deps
	@scripts/firmware.sh image

# The API docs build without a warning (broken links included).
doc: deps
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# The firmware ELF builds (firmware-elf). The browser test of the web explorer
# must run (chromium is installed by deps).
# CryptoAuthLib's own client drives the emulator first (tests/cryptoauthlib;
# COFFRE_SKIP_CRYPTOAUTHLIB=1 skips it, visibly); cargo's summary ends the output
# and both always run. `cargo test` also runs every doc example (doc tests).
test: lint cross doc firmware-elf
	@scripts/cryptoauthlib-suite.sh; suite=$$?; \
	COFFRE_REQUIRE_BROWSER=1 $(CARGO) test --workspace && exit $$suite

# The clustered broker: three RabbitMQ nodes boot in about a minute, so
# these tests are apart from 'make test' (.ci/run runs both).
test-cluster: deps
	@scripts/need.sh rabbitmq-server:rabbitmq-server
	$(CARGO) test -p coffre-broker --test rabbitmq_cluster -- --ignored
	$(CARGO) test -p coffre-fleet --test cluster -- --ignored --test-threads 1

# The device binary as shipped (static, scripts/build-device.sh), then
# `coffre bench`, which measures it against mosquitto_pub.
bench: deps
	$(CARGO) run --release -p coffre -- emu bench
	scripts/build-device.sh
	$(CARGO) run --release -p coffre -- bench --runs 31

# libFuzzer over every target of crates/coffre-fuzz (nightly + cargo-fuzz);
# `make test` replays the committed corpus and regressions on stable.
fuzz:
	@scripts/fuzz.sh
