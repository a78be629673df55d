#!/usr/bin/env bash
# The whole test suite, as the README promises: installs what the tests need (Debian
# packages and the test kernel, see tests/setup.sh), checks formatting and lints, then runs
# every test, including the kernel tests that boot a real IPVS kernel under qemu, and
# finally runs every fuzz target briefly (BIGBRO_FUZZ_SECONDS each, default 20; 0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."

tests/setup.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --no-fail-fast "$@"
seconds=${BIGBRO_FUZZ_SECONDS:-20}
if [ "$seconds" != 0 ]; then
  echo "== fuzz targets, $seconds s each (tests/fuzz/run.sh)"
  tests/fuzz/run.sh -t "$seconds"
fi
