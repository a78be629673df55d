//! API abuse against the real `bigbro daemon` (docs/RELIABILITY.md), in the kernel test bed with a
//! running cluster and client traffic through the VIP: hundreds of silent connections,
//! a slow body, an oversized body, requests without or with a wrong token on every route
//! that changes something, odd methods, path tricks, oversized heads, and a thousand quick
//! refused requests. Each gets its clear 4xx (or waits for a free connection slot); the
//! daemon's descriptors, threads and memory stay bounded; nothing changes in IPVS,
//! nf_tables or the daemon's state; no request through the VIP fails; the token is never
//! logged.
//!
//! The rules themselves (limits, token, 4xx bodies) are tested over real sockets against
//! the API in-process in tests/api/safety.rs, tests/api/json.rs and tests/api/legacy.rs;
//! this test adds the real process, the real kernel and everything at once.

use crate::daemon_bed;
use crate::testbed;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use daemon_bed::{poll, usage, DaemonProcess, Traffic, HEALTH_PATH};
use testbed::dataplane::{DataPlane, HEALTH_PORT, SERVICE_PORT};
use testbed::{block_on, kernel_test, sh};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "soak-token-0123456789abcdef";
const API: &str = "127.0.0.1:9292";
/// The API's documented bound on connections served at once (docs/api.md).
const MAX_CONNECTIONS: usize = 256;

fn api_addr() -> SocketAddr {
    API.parse().unwrap()
}

