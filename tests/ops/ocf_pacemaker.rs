//! pacemaker itself drives the OCF agent: a single-node corosync + pacemaker cluster in the
//! test bed's guest (real IPVS kernel) starts cluster `web` of a running `bigbro daemon`
//! through `ocf:bigbro:bigbro`, monitors it (a stop behind its back is noticed and
//! recovered), and stops it; the kernel is the oracle at each step.
//!
//! The guest's root file system is the host's, read-only: the script runs in a private
//! mount namespace with tmpfs over pacemaker's and corosync's state, log and
//! configuration directories, and over /usr/lib/ocf/resource.d, where it puts the agent
//! under provider `bigbro` next to the original providers. corosync runs on a veth address
//! inside the test's network namespace. Fencing is off and quorum ignored (one node).
//! The operations' timeouts are three times the agent's advertised ones: under qemu's
//! emulation (no KVM) with six pacemaker daemons beside it, one agent run can take
//! seconds.

use crate::ops_common;
use crate::testbed;

use std::process::{Command, Stdio};

use ops_common::daemon::{setup, Daemon, BIGBRO};
use testbed::kernel_test;

/// The whole pacemaker scenario; prints `== PHASE` markers with `ipvsadm -S -n` after
/// each, and exits non-zero (with pacemaker's log) when a phase times out.
const SCRIPT: &str = r#"
set -eu
fail() { echo "FAILED: $*"; echo "--- crm_mon"; crm_mon -1 -A 2>&1 || true;
         echo "--- pacemaker.log (errors)"; grep -E 'error|warning|ocf-exit' "$W/pacemaker.log" | tail -40 || true;
         stop_all; exit 1; }
# Asks pacemaker to shut down, gives it 15 s, then kills what is left of it (by process
# id: pacemakerd's children) and corosync.
stop_all() { pacemakerd --shutdown >/dev/null 2>&1 || true
             i=0; while kill -0 "$PACEMAKERD" 2>/dev/null && [ $i -lt 15 ]; do sleep 1; i=$((i+1)); done
             kill -KILL $(pgrep -P "$PACEMAKERD") "$PACEMAKERD" 2>/dev/null || true
             kill -KILL "$COROSYNC" 2>/dev/null || true
             wait 2>/dev/null || true; progress "shut down"; }
# wait_for SECONDS COMMAND...: until COMMAND succeeds
wait_for() { n=$1; shift; i=0
             until "$@" >/dev/null 2>&1; do i=$((i+1)); [ $i -ge "$n" ] && return 1; sleep 1; done; }
located() { crm_resource --locate -r bigbro-web 2>&1 | grep -q "$1"; }
# "Started n1" in crm_mon: started and no operation pending (a pending start already
# counts as "running on n1" for crm_resource --locate).
started() { crm_mon -1 2>&1 | grep -q 'bigbro-web.*Started n1'; }
kernel() { echo "--- ipvsadm"; ipvsadm -S -n; }
progress() { echo "pacemaker scenario: $(date +%T) $*" >&2; }

ip link add pcmk0 type veth peer name pcmk1
ip addr add 10.99.0.1/24 dev pcmk0
ip link set pcmk0 up; ip link set pcmk1 up

for d in /var/lib/pacemaker /var/lib/corosync /var/log/pacemaker /var/log/corosync /etc/corosync; do
    mount -t tmpfs tmpfs "$d"
