#!/usr/bin/env bash
# make fuzz: run every fuzz target with libFuzzer (cargo-fuzz, nightly) for
# FUZZ_SECONDS each (default 600), grow and minimise the committed corpus,
# keep every crash as a regression input, and print a figures table.
# Usage: scripts/fuzz.sh [TARGET ...]     (default: every target)
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-600}
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "make fuzz needs a nightly toolchain: rustup toolchain install nightly"; exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "make fuzz needs cargo-fuzz: cargo install cargo-fuzz"; exit 1
fi
cargo run -q -p coffre-fuzz --bin coffre-fuzz-seed -- fuzz/corpus || exit 1
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=($(ls fuzz/fuzz_targets | sed 's/\.rs$//'))
logdir=target/fuzz-logs; mkdir -p "$logdir"
status=0
rows=()
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${secs}s"
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  # -fork keeps fuzzing after a crash so one bug does not end the run;
  # crashes land in fuzz/artifacts/$t.
  (cd fuzz && cargo +nightly fuzz run --release "$t" "corpus/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
      -timeout=10 -max_len=4096) >"$logdir/$t.log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logdir/$t.log" | tail -1 | grep -o '[0-9]*$')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$logdir/$t.log" | tail -1 | grep -o '[0-9]*$')
  crashes=0
  for f in fuzz/artifacts/"$t"/*; do
    [ -f "$f" ] || continue
    cp "$f" "fuzz/regressions/$t/" && crashes=$((crashes + 1))
  done
  if [ $rc -ne 0 ] || [ $crashes -gt 0 ]; then
    status=1
    echo "fuzz: $t FAILED (exit $rc, $crashes crash file(s) copied to fuzz/regressions/$t; log $logdir/$t.log)"
  fi
  # Keep the committed corpus small: only inputs that add coverage.
  (cd fuzz && cargo +nightly fuzz cmin --release "$t" "corpus/$t" >/dev/null 2>&1) || true
  rows+=("$(printf '| %-15s | %6ss | %12s | %9s | %7s |' "$t" "$secs" "${execs:-?}" "${rate:-?}" "$crashes")")
done
echo
echo "| target          |   time  |   executions |  execs/s | crashes |"
echo "|-----------------|---------|--------------|----------|---------|"
printf '%s\n' "${rows[@]}"
exit $status
