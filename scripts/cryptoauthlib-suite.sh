#!/usr/bin/env bash
# The CryptoAuthLib oracle suite (tests/cryptoauthlib, see its README.md):
# Microchip's CryptoAuthLib drives `coffre emu serve` through its own kit
# protocol client; answers are checked with `cryptography`, hashlib/hmac and
# CryptoAuthLib's host-side helpers.
#
# Creates (once, cached in target/cal-venv, rebuilt when requirements.txt
# changes) a Python virtual environment with the pinned packages, builds the
# coffre binary and runs the suite with pytest. If the environment cannot be
# created, prints one line saying why and fails.
# COFFRE_SKIP_CRYPTOAUTHLIB=1 skips the suite, and says so.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
suite=$root/tests/cryptoauthlib
venv=$root/target/cal-venv
log=$root/target/cal-venv.log
req=$suite/requirements.txt
python=${PYTHON:-python3}

if [ "${COFFRE_SKIP_CRYPTOAUTHLIB:-}" = 1 ]; then
  echo "cryptoauthlib suite: SKIPPED because COFFRE_SKIP_CRYPTOAUTHLIB=1"
  exit 0
fi

fail() { echo "cryptoauthlib suite: cannot run: $*" >&2; exit 1; }

mkdir -p "$root/target"
if ! cmp -s "$req" "$venv/requirements.txt"; then
  command -v "$python" >/dev/null 2>&1 || fail "$python not found (install python3 and python3-venv)"
  rm -rf "$venv"
  "$python" -m venv "$venv" >"$log" 2>&1 \
    || fail "'$python -m venv' failed (Debian: apt-get install python3-venv); see target/cal-venv.log"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >>"$log" 2>&1 \
    || fail "pip install -r tests/cryptoauthlib/requirements.txt failed (is PyPI reachable?); see target/cal-venv.log"
  "$venv/bin/python" -c "import cryptoauthlib, cryptography, pytest" >>"$log" 2>&1 \
    || fail "the installed packages do not import; see target/cal-venv.log"
  cp "$req" "$venv/requirements.txt"
fi

cargo build -q -p coffre || fail "cargo build -p coffre failed"

cd "$suite" || fail "$suite is missing"
PYTHONDONTWRITEBYTECODE=1 COFFRE_BIN="$root/target/debug/coffre" "$venv/bin/python" -m pytest -q "$@"
