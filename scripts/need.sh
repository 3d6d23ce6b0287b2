#!/usr/bin/env bash
# Usage: need.sh CMD:PACKAGE ...   (PACKAGE "-" means: cannot be installed by apt)
# Installs missing Debian packages when run as root, else prints the command.
set -euo pipefail
missing=()
for pair in "$@"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    if [ "$pkg" = "-" ]; then
      echo "error: '$cmd' is required; install the Rust toolchain with rustup (https://rustup.rs)" >&2
      exit 1
    fi
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "error: missing packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
