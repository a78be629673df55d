#!/usr/bin/env bash
# Runs bigbro's fuzz targets with cargo-fuzz (libFuzzer) on the stable toolchain.
#
#   tests/fuzz/run.sh [-t SECONDS] [-j] [TARGET...]     (default: 25 s each, every target)
#
# Each target starts from its committed seeds (tests/fuzz/seeds/TARGET) plus the corpus
# earlier runs grew (tests/fuzz/corpus/TARGET, not committed), runs for SECONDS under
# `nice -n 19`, and prints one summary line: executions, coverage, corpus size, duration.
# A crash stops the script with libFuzzer's report; the input is in
# tests/fuzz/artifacts/TARGET/ — fix the bug, then copy the input to
# tests/fuzz/regressions/TARGET/ so `cargo test --test reliability fuzz::` keeps it fixed.
#
# cargo-fuzz needs nightly-only rustc flags (-Z...). RUSTC_BOOTSTRAP=1 makes the stable
# compiler accept them; only the fuzz crate (its own workspace, own target directory) is
# built that way. No sanitizer: the code fuzzed is safe Rust, so ASan would only slow it
# down; debug assertions (and so overflow checks) are on, so arithmetic overflow is a crash.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=25
while getopts "t:" opt; do
  case $opt in
    t) seconds=$OPTARG ;;
    *) echo "usage: $0 [-t SECONDS] [TARGET...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(sed -n 's/^name = "\(.*\)"$/\1/p' tests/fuzz/Cargo.toml | grep -v '^bigbro-fuzz$'))
fi

export RUSTC_BOOTSTRAP=1
FUZZ=(cargo fuzz)
FLAGS=(--fuzz-dir tests/fuzz --sanitizer none --debug-assertions)
nice -n 19 "${FUZZ[@]}" build "${FLAGS[@]}"

# The binaries just built are run directly: `cargo fuzz run` would rebuild first whenever
# the sources changed meanwhile, and the figures must be those of the code built here.
BIN=tests/fuzz/target/x86_64-unknown-linux-gnu/release
for t in "${targets[@]}"; do
  mkdir -p "tests/fuzz/corpus/$t" "tests/fuzz/logs" "tests/fuzz/artifacts/$t"
  dict=()
  [ -f "tests/fuzz/dict/$t.dict" ] && dict=("-dict=tests/fuzz/dict/$t.dict")
  log="tests/fuzz/logs/$t.log"
  status=0
  nice -n 19 "$BIN/$t" -artifact_prefix="tests/fuzz/artifacts/$t/" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "${dict[@]}" "tests/fuzz/corpus/$t" "tests/fuzz/seeds/$t" >"$log" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    tail -n 60 "$log"
    echo "fuzz $t: FAILED (exit $status); the input is in tests/fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  echo "fuzz $t: ok, ${took}s, $execs execs ($rate/s), cov $cov, ft $ft, corpus $corp, peak rss ${rss} MB"
done
