#!/usr/bin/env bash
# Build the no_std crates for the device MCUs. A target that cannot be
# installed is reported in one line and skipped.
set -uo pipefail
status=0
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    if ! rustup target add "$target" >/dev/null 2>&1; then
      echo "cross: target $target cannot be installed here; skipping it"
      continue
    fi
  fi
  if cargo build -q -p coffre-proto -p coffre-driver -p coffre-sensors -p coffre-mqtt -p coffre-device -p coffre-firmware --target "$target"; then
    echo "cross: coffre-proto, coffre-driver, coffre-sensors, coffre-mqtt, coffre-device and coffre-firmware build for $target"
  else
    echo "cross: build FAILED for $target"
    status=1
  fi
done
exit $status