done
mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox /var/lib/pacemaker/cores
chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
chmod 750 /var/lib/pacemaker/*

# The agent as ocf:bigbro:bigbro, beside the original providers.
mkdir -p "$W/ocf-orig"
mount --bind /usr/lib/ocf/resource.d "$W/ocf-orig"
mount -t tmpfs tmpfs /usr/lib/ocf/resource.d
for p in "$W"/ocf-orig/*; do ln -s "$p" "/usr/lib/ocf/resource.d/$(basename "$p")"; done
mkdir /usr/lib/ocf/resource.d/bigbro
ln -s "$AGENT" /usr/lib/ocf/resource.d/bigbro/bigbro

cat > /etc/corosync/corosync.conf <<'EOF'
totem {
  version: 2
  cluster_name: bigbro-test
  transport: knet
  crypto_cipher: none
  crypto_hash: none
}
nodelist {
  node {
    ring0_addr: 10.99.0.1
    name: n1
    nodeid: 1
  }
}
quorum {
  provider: corosync_votequorum
}
logging {
  to_stderr: yes
  to_logfile: no
  to_syslog: no
}
EOF
cat > /var/lib/pacemaker/cib/cib.xml <<'EOF'
<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="options">
        <nvpair id="o1" name="stonith-enabled" value="false"/>
        <nvpair id="o2" name="no-quorum-policy" value="ignore"/>
        <nvpair id="o3" name="dc-deadtime" value="2s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/><resources/><constraints/>
  </configuration>
  <status/>
</cib>
EOF
chown hacluster:haclient /var/lib/pacemaker/cib/cib.xml
chmod 600 /var/lib/pacemaker/cib/cib.xml

progress "setting up"
corosync -f > "$W/corosync.log" 2>&1 &
COROSYNC=$!
PCMK_logfile="$W/pacemaker.log" pacemakerd > "$W/pacemakerd.out" 2>&1 &
PACEMAKERD=$!
wait_for 90 sh -c 'crm_mon -1 | grep -q "Current DC: n1"' || fail "no DC"
echo "== cluster up"; progress "cluster up"

cibadmin --create -o resources --xml-text "
<primitive id='bigbro-web' class='ocf' provider='bigbro' type='bigbro'>
  <instance_attributes id='bigbro-web-params'>
    <nvpair id='p1' name='cluster' value='web'/>
    <nvpair id='p2' name='binary' value='$BIGBRO'/>
    <nvpair id='p3' name='config' value='$CONFIG'/>
  </instance_attributes>
  <operations>
    <op id='bigbro-web-start' name='start' interval='0s' timeout='60s'/>
    <op id='bigbro-web-stop' name='stop' interval='0s' timeout='60s'/>
    <op id='bigbro-web-monitor' name='monitor' interval='3s' timeout='60s'/>
  </operations>
</primitive>"
wait_for 90 started || fail "pacemaker did not start bigbro-web"
echo "== started"; progress "started"
kernel

# Stopped behind pacemaker's back: its monitor must notice and recover.
curl -sS -X DELETE http://127.0.0.1:9292/cluster/web; echo
ipvsadm -S -n | grep -q '^-A -f 7 ' && fail "the DELETE did not stop web"
wait_for 90 sh -c 'crm_mon -1 --include=failcounts 2>&1 | grep -q "bigbro-web: migration-threshold=.*fail-count=1"' || fail "no failure recorded"
wait_for 90 sh -c "ipvsadm -S -n | grep -q '^-A -f 7 '" || fail "web not recovered"
wait_for 90 started || fail "bigbro-web not started after recovery"
echo "== recovered"; progress "recovered"
kernel

crm_resource --meta -r bigbro-web -p target-role -v Stopped >/dev/null
wait_for 90 located 'NOT running' || fail "pacemaker did not stop bigbro-web"
echo "== stopped"; progress "stopped"
kernel
stop_all
echo "== done"
"#;

// pacemaker under qemu's emulation takes about 80 s here on an idle machine, too close to
// the test bed's default limit of 120 s per kernel test.
kernel_test! {
    #[time_limit(secs = 300)]
    fn pacemaker_starts_monitors_and_stops_the_resource() {
        if !ops_common::have(
            "pacemaker_starts_monitors_and_stops_the_resource",
            &["pacemakerd", "corosync", "crm_resource", "cibadmin", "curl"],
        ) {
            return;
        }
        let (dir, config) = setup();
        let mut daemon = Daemon::start(dir.path(), &config);
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", SCRIPT])
            .env("W", dir.path())
            .env("AGENT", ops_common::guest_agent())
            .env("BIGBRO", BIGBRO)
            .env("CONFIG", &config)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        daemon.stop();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let log = daemon.log();
        assert!(
            out.status.success(),
            "the pacemaker scenario failed:\n{text}\n--- daemon log\n{log}"
        );
        // What the kernel held after each phase.
        let phase = |name: &str| -> Vec<String> {
            text.split(&format!("== {name}\n--- ipvsadm\n"))
                .nth(1)
                .unwrap_or_else(|| panic!("no phase {name}:\n{text}"))
                .lines()
                .take_while(|l| !l.starts_with("=="))
                .filter(|l| l.starts_with("-A "))
                .map(str::to_string)
                .collect()
        };
        // web's service and its relay (multi_datacenter), in ipvsadm's order.
        let mut started = phase("started");
        started.sort();
        assert_eq!(started, ["-A -f 10007 -s wlc", "-A -f 7 -s wlc"], "{text}");
        let mut recovered = phase("recovered");
        recovered.sort();
        assert_eq!(recovered, started, "{text}");
        assert_eq!(phase("stopped"), Vec::<String>::new(), "{text}");
        assert!(text.contains("== done"), "{text}");
    }
}
