//! Kernel errors (docs/RELIABILITY.md), in the kernel test bed, against the real `bigbro daemon`
//! binary: the `ip_vs` module missing, no CAP_NET_ADMIN, and a scheduler whose module the
//! kernel cannot load. In each case the daemon says exactly what is wrong (log, `/metrics`,
//! `/api/v1/daemon` or the cluster's `errors`), keeps running and serving its API, keeps
//! running whatever does not need the missing piece, and takes over once the kernel allows.
//!
//! Unloading modules and blocking the kernel's module autoloading change the whole guest,
//! not only this test's network namespace, so these tests put the modules and the modprobe
//! path back when they end, even by panic: the suite's other kernel tests run after them
//! in the same guest (one at a time, never beside them).

use crate::daemon_bed;
use crate::testbed;

use std::path::Path;
use std::time::{Duration, Instant};

use daemon_bed::{poll, settings, ConfigFile, DaemonProcess, HEALTH_PATH};
use testbed::dataplane::{DataPlane, HEALTH_PORT, SERVICE_PORT};
use testbed::{kernel_test, loaded_ipvs_modules, sh, sh_status};

const MODPROBE_PATH: &str = "/proc/sys/kernel/modprobe";
const ANTI_ENTROPY: Duration = Duration::from_secs(2);

/// Blocks the kernel's module autoloading until dropped; then restores it and loads
/// `ip_vs` and the schedulers the test bed's other tests expect.
struct NoAutoload {
    modprobe: String,
}

impl NoAutoload {
    fn new() -> NoAutoload {
        let modprobe = std::fs::read_to_string(MODPROBE_PATH)
            .unwrap()
            .trim()
            .to_string();
        std::fs::write(MODPROBE_PATH, "/nonexistent/modprobe").unwrap();
        NoAutoload { modprobe }
    }
}

impl Drop for NoAutoload {
    fn drop(&mut self) {
        let _ = std::fs::write(MODPROBE_PATH, &self.modprobe);
        for module in ["ip_vs", "ip_vs_wrr", "ip_vs_sed"] {
            let _ = std::panic::catch_unwind(|| testbed::modprobe(module));
        }
    }
}

/// An API call to the daemon on 127.0.0.1:9292: (status code, body).
fn api(method: &str, path: &str) -> (u16, String) {
    let out = sh(&format!(
        "curl -s -m 20 -X {method} -w '\\n%{{http_code}}' http://127.0.0.1:9292{path}"
    ));
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (code.parse().unwrap_or(0), body.to_string())
}

