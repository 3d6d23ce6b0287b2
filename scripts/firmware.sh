#!/usr/bin/env bash
# The ESP32-C3 firmware (firmware/esp32c3, its own workspace and target).
#
#   scripts/firmware.sh build   the release ELF (make test: it must always build)
#   scripts/firmware.sh image   the ELF, then a flashable image with espflash
#                               (installed with cargo when missing); prints the
#                               image path, its size and the static RAM
#
# Settings: firmware/esp32c3/settings.conf (`coffre firmware config`), else the
# EXAMPLE settings for the emulator's test PKI (an image that never goes online).
# The Wi-Fi password is read from COFFRE_WIFI_PASSWORD at build time.
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:-build}
case "$step" in
  build|image) ;;
  *) echo "usage: scripts/firmware.sh build|image" >&2; exit 2 ;;
esac
dir=firmware/esp32c3
target=riscv32imc-unknown-none-elf
# Its own target directory (firmware/esp32c3/target), or CARGO_TARGET_DIR.
tdir=$(cd "$dir" && realpath -m --relative-to="$OLDPWD" "${CARGO_TARGET_DIR:-target}")
elf=$tdir/$target/release/coffre-esp32c3

if ! (cd "$dir" && rustup target list --installed 2>/dev/null) | grep -qx "$target"; then
  if ! (cd "$dir" && rustup target add "$target" >/dev/null 2>&1); then
    echo "firmware: the Rust target $target is missing and cannot be installed (rustup target add $target); stopping" >&2
    exit 1
  fi
fi

if [ -f "$dir/settings.conf" ]; then
  export COFFRE_FIRMWARE_SETTINGS="$PWD/$dir/settings.conf"
  echo "firmware: settings $dir/settings.conf"
else
  export COFFRE_FIRMWARE_SETTINGS="$PWD/$dir/example.conf"
  echo "firmware: no $dir/settings.conf ('coffre firmware config' writes it): building with the EXAMPLE settings (emulator test PKI; the image never goes online)"
fi
if [ -n "${COFFRE_WIFI_PASSWORD+set}" ]; then
  echo "firmware: Wi-Fi password from COFFRE_WIFI_PASSWORD (${#COFFRE_WIFI_PASSWORD} characters)"
fi

t0=$(date +%s)
(cd "$dir" && cargo build --release --locked -q ${FIRMWARE_FEATURES:+--features "$FIRMWARE_FEATURES"})
echo "firmware: built $elf in $(( $(date +%s) - t0 )) s"

# Static RAM: .data and .bss (the heap, the TLS record and socket buffers
# are static, so they are in .bss); IRAM code is listed beside it.
ram_report() {
  local sizer
  sizer=$(command -v llvm-size || command -v size || true)
  if [ -z "$sizer" ]; then
    echo "firmware: no llvm-size or size to read the sections (apt-get install binutils)"
    return
  fi
  "$sizer" -A "$elf" | awk '
    $1 ~ /^\.data/ || $1 == ".rtc_fast.data" { data += $2 }
    $1 ~ /^\.bss/ || $1 == ".rtc_fast.bss" || $1 == ".noinit" { bss += $2 }
    $1 ~ /^\.rwtext/ || $1 == ".trap" { iram += $2 }
    $1 == ".dram2_uninit" { reclaimed += $2 }
    END {
      printf "firmware: static RAM %d bytes (%.1f KiB): .data %d + .bss %d; IRAM code %d bytes (%.1f KiB); heap in the bootloader RAM reclaimed after boot %d bytes\n",
        data + bss, (data + bss) / 1024, data, bss, iram, iram / 1024, reclaimed
    }'
}

case "$step" in
  build)
    ram_report
    ;;
  image)
    if ! command -v espflash >/dev/null 2>&1; then
      if ! pkg-config --exists libudev 2>/dev/null; then
        scripts/need.sh pkg-config:pkg-config
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
          echo "installing: libudev-dev (espflash's serial port support)"
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libudev-dev >/dev/null
        else
          echo "firmware: espflash needs libudev-dev to build: run sudo apt-get install -y libudev-dev; stopping" >&2
          exit 1
        fi
      fi
      echo "firmware: installing espflash (cargo install espflash --locked; once)"
      if ! cargo install espflash --locked -q; then
        echo "firmware: espflash could not be installed (cargo install espflash); stopping" >&2
        exit 1
      fi
    fi
    # The application image (what goes into the app partition: the flash
    # figure), and the whole flash from 0x0 (bootloader, partition table,
    # application) for tools other than espflash.
    image=$tdir/coffre-esp32c3.bin
    full=$tdir/coffre-esp32c3-full.bin
    espflash save-image --chip esp32c3 "$elf" "$image" >/dev/null 2>&1
    espflash save-image --chip esp32c3 --merge --skip-padding "$elf" "$full" >/dev/null 2>&1
    bytes=$(stat -c %s "$image")
    awk -v b="$bytes" -v p="$image" 'BEGIN { printf "firmware: image %s, %d bytes (%.2f MiB; goal 1.5 MiB)\n", p, b, b / 1048576 }'
    echo "firmware: whole flash from 0x0 (bootloader, partitions, image): $full, $(stat -c %s "$full") bytes"
    ram_report
    echo "firmware: flash it with: espflash flash --monitor --chip esp32c3 $elf"
    ;;
esac
