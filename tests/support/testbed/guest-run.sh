#!/bin/sh
# The test bed guest's second stage, run by guest-init.sh with the host's root file
# system as / (read-only; /tmp, /run and /var/tmp are the guest's own tmpfs). Runs the
# test binary once per kernel test listed in tests (lines "LIMIT NAME": the test's time
# limit in seconds and its libtest name), each in its own process ended after LIMIT
# seconds (which it reads in BIGBRO_TESTBED_LIMIT), and leaves N.out (all output, written
# as it comes) and N.rc (exit status) in the results share for the host
# (tests/support/testbed/host.rs). It writes nowhere else on the host.
set -u
R=/run/testbed
. "$R/env"      # the host test process's environment
. "$R/run.conf" # BIN, CWD
export BIGBRO_TESTBED_GUEST=1 TMPDIR=/tmp
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

uname -r >"$R/kernel"
cat /proc/version >>"$R/kernel"
cd "$CWD" || exit 1
i=0
while IFS=' ' read -r limit name; do
    i=$((i + 1))
    BIGBRO_TESTBED_LIMIT=$limit timeout -k 5 "$limit" "$BIN" --exact "$name" --test-threads=1 --nocapture \
        </dev/null >"$R/$i.out" 2>&1
    echo "$?" >"$R/$i.rc"
done <"$R/tests"
