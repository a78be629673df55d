//! The proof end to end, in the kernel test bed (Debian 6.1 guest with IPVS): the real
//! `bigbro daemon` with its real HTTP API on 127.0.0.1:9292, two real servers with litmus
//! health endpoints, client traffic through the VIP. big_brother's routes start and stop
//! the cluster with their exact bodies, the kernel follows (`ipvsadm -S -n` is the oracle),
//! `/metrics` reports the kernel's per-destination counters after real traffic, and the CLI
//! drains and undrains a node.

use crate::testbed;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testbed::dataplane::{DataPlane, Health, SERVICE_PORT, VIP};
use testbed::{kernel_test, sh};

const API: &str = "127.0.0.1:9292";

/// One request on a new connection: (status, body).
fn http(method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(API).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {API}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Polls `check` (every 100 ms, at most `secs`) until it gives a value: waiting on another
/// process and on the kernel's 2-second statistics estimator, which send no events.
fn until<T>(what: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `bigbro daemon`, stopped with SIGTERM when dropped.
struct Daemon(Child);

impl Daemon {
    fn start(config: &str) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bigbro"))
            .args(["daemon", "-c", config])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bigbro daemon");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // The API is bound before the daemon takes over the kernel; wait for both.
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            eprintln!("daemon: {line}");
            let listening = line.contains("HTTP API listening");
            seen.push(line);
            if listening {
                break;
            }
        }
        assert!(
            seen.last()
                .is_some_and(|l| l.contains("HTTP API listening")),
            "the daemon stopped before listening"
        );
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("daemon: {line}");
            }
        });
        Daemon(child)
    }

    fn stop(mut self) -> Option<i32> {
        sh(&format!("kill -TERM {}", self.0.id()));
        let code = self.0.wait().unwrap().code();
        std::mem::forget(self);
        code
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bigbro"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bigbro {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

kernel_test! {
    fn the_real_daemon_and_api_drive_ipvs_end_to_end() {
        let plane = DataPlane::new(2);
        let (rs1, rs2) = (&plane.servers()[0], &plane.servers()[1]);
        rs1.set_health(Health::litmus(30));
        rs2.set_health(Health::litmus(70));
        plane.route_fwmark_locally(7);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bigbro.yml");
        std::fs::write(
            &config,
            format!(
                "bigbro:\n  api:\n    listen: {API}\n  anti_entropy_interval: 1\n\
                 clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: wrr\n\
                 \x20   ramp_up_time: 0\n    check_interval: 0.5\n\
                 \x20   vips:\n      - {{address: {VIP}, protocol: tcp, port: {SERVICE_PORT}}}\n\
                 \x20   nodes:\n\
                 \x20     - {{address: {}, port: {}, path: /web/status}}\n\
                 \x20     - {{address: {}, port: {}, path: /web/status}}\n",
                rs1.addr(), rs1.health_port(), rs2.addr(), rs2.health_port()
            ),
        )
        .unwrap();
        let daemon = Daemon::start(config.to_str().unwrap());

        // Stopped: big_brother's bodies, nothing in IPVS.
        assert_eq!(
            http("GET", "/"),
            (200, "Big Brother: 0.9.12 (bigbro 0.1.0)\n\nRunning:\n\nStopped:\n- web (7)\n\n".into())
        );
        assert_eq!(http("GET", "/cluster/web"), (200, "Running: false\nCombinedWeight: 0\n".into()));
        assert_eq!(http("DELETE", "/cluster/web"), (304, String::new()));
        assert_eq!(http("GET", "/cluster/nope"), (404, "Cluster nope not found".into()));
        assert_eq!(sh("ipvsadm -S -n"), "");

        // Start: 200 OK, then 304; the kernel gets the service, then the health weights.
        assert_eq!(http("PUT", "/cluster/web"), (200, "OK".into()));
        assert_eq!(http("PUT", "/cluster/web"), (304, String::new()));
        until("CombinedWeight 100", 20, || {
            (http("GET", "/cluster/web/status").1 == "Running: true\nCombinedWeight: 100\n").then_some(())
        });
        assert_eq!(http("GET", "/cluster/web"), (200, "Running: true\nCombinedWeight: 100\n".into()));
        assert_eq!(
            http("GET", "/cluster/web/status_detail").1,
            format!(r#"{{"nodes":{{"{}":30,"{}":70}},"cluster":"web","running":true}}"#, rs1.addr(), rs2.addr())
        );
        let saved = sh("ipvsadm -S -n");
        assert!(saved.starts_with("-A -f 7 -s wrr\n"), "{saved}");
        assert!(saved.contains(&format!("-a -f 7 -r {}:0 -i -w 30", rs1.addr())), "{saved}");
        assert!(saved.contains(&format!("-a -f 7 -r {}:0 -i -w 70", rs2.addr())), "{saved}");
        assert_eq!(
            http("GET", "/").1,
            "Big Brother: 0.9.12 (bigbro 0.1.0)\n\nRunning:\n+ web (7) - CombinedWeight: 100\n\nStopped:\n\n"
        );

        // Traffic through the VIP splits 3:7 (wrr is exact: 40 new connections are four
        // cycles), and /metrics reports the kernel's counters for each destination.
        let tally = plane.client().tally(plane.vip_addr(SERVICE_PORT), 40);
        assert!(tally.failures.is_empty(), "{:#?}", tally.failures);
        assert_eq!((tally.count("rs1"), tally.count("rs2")), (12, 28), "{tally:?}");
        let labels = |rs: &testbed::dataplane::RealServer| format!("address=\"{}\"", rs.addr());
        let metrics = until("the kernel's counters in /metrics", 20, || {
            let text = http("GET", "/metrics").1;
            let c1 = metric(&text, "bigbro_ipvs_dest_connections_total", &labels(rs1))?;
            let c2 = metric(&text, "bigbro_ipvs_dest_connections_total", &labels(rs2))?;
            (c1 == 12.0 && c2 == 28.0).then_some(text)
        });
        let in_packets = metric(&metrics, "bigbro_ipvs_dest_in_packets_total", &labels(rs2)).unwrap();
        assert!(in_packets >= 28.0 * 3.0, "{in_packets} packets for 28 connections");
        assert!(metric(&metrics, "bigbro_ipvs_dest_in_bytes_total", &labels(rs2)).unwrap() > in_packets * 40.0);
        assert_eq!(metric(&metrics, "bigbro_node_kernel_weight", &format!("node=\"{}\"", rs1.addr())), Some(30.0));
        assert_eq!(metric(&metrics, "bigbro_node_health", &format!("node=\"{}\"", rs2.addr())), Some(70.0));
        assert_eq!(metrics.lines().find(|l| l.starts_with("bigbro_kernel_available ")), Some("bigbro_kernel_available 1"));
        assert!(metric(&metrics, "bigbro_reconcile_operations_total", "kind=\"add_service\"").unwrap() >= 1.0);

        // The CLI drains rs2: weight 0 in the kernel, every new connection goes to rs1.
        let url = format!("http://{API}");
        let out = cli(&["drain", "web", &rs2.addr().to_string(), "--reason", "test", "--url", &url]);
        assert!(out.contains("drained"), "{out}");
        until("rs2 at weight 0", 20, || {
            sh("ipvsadm -S -n").contains(&format!("-r {}:0 -i -w 0", rs2.addr())).then_some(())
        });
        let tally = plane.client().tally(plane.vip_addr(SERVICE_PORT), 10);
        assert_eq!((tally.count("rs1"), tally.count("rs2")), (10, 0), "{tally:?}");
        let status = cli(&["status", "web", "--url", &url]);
        assert!(status.contains("drained (test)"), "{status}");
        cli(&["undrain", "web", &rs2.addr().to_string(), "--url", &url]);
        until("rs2 back at 70", 20, || {
            sh("ipvsadm -S -n").contains(&format!("-r {}:0 -i -w 70", rs2.addr())).then_some(())
        });

        // Stop: 200 OK, the service is gone; again: 304.
        assert_eq!(http("DELETE", "/cluster/web"), (200, "OK".into()));
        assert_eq!(sh("ipvsadm -S -n"), "");
        assert_eq!(http("DELETE", "/cluster/web"), (304, String::new()));
        assert_eq!(http("GET", "/cluster/web"), (200, "Running: false\nCombinedWeight: 0\n".into()));
        assert_eq!(daemon.stop(), Some(0));
    }
}
