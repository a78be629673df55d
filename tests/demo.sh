#!/usr/bin/env bash
# The demo: boots the kernel test bed (a real Debian kernel with IPVS under qemu, see
# tests/setup.sh), starts four HTTP backends behind the VIP 192.0.2.10:80 and
# `bigbro daemon -c config/demo.yml`, drives client traffic, and shows a live table (node,
# health, weight, ramp, share of connections) while rs4 joins and ramps up, rs2 degrades and
# rs3 fails and is drained. About a minute, plus the build.
#
# The demo itself is the test tests/demo/main.rs, run inside the guest. The test bed writes the
# guest's output to a file as it comes; this script follows that file, so the table is live.
# Runs `tests/setup.sh demo` first (qemu, busybox, the kernel tools and the test kernel,
# only what is missing; not what the rest of the suite needs). Never touches the host's
# network: everything happens inside the guest.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/setup.sh demo >&2
echo "building..." >&2
cargo build --quiet
bin=$(cargo test --no-run --test demo 2>&1 | sed -n 's/.*Executable tests\/demo\/main.rs (\(.*\))/\1/p' | tail -1)
[ -x "$bin" ] || { echo "tests/demo.sh: cannot find the demo test binary" >&2; exit 1; }

# A temporary directory of our own, so the test bed's files (and the guest's live output,
# share/1.out) are the only ones in it.
live=$(mktemp -d "${TMPDIR:-/tmp}/bigbro-demo.XXXXXX")
trap 'rm -rf "$live"' EXIT
ansi=
[ -t 1 ] && ansi=1

echo "booting the test bed..." >&2
TMPDIR="$live" BIGBRO_DEMO=1 BIGBRO_DEMO_ANSI="$ansi" BIGBRO_TESTBED_TIMEOUT=180 \
  "$bin" --exact demo --nocapture >"$live/host.log" 2>&1 &
pid=$!

# Wait for the guest to start the demo, then follow its output until the run ends.
out=
while kill -0 "$pid" 2>/dev/null; do
  out=$(ls "$live"/bigbro-testbed-*/share/1.out 2>/dev/null | head -1 || true)
  [ -n "$out" ] && break
  sleep 0.2
done
if [ -n "$out" ]; then
  tail -n +1 -f --pid="$pid" "$out"
fi
status=0
wait "$pid" || status=$?
echo
grep -E '^test demo|testbed:|panicked' "$live/host.log" || true
if [ "$status" -ne 0 ]; then
  echo "tests/demo.sh: the demo failed (exit $status); the test bed's report:" >&2
  tail -n 40 "$live/host.log" >&2
fi
exit "$status"
