//! systemd/bigbro.service run for real: a systemd as PID 1 of a container in the test bed's
//! guest (real IPVS kernel) starts the unit as the package installs it, and the kernel is
//! the oracle. Checked: Type=notify reaches active, systemd logs no warning about the unit,
//! the daemon runs as user bigbro with CAP_NET_ADMIN alone (and seccomp, no new
//! privileges) and still programs IPVS (services and the connection-sync daemon) and
//! nf_tables and probes its real server; watchdog
//! pings keep it alive past WatchdogSec and a hung daemon is killed and restarted;
//! `systemctl reload` applies a new file; `systemctl stop` exits cleanly and leaves IPVS
//! and nf_tables as they are, a start adopts them; kill -9 is restarted by Restart=.
//!
//! The container is what systemd-nspawn would make, by hand (nspawn is not installed): a
//! new PID and mount namespace (the test's network namespace is kept, so IPVS and
//! nf_tables are the ones the test reads), the guest's read-only root (the host's, over
//! 9p) under a tmpfs overlay, fresh /proc, /sys and cgroup2, tmpfs on /run and /tmp,
//! `container=` in PID 1's environment, and `pivot_root` into it. The unit goes to
//! /usr/lib/systemd/system, the sysusers file to /usr/lib/sysusers.d/bigbro.conf (applied
//! by `systemd-sysusers`, as the package's postinst does), the built binary to
//! /usr/bin/bigbro and a configuration to /etc/bigbro/config.yml. systemd boots
//! `basic.target` only (the host's multi-user.target would start its services too).
//! The test drives it with `systemctl` run inside the container through `nsenter`, and
//! the daemon's API over the shared network namespace. The overlay module is in the test
//! kernel's cache since tests/setup.sh keeps fs/overlayfs.

use crate::daemon_bed;
use crate::ops_common;
use crate::testbed;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemon_bed::{nodes, poll};
use testbed::dataplane::{DataPlane, SERVICE_PORT};
use testbed::{kernel_test, sh};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/bigbro.service");
const SYSUSERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/bigbro.sysusers");

/// Builds the container's root and execs systemd as its PID 1 (run by `unshare --pid
/// --mount --fork`, so this shell is PID 1 of the new namespaces). $W: a scratch directory
/// of the guest's tmpfs.
const BOOT: &str = r#"
set -eu
R="$W/root"
mkdir -p "$W/upper" "$W/work" "$R"
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/upper,workdir=$W/work" "$R"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
install -m 644 "$UNIT" "$R/usr/lib/systemd/system/bigbro.service"
install -m 644 "$SYSUSERS" "$R/usr/lib/sysusers.d/bigbro.conf"
touch "$R/usr/bin/bigbro"
mount --bind "$BIGBRO" "$R/usr/bin/bigbro"
mkdir -p "$R/etc/bigbro"
install -m 644 "$CONFIG" "$R/etc/bigbro/config.yml"
mkdir -p "$R/.oldroot"
cd "$R"
pivot_root . .oldroot
umount -l /.oldroot
exec env -i container=bigbro-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --unit=basic.target --log-level=info
"#;

