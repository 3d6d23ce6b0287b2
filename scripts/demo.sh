#!/usr/bin/env bash
# The lab on an emulated board: a Trust&GO ATECC608B and the ENV II sensors
# on one I2C bus. Every line printed comes from the real CLI.
set -euo pipefail
coffre=${1:-target/release/coffre}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
img="$dir/m5go.img"
run() { echo; echo "\$ coffre $*"; "$coffre" "$@"; }

run emu new --preset tngtls --out "$img"
run bus scan --bus "emu:$img"
run chip info --bus "emu:$img"
run chip config --bus "emu:$img"
echo
echo "# Slot 0 holds the factory private key: the chip refuses to read it."
if "$coffre" chip read-slot 0 --bus "emu:$img"; then
  echo "UNEXPECTED: slot 0 was readable" >&2; exit 1
fi
echo
echo "# Slot 8 is general data: anyone on the bus reads it in clear."
run chip read-slot 8 --bus "emu:$img" --transcript "$dir/bus.txt"
echo
echo "# What a probe on SDA/SCL saw during that read (first lines):"
head -n 12 "$dir/bus.txt"
