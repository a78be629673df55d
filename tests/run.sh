#!/usr/bin/env bash
# The whole test suite, as the README promises: installs what the tests need (Debian
# packages and the test kernel, see tests/setup.sh), checks formatting and lints, then runs
# every test, including the kernel tests that boot a real IPVS kernel under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/setup.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --no-fail-fast "$@"