/// A systemd container in the guest; killed (with everything in it) on drop.
struct Systemd {
    /// When the boot began: progress lines say how long each step took.
    since: Instant,
    unshare: Child,
    /// systemd's process id as the guest sees it.
    pid1: u32,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Systemd {
    fn boot(config: &str) -> Systemd {
        testbed::modprobe("overlay");
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        let config_path = w.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = w.join("systemd.log");
        let file = std::fs::File::create(&log).unwrap();
        let unshare = Command::new("unshare")
            .args(["--pid", "--mount", "--fork", "--propagation", "private"])
            .args(["--kill-child", "sh", "-c", BOOT])
            .env("W", w)
            .env("UNIT", UNIT)
            .env("SYSUSERS", SYSUSERS)
            .env("BIGBRO", ops_common::daemon::BIGBRO)
            .env("CONFIG", &config_path)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("unshare");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let mut sd = Systemd {
            since: Instant::now(),
            unshare,
            pid1: 0,
            log,
            _dir: dir,
        };
        let started = Instant::now();
        sd.pid1 = loop {
            let text = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = text.split_whitespace().next() {
                break pid.parse().unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no PID 1:\n{}",
                sd.log()
            );
            if let Ok(Some(status)) = sd.unshare.try_wait() {
                panic!("the container ended ({status}):\n{}", sd.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // `is-system-running --wait` returns once the boot is over.
        let started = Instant::now();
        loop {
            let (rc, out, err) = sd.ctl_status(&["is-system-running", "--wait"]);
            if rc == 0 || out.trim() == "degraded" {
                break;
            }
            if let Ok(Some(status)) = sd.unshare.try_wait() {
                panic!("the container ended ({status}):\n{}", sd.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "systemd did not boot ({out}{err}):\n{}",
                sd.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        sd.progress("booted");
        sd
    }

    /// A line in the test's output (shown when it fails): how far it got, and when.
    fn progress(&self, what: &str) {
        eprintln!("systemd_kernel: {:6.1?} {what}", self.since.elapsed());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `args` inside the container: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("nsenter")
            .arg(format!("--target={}", self.pid1))
            .args(["--mount", "--pid", "--root", "--wd", "--"])
            .args(args)
            .output()
            .expect("nsenter");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ctl_status(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["systemctl", "--no-pager"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `systemctl ARGS`, which must succeed; its stdout.
    fn ctl(&self, args: &[&str]) -> String {
        let (rc, out, err) = self.ctl_status(args);
        assert_eq!(
            rc,
            0,
            "systemctl {args:?}: {out}{err}\n{}",
            self.journal("bigbro.service")
        );
        out
    }

    /// `systemctl show -p PROP --value UNIT`.
    fn show(&self, unit: &str, prop: &str) -> String {
        self.ctl(&["show", "-p", prop, "--value", unit])
            .trim()
            .to_string()
    }

    /// Writes `text` to `path` inside the container.
    fn write(&self, path: &str, text: &str) {
        let (rc, out, err) =
            self.run(&["sh", "-c", "printf '%s' \"$1\" > \"$2\"", "sh", text, path]);
        assert_eq!(rc, 0, "writing {path}: {out}{err}");
    }

    fn journal(&self, unit: &str) -> String {
        let (_, out, err) = self.run(&["journalctl", "--no-pager", "-u", unit]);
        format!("--- journal of {unit}\n{out}{err}")
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        if self.pid1 != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid1 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The daemon's settings as the package ships them (config/default.yml) plus an IPVS
/// connection-sync daemon, and one cluster on the data plane's real servers, its VIP marked
/// through nf_tables.
fn config(plane: &DataPlane, scheduler: &str) -> String {
    format!(
        "bigbro:\n  api:\n    listen: 127.0.0.1:9292\n  state_dir: /var/lib/bigbro\n\
         \x20 sync_daemon: {{role: master, interface: cl0, syncid: 5}}\n\
         clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: {scheduler}\n\
         \x20   check_interval: 1\n    health: {{timeout: 0.9}}\n    ramp_up_time: 0\n\
         \x20   vips: [{{address: {}, port: {SERVICE_PORT}}}]\n    nodes:\n{}",
        plane.vip(),
        nodes(plane, &["rs1"]),
    )
}

const UNIT_NAME: &str = "bigbro.service";

/// Whether what these tests run is installed (tests/setup.sh installs it); a loud skip
/// otherwise, a failure under CI.
fn ready(test: &str) -> bool {
    ops_common::have(
        test,
        &[
            "/lib/systemd/systemd",
            "systemctl",
            "systemd-sysusers",
            "journalctl",
            "nsenter",
            "pivot_root",
            "curl",
        ],
    )
}

/// A one-server data plane and the container booted on its configuration, the sysusers
/// file applied, bigbro.service started (`systemctl start` returns once the daemon has
/// sent READY=1) and cluster web started through the API; returns once rs1 is in IPVS at
/// weight 100, with `ipvsadm -S -n` then. None when a prerequisite is missing.
fn running(test: &str) -> Option<(DataPlane, Systemd, String)> {
    if !ready(test) {
        return None;
    }
    let plane = DataPlane::new(1);
    let sd = Systemd::boot(&config(&plane, "wrr"));
    // What the package's postinst does.
    let (rc, out, err) = sd.run(&["systemd-sysusers", "/usr/lib/sysusers.d/bigbro.conf"]);
    assert_eq!(rc, 0, "systemd-sysusers: {out}{err}");
    sd.ctl(&["start", UNIT_NAME]);
    sd.progress("bigbro.service started");
    // systemd found nothing to complain about in the unit while loading and starting it.
    let (_, warnings, _) = sd.run(&["journalctl", "-b", "-p", "warning", "--no-pager"]);
    let about_bigbro: Vec<&str> = warnings.lines().filter(|l| l.contains("bigbro")).collect();
    assert!(about_bigbro.is_empty(), "{warnings}");
    assert_eq!(sd.show(UNIT_NAME, "ActiveState"), "active");
    assert_eq!(sd.show(UNIT_NAME, "SubState"), "running");
    assert!(
        sd.show(UNIT_NAME, "StatusText").starts_with("1 clusters"),
        "{}",
        sd.show(UNIT_NAME, "StatusText")
    );
    let put = sh("curl -sS -X PUT http://127.0.0.1:9292/cluster/web");
    assert_eq!(put, "OK");
    let rs1 = plane.server("rs1").addr();
    let want = format!("-A -f 7 -s wrr\n-a -f 7 -r {rs1}:0 -i -w 100 --tun-type ipip\n");
    poll(Duration::from_secs(60), "rs1 at 100 in IPVS", || {
        (sh("ipvsadm -S -n") == want).then_some(())
    });
    sd.progress("rs1 at 100 in IPVS");
    Some((plane, sd, want))
}

/// The mark rule the daemon installs for cluster web's VIP.
fn mark_rule(plane: &DataPlane) -> String {
    format!(
        "ip daddr {} tcp dport {SERVICE_PORT} meta mark set 0x00000007",
        plane.vip()
    )
}

/// The `Name:\tvalue` line of /proc/PID/status of the unit's main process.
fn main_status(sd: &Systemd, field: &str) -> String {
    let pid = sd.show(UNIT_NAME, "MainPID");
    let (rc, status, err) = sd.run(&["cat", &format!("/proc/{pid}/status")]);
    assert_eq!(rc, 0, "{err}");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
        .trim()
        .to_string()
}

fn usec(sd: &Systemd, prop: &str) -> u64 {
    let v = sd.show(UNIT_NAME, prop);
    v.parse().unwrap_or_else(|_| panic!("{prop}={v:?}"))
}

// systemd boots in about 20 s under qemu's emulation, and the longest test here takes
// about 75 s on an idle machine: too close to the test bed's default 120 s per test.
kernel_test! {
    #[time_limit(secs = 240)]
    /// Type=notify reaches active; the daemon runs as user bigbro with CAP_NET_ADMIN alone
    /// under every hardening setting of the unit, and still programs IPVS, installs its
    /// nf_tables mark rule and probes its real server; its watchdog pings keep it running
    /// past WatchdogSec.
    fn the_unit_runs_hardened_and_the_watchdog_keeps_it() {
        let Some((plane, sd, want)) = running("the_unit_runs_hardened_and_the_watchdog_keeps_it") else {
            return;
        };
        let journal = || sd.journal(UNIT_NAME);

        // Not root, and CAP_NET_ADMIN (bit 12) is all it has.
        let (_, passwd, _) = sd.run(&["getent", "passwd", "bigbro"]);
        let uid = passwd.split(':').nth(2).unwrap_or_else(|| panic!("{passwd}")).to_string();
        assert_ne!(uid, "0");
        let uids: Vec<String> = main_status(&sd, "Uid")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        assert_eq!(uids, [uid.clone(), uid.clone(), uid.clone(), uid]);
        assert_eq!(main_status(&sd, "CapEff"), "0000000000001000");
        assert_eq!(main_status(&sd, "CapBnd"), "0000000000001000");
        assert_eq!(main_status(&sd, "NoNewPrivs"), "1");
        assert_eq!(main_status(&sd, "Seccomp"), "2");

        // What it did under those restrictions: IPVS (checked in `running`), nf_tables,
        // the connection-sync daemon.
        let ruleset = sh("nft list ruleset");
        assert!(ruleset.contains(&mark_rule(&plane)), "{ruleset}\n{}", journal());
        let daemons = sh("ipvsadm -L -n --daemon");
        assert!(
            daemons.contains("master sync daemon (mcast=cl0, syncid=5"),
            "{daemons}\n{}",
            journal()
        );
        let (_, state, _) = sd.run(&["ls", "-ld", "/var/lib/bigbro"]);
        assert!(state.starts_with("drwxr-x---") && state.contains("bigbro bigbro"), "{state}");

        // The watchdog: WatchdogSec=20s, pings every 10 s. Still the same process, never
        // restarted, well past 20 s, with a ping recorded after the first 10 s.
        assert_eq!(sd.show(UNIT_NAME, "WatchdogUSec"), "20s");
        let watchdog = 20_000_000;
        let pid = sd.show(UNIT_NAME, "MainPID");
        let active_since = usec(&sd, "ActiveEnterTimestampMonotonic");
        let started = Instant::now();
        poll(Duration::from_secs(60), "25 s of life under the watchdog", || {
            assert_eq!(sd.show(UNIT_NAME, "MainPID"), pid, "{}", journal());
            assert_eq!(sd.show(UNIT_NAME, "ActiveState"), "active", "{}", journal());
            (started.elapsed() > Duration::from_secs(25)).then_some(())
        });
        sd.progress("25 s under the watchdog");
        assert_eq!(sd.show(UNIT_NAME, "NRestarts"), "0", "{}", journal());
        let last_ping = usec(&sd, "WatchdogTimestampMonotonic");
        assert!(
            last_ping > active_since + watchdog / 2,
            "no ping recorded after the first: {last_ping} vs {active_since}"
        );
        assert_eq!(sh("ipvsadm -S -n"), want);
        let log = journal();
        assert!(!log.contains("not permitted"), "{log}");
        assert!(!log.contains("ERROR"), "{log}");
    }

    #[time_limit(secs = 240)]
    /// `systemctl reload` (SIGHUP) applies a new scheduler; `systemctl stop` exits cleanly
    /// leaving IPVS and nf_tables exactly as they were; a start adopts them unchanged; a
    /// kill -9 is restarted by Restart=on-failure a second later, again without a change.
    fn reload_stop_and_crash_under_systemd() {
        let Some((plane, sd, want)) = running("reload_stop_and_crash_under_systemd") else {
            return;
        };
        let journal = || sd.journal(UNIT_NAME);

        // Reload: wrr becomes wlc in the kernel.
        sd.write("/etc/bigbro/config.yml", &config(&plane, "wlc"));
        sd.ctl(&["reload", UNIT_NAME]);
        let wlc = want.replace("-s wrr", "-s wlc");
        poll(Duration::from_secs(30), "wlc after the reload", || {
            (sh("ipvsadm -S -n") == wlc).then_some(())
        });
        sd.progress("reloaded");
        assert!(journal().contains("configuration reloaded"), "{}", journal());
        assert_eq!(sd.show(UNIT_NAME, "ActiveState"), "active");

        // Stop: exit 0 (not a failure), nothing removed from the kernel.
        let ruleset = sh("nft list ruleset");
        assert!(ruleset.contains(&mark_rule(&plane)), "{ruleset}");
        sd.ctl(&["stop", UNIT_NAME]);
        sd.progress("stopped");
        assert_eq!(sd.show(UNIT_NAME, "ActiveState"), "inactive");
        assert_eq!(sd.show(UNIT_NAME, "Result"), "success", "{}", journal());
        assert_eq!(sd.show(UNIT_NAME, "ExecMainStatus"), "0");
        assert_eq!(sh("ipvsadm -S -n"), wlc);
        assert_eq!(sh("nft list ruleset"), ruleset);

        // Start again: the running cluster is adopted as it is.
        sd.ctl(&["start", UNIT_NAME]);
        assert_eq!(sd.show(UNIT_NAME, "ActiveState"), "active");
        let status = sh("curl -sS http://127.0.0.1:9292/cluster/web/status");
        assert!(status.contains("Running: true"), "{status}\n{}", journal());
        assert_eq!(sh("ipvsadm -S -n"), wlc);

        sd.progress("started again");
        // A crash: the main process killed with SIGKILL is started again by systemd.
        let pid = sd.show(UNIT_NAME, "MainPID");
        let (rc, _, err) = sd.run(&["kill", "-KILL", &pid]);
        assert_eq!(rc, 0, "{err}");
        poll(Duration::from_secs(60), "a restart after kill -9", || {
            (sd.show(UNIT_NAME, "NRestarts") == "1"
                && sd.show(UNIT_NAME, "ActiveState") == "active"
                && sd.show(UNIT_NAME, "SubState") == "running")
                .then_some(())
        });
        sd.progress("restarted after kill -9");
        assert_ne!(sd.show(UNIT_NAME, "MainPID"), pid);
        let status = sh("curl -sS http://127.0.0.1:9292/cluster/web/status");
        assert!(status.contains("Running: true"), "{status}\n{}", journal());
        assert_eq!(sh("ipvsadm -S -n"), wlc);
        assert_eq!(sh("nft list ruleset"), ruleset);
    }

    #[time_limit(secs = 240)]
    /// A daemon that stops answering (SIGSTOP: no more watchdog pings) is killed when
    /// WatchdogSec runs out and started again by Restart=on-failure.
    fn a_hung_daemon_is_restarted_by_the_watchdog() {
        let Some((_plane, sd, want)) = running("a_hung_daemon_is_restarted_by_the_watchdog") else {
            return;
        };
        let pid = sd.show(UNIT_NAME, "MainPID");
        let (rc, _, err) = sd.run(&["kill", "-STOP", &pid]);
        assert_eq!(rc, 0, "{err}");
        let stopped = Instant::now();
        poll(Duration::from_secs(90), "a restart after the watchdog fired", || {
            (sd.show(UNIT_NAME, "NRestarts") == "1"
                && sd.show(UNIT_NAME, "SubState") == "running")
                .then_some(())
        });
        let took = stopped.elapsed();
        sd.progress("restarted after the watchdog fired");
        assert!(took >= Duration::from_secs(10), "restarted after {took:?}");
        assert_ne!(sd.show(UNIT_NAME, "MainPID"), pid);
        let log = sd.journal(UNIT_NAME);
        assert!(log.contains("Watchdog timeout"), "{log}");
        assert_eq!(sh("ipvsadm -S -n"), want);
    }
}
