#!/usr/bin/env bash
# make fuzz: run every fuzz target with libFuzzer (cargo-fuzz, nightly) for
# FUZZ_SECONDS each (default 600), grow and minimise the committed corpus,
# keep every crash as a regression input, and print a figures table.
# FUZZ_JOBS targets run side by side (default 1; one core each).
# Usage: scripts/fuzz.sh [TARGET ...]     (default: every target)
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-600}
jobs=${FUZZ_JOBS:-1}
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "make fuzz needs a nightly toolchain: rustup toolchain install nightly"; exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "make fuzz needs cargo-fuzz: cargo install cargo-fuzz"; exit 1
fi
cargo run -q -p coffre-fuzz --bin coffre-fuzz-seed -- fuzz/corpus || exit 1
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=($(ls fuzz/fuzz_targets | sed 's/\.rs$//'))
# Build every target once; the runs below use the binaries, so editing the
# sources while a long run goes on does not change what is being fuzzed.
echo "fuzz: building ${#targets[@]} target(s) (cargo fuzz build --release)"
(cd fuzz && cargo +nightly fuzz build --release) || { echo "fuzz: the build failed"; exit 1; }
bin=fuzz/target/x86_64-unknown-linux-gnu/release
logdir=target/fuzz-logs; mkdir -p "$logdir"

run_one() {
  local t=$1 log="$logdir/$1.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  # Only this run's crashes count: earlier ones are already regressions.
  rm -rf "fuzz/artifacts/$t" && mkdir -p "fuzz/artifacts/$t"
  echo "fuzz: $t for ${secs}s"
  # A crash ends this target's run; its input lands in fuzz/artifacts/$t.
  "$bin/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$secs" \
    -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 -max_len=4096 \
    "fuzz/corpus/$t" >"$log" 2>&1
  local rc=$?
  local execs rate crashes=0
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  for f in fuzz/artifacts/"$t"/*; do
    [ -f "$f" ] || continue
    cp "$f" "fuzz/regressions/$t/" && crashes=$((crashes + 1))
  done
  if [ $rc -ne 0 ] || [ $crashes -gt 0 ]; then
    echo "fuzz: $t FAILED (exit $rc, $crashes crash file(s) copied to fuzz/regressions/$t; log $log)"
    echo fail >"$logdir/$t.status"
  else
    echo ok >"$logdir/$t.status"
  fi
  # Keep the committed corpus small: only inputs that add coverage.
  local min="$logdir/$t.cmin"
  rm -rf "$min" && mkdir -p "$min"
  if "$bin/$t" -merge=1 -rss_limit_mb=2048 -timeout=10 "$min" "fuzz/corpus/$t" >"$log.cmin" 2>&1 \
      && [ -n "$(ls -A "$min")" ]; then
    rm -rf "fuzz/corpus/$t" && mv "$min" "fuzz/corpus/$t"
  fi
  printf '| %-15s | %6ss | %12s | %9s | %7s |\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" "$crashes" >"$logdir/$t.row"
  echo "fuzz: $t done: ${execs:-?} executions, ${rate:-?}/s, $crashes crash(es)"
}
export -f run_one
export secs bin logdir

rm -f "$logdir"/*.status "$logdir"/*.row
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {}

status=0
echo
echo "| target          |   time  |   executions |  execs/s | crashes |"
echo "|-----------------|---------|--------------|----------|---------|"
for t in "${targets[@]}"; do
  cat "$logdir/$t.row" 2>/dev/null || printf '| %-15s | not run |\n' "$t"
  [ "$(cat "$logdir/$t.status" 2>/dev/null)" = ok ] || status=1
done
exit $status