/// Sends `raw` on a new connection and reads the answer to the end: (status, body).
async fn exchange(raw: Vec<u8>, limit: Duration) -> Result<(u16, String), String> {
    let work = async {
        let mut s = TcpStream::connect(api_addr())
            .await
            .map_err(|e| e.to_string())?;
        // The server may answer (413, 431) and close before it has read everything.
        let _ = s.write_all(&raw).await;
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

/// A request with `Connection: close`, the given extra header lines and body.
fn request(method: &str, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {API}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

fn daemon(cfg: &Path, dir: &Path) -> DaemonProcess {
    let d = DaemonProcess::start(cfg, &dir.join("daemon.log"));
    d.wait_log("HTTP API listening", 1);
    d
}

kernel_test! {
    fn api_abuse_is_refused_bounded_and_changes_nothing() {
        let plane = std::sync::Arc::new(DataPlane::new(2));
        plane.route_fwmark_locally(7);
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let nodes: String = plane
            .servers()
            .iter()
            .map(|s| format!("      - {{address: {}, port: {HEALTH_PORT}, path: {HEALTH_PATH}}}\n", s.addr()))
            .collect();
        let cfg = dir.path().join("bigbro.yml");
        std::fs::write(
            &cfg,
            format!(
                "bigbro:\n  api: {{listen: \"{API}\", token_file: {}}}\n  anti_entropy_interval: 3\n  data_dir: {}\n\
                 clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: wrr\n    check_interval: 1\n    health: {{timeout: 0.9}}\n    ramp_up_time: 0\n    vips: [{{address: {}, port: {SERVICE_PORT}}}]\n    nodes:\n{nodes}",
                token_file.display(),
                dir.path().join("data").display(),
                plane.vip()
            ),
        )
        .unwrap();
        let mut d = daemon(&cfg, dir.path());
        let pid = d.child.id();
        let start = block_on(exchange(request("PUT", "/cluster/web", &bearer(TOKEN), b""), Duration::from_secs(20)));
        assert_eq!(start, Ok((200, "OK".to_string())));
        let (rs1, rs2) = (plane.servers()[0].addr(), plane.servers()[1].addr());
        let want = format!(
            "-A -f 7 -s wrr\n-a -f 7 -r {rs1}:0 -i -w 100 --tun-type ipip\n-a -f 7 -r {rs2}:0 -i -w 100 --tun-type ipip\n"
        );
        poll(Duration::from_secs(30), "web at 100/100", || (sh("ipvsadm -S -n") == want).then_some(()));
        let nft_before = sh("nft list ruleset");
        let (_, daemon_before) = block_on(exchange(request("GET", "/api/v1/daemon", "", b""), Duration::from_secs(20))).unwrap();
        let reload_before = daemon_before.split("\"reload\"").nth(1).unwrap_or("").to_string();
        let base = usage(pid);
        let traffic = Traffic::start(plane.clone(), 10);
        traffic.wait_requests(20);

        let mut peak = base;
        let sample = |peak: &mut (usize, usize, usize)| {
            let u = usage(pid);
            *peak = (peak.0.max(u.0), peak.1.max(u.1), peak.2.max(u.2));
        };

        // 1. Refusals: every route that changes something, without a token and with a
        // wrong one (401); odd methods (405, or 400 for what is not a method); path tricks
        // (404/400); an oversized body (413); oversized heads (431).
        let changes: [(&str, &str); 6] = [
            ("PUT", "/cluster/web"),
            ("DELETE", "/cluster/web"),
            ("POST", "/api/v1/clusters/web/stop"),
            ("PUT", "/api/v1/clusters/web/override"),
            ("DELETE", "/api/v1/clusters/web/nodes/203.0.113.2/override"),
            ("POST", "/api/v1/reload"),
        ];
        let mut cases: Vec<(String, Vec<u8>, Vec<u16>)> = Vec::new();
        for (method, path) in changes {
            cases.push((format!("{method} {path} without a token"), request(method, path, "", b"{}"), vec![401]));
            cases.push((format!("{method} {path} with a wrong token"), request(method, path, &bearer("wrong-token-that-must-not-be-logged"), b"{}"), vec![401]));
            cases.push((format!("{method} {path} with another scheme"), request(method, path, &format!("Authorization: Basic {TOKEN}\r\n"), b"{}"), vec![401]));
        }
        for (method, path, codes) in [
            ("PATCH", "/cluster/web", vec![405, 401]),
            ("TRACE", "/cluster/web", vec![405, 401]),
            ("POST", "/cluster/web", vec![405, 401]),
            ("GET", "/api/v1/reload", vec![405]),
            ("PUT", "/cluster/web/../web", vec![404, 400, 401]),
            ("DELETE", "//cluster/web", vec![404, 400, 401]),
            ("PUT", "/cluster/we%2Fb", vec![404, 400, 401]),
            ("GET", "/cluster/%ZZ", vec![404, 400]),
            ("GET", "/etc/passwd", vec![404]),
        ] {
            cases.push((format!("{method} {path}"), request(method, path, &bearer(TOKEN), b""), codes));
        }
        let big = vec![b'{'; 10 << 20];
        cases.push(("a 10 MB body".into(), request("PUT", "/api/v1/clusters/web/override", &bearer(TOKEN), &big), vec![413]));
        let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
        cases.push(("100 header fields".into(), request("GET", "/cluster/web", &many, b""), vec![431]));
        let long = format!("X-Long: {}\r\n", "a".repeat(20 * 1024));
        cases.push(("a 20 KiB header".into(), request("GET", "/cluster/web", &long, b""), vec![431]));
        cases.push(("not HTTP".into(), b"HELLO THERE\r\n\r\n".to_vec(), vec![400]));
        for (what, raw, codes) in &cases {
            let r = block_on(exchange(raw.clone(), Duration::from_secs(20)));
            match r {
                Ok((code, _)) if codes.contains(&code) => {}
                other => panic!("{what}: {other:?}, wanted one of {codes:?}"),
            }
            sample(&mut peak);
        }

        // One connection at a time so far: the 10 MB body was refused without being held
        // (a few MiB of allocator slack at most), and no descriptor was kept.
        let refusals = peak;
        assert!(refusals.2 <= base.2 + 4 * 1024, "memory after the refusals: {base:?} -> {refusals:?}");
        assert!(refusals.0 <= base.0 + 4, "descriptors after the refusals: {base:?} -> {refusals:?}");

        // 2. Many connections at once: 600 silent ones (more than the 256 served at once),
        // a slow body, and 1000 quick refused requests, 50 at a time; a legitimate read
        // is still answered once the silent ones' head deadline (10 s) frees the slots.
        let peak_during = std::sync::Arc::new(std::sync::Mutex::new(base));
        let (silent, slow, quick, legit) = block_on(async {
            let sampler = {
                let peak = peak_during.clone();
                tokio::spawn(async move {
                    loop {
                        let u = usage(pid);
                        {
                            let mut p = peak.lock().unwrap();
                            *p = (p.0.max(u.0), p.1.max(u.1), p.2.max(u.2));
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            };
            let mut hogs = Vec::new();
            for _ in 0..600 {
                if let Ok(s) = TcpStream::connect(api_addr()).await {
                    hogs.push(s);
                }
            }
            let slow = tokio::spawn(async {
                let began = Instant::now();
                let mut s = TcpStream::connect(api_addr()).await.unwrap();
                let head = format!(
                    "PUT /api/v1/clusters/web/override HTTP/1.1\r\nHost: {API}\r\nConnection: close\r\n{}Content-Length: 100\r\n\r\n{{",
                    bearer(TOKEN)
                );
                let _ = s.write_all(head.as_bytes()).await;
                let mut answer = Vec::new();
                let read = async {
                    loop {
                        let mut buf = [0u8; 512];
                        tokio::select! {
                            n = s.read(&mut buf) => match n {
                                Ok(0) | Err(_) => break,
                                Ok(n) => answer.extend_from_slice(&buf[..n]),
                            },
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                let _ = s.write_all(b" ").await; // one byte a second
                            }
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(60), read).await;
                (String::from_utf8_lossy(&answer).into_owned(), began.elapsed())
            });
            let legit = tokio::spawn(async {
                let began = Instant::now();
                let r = exchange(request("GET", "/cluster/web/status", "", b""), Duration::from_secs(60)).await;
                (r, began.elapsed())
            });
            let mut codes = std::collections::BTreeMap::new();
            for _ in 0..20 {
                let mut wave = Vec::new();
                for _ in 0..50 {
                    wave.push(tokio::spawn(exchange(
                        request("DELETE", "/cluster/web", &bearer("wrong-token-that-must-not-be-logged"), b""),
                        Duration::from_secs(60),
                    )));
                }
                for w in wave {
                    let code = match w.await.unwrap() {
                        Ok((c, _)) => c.to_string(),
                        Err(e) => e,
                    };
                    *codes.entry(code).or_insert(0usize) += 1;
                }
            }
            let silent = hogs.len();
            let legit = legit.await.unwrap();
            let slow = slow.await.unwrap();
            drop(hogs);
            sampler.abort();
            (silent, slow, codes, legit)
        });
        sample(&mut peak);
        let during = *peak_during.lock().unwrap();
        peak = (peak.0.max(during.0), peak.1.max(during.1), peak.2.max(during.2));
        eprintln!("silent connections {silent}; slow body answer after {:?}: {:?}; quick requests {quick:?}; legitimate read {:?}", slow.1, slow.0.lines().next(), legit);
        assert_eq!(silent, 600);
        assert!(slow.0.starts_with("HTTP/1.1 408"), "slow body: {:?}", slow.0);
        assert_eq!(quick, [("401".to_string(), 1000)].into_iter().collect(), "{quick:?}");
        assert_eq!(legit.0.as_ref().map(|r| r.0), Ok(200), "{legit:?}");
        assert!(legit.1 < Duration::from_secs(25), "{legit:?}");

        // Bounded: at most the served connections' descriptors beyond the baseline, a few
        // threads, and not the 10 MB body in memory.
        let after = usage(pid);
        eprintln!("daemon usage (fds, threads, rss KiB): before {base:?}, after the refusals {refusals:?}, peak {peak:?}, after {after:?}");
        assert!(peak.0 <= base.0 + MAX_CONNECTIONS + 16, "descriptors: {base:?} -> {peak:?}");
        assert!(peak.1 <= base.1 + 8, "threads: {base:?} -> {peak:?}");
        // 256 connections served at once, each with its buffers (heads are capped at 16 KiB,
        // bodies at 64 KiB): at most 64 KiB each.
        assert!(peak.2 <= base.2 + MAX_CONNECTIONS * 64, "memory: {base:?} -> {peak:?}");
        poll(Duration::from_secs(30), "descriptors back to the baseline", || {
            (usage(pid).0 <= base.0 + 2).then_some(())
        });

        // Nothing changed.
        assert_eq!(sh("ipvsadm -S -n"), want, "IPVS changed");
        assert_eq!(sh("nft list ruleset"), nft_before, "nf_tables changed");
        let (_, daemon_after) = block_on(exchange(request("GET", "/api/v1/daemon", "", b""), Duration::from_secs(20))).unwrap();
        assert_eq!(daemon_after.split("\"reload\"").nth(1).unwrap_or(""), reload_before, "a reload happened");
        let (_, status) = block_on(exchange(request("GET", "/cluster/web", "", b""), Duration::from_secs(20))).unwrap();
        assert_eq!(status, "Running: true\nCombinedWeight: 200\n");
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests through the VIP: {:?}", all.failures);
        assert!(d.is_running());
        let log = d.log();
        assert!(!log.contains("panicked"), "{log}");
        assert!(!log.contains(TOKEN) && !log.contains("wrong-token-that-must"), "a token is in the log");
        assert!(d.terminate().success());
        eprintln!("API abuse: {} refused requests of {} kinds, 600 silent connections, 1 slow body, 1000 quick refusals; {} requests through the VIP, none failed", cases.len() + 1000, cases.len(), all.answered());
    }
}
