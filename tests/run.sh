#!/usr/bin/env bash
# The whole test suite, as the README promises: installs what the tests need (Debian
# packages and the test kernel, see tests/setup.sh), checks formatting and lints, then runs
# every test, including the kernel tests that boot a real IPVS kernel under qemu, and
# finally runs every fuzz target briefly (BIGBRO_FUZZ_SECONDS each, default 20; 0 skips).
#
# With no arguments the tests run in two lanes at once, one per core: the `kernel` suite
# (the longest, one qemu guest) in one, everything else (unit tests, the other suites, two
# of which boot a guest of their own, and the doc tests) in the other. Every suite is found
# as tests/<suite>/main.rs, so a new suite is run without a change here. Each lane's output
# is printed whole when both have ended. Arguments are passed to one plain `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/setup.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
if [ $# -gt 0 ]; then
  cargo test --locked --no-fail-fast "$@"
else
  cargo test --locked --no-run
  others=(--lib --bins)
  for main in tests/*/main.rs; do
    suite=$(basename "$(dirname "$main")")
    [ "$suite" = kernel ] || others+=(--test "$suite")
  done
  logs=$(mktemp -d)
  trap 'rm -rf "$logs"' EXIT
  cargo test --locked --no-fail-fast --test kernel >"$logs/kernel" 2>&1 &
  kernel=$!
  status=0
  cargo test --locked --no-fail-fast "${others[@]}" >"$logs/others" 2>&1 || status=1
  cargo test --locked --no-fail-fast --doc >>"$logs/others" 2>&1 || status=1
  wait "$kernel" || status=1
  echo "-- lane 1: unit tests, doc tests and the suites ${others[*]}"
  cat "$logs/others"
  echo "-- lane 2: the kernel suite"
  cat "$logs/kernel"
  [ "$status" = 0 ] || { echo "cargo test: some tests failed (above)"; exit 1; }
fi
seconds=${BIGBRO_FUZZ_SECONDS:-20}
if [ "$seconds" != 0 ]; then
  echo "== fuzz targets, $seconds s each (tests/fuzz/run.sh)"
  tests/fuzz/run.sh -t "$seconds"
fi