/// The value of an unlabelled metric.
fn metric(name: &str) -> Option<f64> {
    let (_, text) = api("GET", "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// A `web` cluster (fwmark 7, scheduler `scheduler`) of the plane's first real server, and
/// `more` clusters appended.
fn config(plane: &DataPlane, dir: &Path, more: &str) -> String {
    format!(
        "{}clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: wrr\n    check_interval: 1\n    health: {{timeout: 0.9}}\n    ramp_up_time: 0\n    vips: [{{address: {}, port: {SERVICE_PORT}}}]\n    nodes:\n      - {{address: {}, port: {HEALTH_PORT}, path: {HEALTH_PATH}}}\n{more}",
        settings(dir, ANTI_ENTROPY.as_secs() as u32),
        plane.vip(),
        plane.servers()[0].addr(),
    )
}

/// Starts the real daemon (through `wrapper`, e.g. setpriv, when given) and waits for its
/// API.
fn daemon(cfg: &Path, dir: &Path, wrapper: &[&str]) -> DaemonProcess {
    let d = DaemonProcess::start_wrapped(wrapper, cfg, &dir.join("daemon.log"));
    d.wait_log("HTTP API listening", 1);
    d
}

/// Waits for cluster `web`'s real server at weight 100 in IPVS, then sends requests
/// through the VIP: none may fail.
fn web_serves_traffic(plane: &DataPlane) {
    let rs1 = plane.servers()[0].addr();
    poll(Duration::from_secs(30), "web at 100", || {
        sh("ipvsadm -S -n")
            .contains(&format!("-a -f 7 -r {rs1}:0 -i -w 100"))
            .then_some(())
    });
    let tally = plane.client().tally(plane.vip_addr(SERVICE_PORT), 10);
    assert!(tally.failures.is_empty(), "{tally:?}");
}

kernel_test! {
    fn ipvs_module_missing_is_named_and_taken_over_when_it_comes() {
        let plane = DataPlane::new(1);
        plane.route_fwmark_locally(7);
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigFile::new(&config(&plane, dir.path(), ""));
        let autoload = NoAutoload::new();
        for module in loaded_ipvs_modules() {
            sh(&format!("rmmod {module}"));
        }
        assert!(!Path::new("/proc/net/ip_vs").exists());

        let mut d = daemon(&cfg.path, dir.path(), &[]);
        let missing = "IPVS is not available in this kernel (is ip_vs loaded?)";
        d.wait_log(missing, 1);
        // The API answers, and says what is wrong; big_brother's route gets its 500.
        assert_eq!(api("PUT", "/cluster/web"), (500, "Application error".to_string()));
        let (code, daemon_json) = api("GET", "/api/v1/daemon");
        assert_eq!(code, 200);
        assert!(daemon_json.contains(missing), "{daemon_json}");
        assert_eq!(metric("bigbro_kernel_available"), Some(0.0));
        std::thread::sleep(ANTI_ENTROPY * 2);
        assert!(d.is_running(), "{}", d.log());
        assert_eq!(sh("nft list ruleset"), "", "nothing changed while IPVS is unreadable");

        // The module comes back (as an operator's modprobe would bring it): within an
        // anti-entropy interval the daemon can read IPVS, and the cluster starts.
        drop(autoload);
        assert!(Path::new("/proc/net/ip_vs").exists());
        let back = Instant::now();
        poll(ANTI_ENTROPY + Duration::from_secs(5), "kernel available", || {
            (metric("bigbro_kernel_available") == Some(1.0)).then_some(())
        });
        eprintln!("IPVS readable again {:?} after the module came back", back.elapsed());
        assert_eq!(api("PUT", "/cluster/web"), (200, "OK".to_string()));
        web_serves_traffic(&plane);
        let log = d.log();
        assert!(!log.contains("panicked"), "{log}");
        assert!(d.terminate().success());
    }

    fn no_cap_net_admin_is_named_and_nothing_else_is_harmed() {
        let plane = DataPlane::new(1);
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigFile::new(&config(&plane, dir.path(), ""));
        // A service already there (as after a restart): the daemon may read but not write.
        sh("ipvsadm -A -f 7 -s wrr");
        let before = sh("ipvsadm -S -n");
        let drop_caps = ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--"];
        let mut d = daemon(&cfg.path, dir.path(), &drop_caps);
        let denied = "permission denied (you must be root / need CAP_NET_ADMIN)";
        d.wait_log(denied, 1);
        let (code, body) = api("GET", "/api/v1/daemon");
        assert_eq!(code, 200);
        assert!(body.contains("CAP_NET_ADMIN"), "{body}");
        assert_eq!(metric("bigbro_kernel_available"), Some(0.0));
        // IPVS cannot even be read: big_brother's start route answers its 500.
        assert_eq!(api("PUT", "/cluster/web"), (500, "Application error".to_string()));
        std::thread::sleep(ANTI_ENTROPY * 2);
        assert!(d.is_running(), "{}", d.log());
        assert_eq!(sh("ipvsadm -S -n"), before, "IPVS unchanged");
        let log = d.log();
        assert!(!log.contains("panicked"), "{log}");
        eprintln!(
            "without CAP_NET_ADMIN the log says:\n{}",
            log.lines().filter(|l| l.contains("CAP_NET_ADMIN")).take(3).collect::<Vec<_>>().join("\n")
        );
        assert!(d.terminate().success());
    }

    fn an_unloadable_scheduler_is_named_and_the_other_clusters_keep_running() {
        let plane = DataPlane::new(1);
        plane.route_fwmark_locally(7);
        let dir = tempfile::tempdir().unwrap();
        let odd = format!(
            "  - cluster_name: odd\n    fwmark: 8\n    scheduler: sed\n    check_interval: 1\n    vips: [{{address: 192.0.2.20, port: 80}}]\n    nodes:\n      - {{address: {}, port: {HEALTH_PORT}, path: {HEALTH_PATH}}}\n",
            plane.servers()[0].addr()
        );
        let cfg = ConfigFile::new(&config(&plane, dir.path(), &odd));
        testbed::modprobe("ip_vs_wrr");
        let _autoload = NoAutoload::new();
        if loaded_ipvs_modules().iter().any(|m| m == "ip_vs_sed") {
            let (code, _, err) = sh_status("rmmod ip_vs_sed");
            assert_eq!(code, 0, "{err}");
        }
        let mut d = daemon(&cfg.path, dir.path(), &[]);
        assert_eq!(api("PUT", "/cluster/web"), (200, "OK".to_string()));
        let (code, body) = api("PUT", "/cluster/odd");
        eprintln!("PUT /cluster/odd: {code} {body:?}");
        let missing = "scheduler or persistence engine not found (is its ip_vs_* module available?)";
        d.wait_log(missing, 1);
        // The cluster's own status names the error ...
        let (_, odd_json) = api("GET", "/api/v1/clusters/odd");
        assert!(odd_json.contains(missing), "{odd_json}");
        // ... and it is counted.
        let (_, metrics) = api("GET", "/metrics");
        let errors: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("bigbro_cluster_errors{cluster=\"odd\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no bigbro_cluster_errors for odd:\n{metrics}"));
        assert!(errors >= 1.0, "{errors}");
        // web is unaffected and serves traffic.
        web_serves_traffic(&plane);
        assert!(!sh("ipvsadm -S -n").contains("-f 8"), "odd has no service without its scheduler");
        assert!(d.is_running());
        let log = d.log();
        assert!(!log.contains("panicked"), "{log}");
        assert!(d.terminate().success());
    }
}
