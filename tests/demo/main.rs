//! The demo (`tests/demo.sh`, named in the README): in the kernel test bed, four real
//! HTTP backends behind the VIP 192.0.2.10:80, `bigbro daemon -c config/demo.yml` started
//! as an operator would (then `bigbro start web`), client traffic throughout, and a live
//! table of every node's health, weight, ramp and share of the connections while rs4 joins
//! and ramps up, rs2 degrades and rs3 fails and is drained. About a minute.
//!
//! `cargo test` skips it (it is a show, and a minute of CI time): the test runs only when
//! `BIGBRO_DEMO` is set, which tests/demo.sh does while it follows the guest's output
//! live. It still checks what it shows: no failed request, rs4's weight in several steps,
//! nothing for rs3 once drained.
//!
//! It calls the test bed's runner itself instead of `kernel_test!`, so that when it is
//! skipped no VM boots at all; hence the macro goes unused here.
#![allow(unused_macros, unused_imports)]

#[path = "../support/daemon_bed.rs"]
mod daemon_bed;
#[path = "../support/testbed/mod.rs"]
mod testbed;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon_bed::{poll, runtime, DaemonProcess, Traffic};
use testbed::dataplane::{http_get, DataPlane, Health, SERVICE_PORT, VIP};

const CONFIG: &str = "config/demo.yml";
const API: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9292);
/// When each act starts, in seconds from the cluster's start, and how long the demo runs.
const JOIN: u64 = 12;
const DEGRADE: u64 = 30;
const FAIL: u64 = 42;
const END: u64 = 56;

#[test]
fn demo() {
    let guest = std::env::var_os("BIGBRO_TESTBED_GUEST").is_some();
    if !guest && std::env::var_os("BIGBRO_DEMO").is_none() {
        eprintln!("demo: skipped under cargo test; run tests/demo.sh to see it");
        return;
    }
    testbed::register(module_path!(), "demo");
    testbed::run_kernel_test(module_path!(), "demo", run);
}

/// One node's row.
struct Row {
    name: String,
    address: String,
    status: String,
    health: String,
    weight: Option<u64>,
    ramp: f64,
}

fn run() {
    let ansi = std::env::var_os("BIGBRO_DEMO_ANSI").is_some();
    let plane = Arc::new(DataPlane::new(4));
    let names = ["rs1", "rs2", "rs3", "rs4"];
    for (i, name) in names.iter().enumerate() {
        let want = Ipv4Addr::new(203, 0, 113, (4 * i + 2) as u8);
        assert_eq!(
            plane.server(name).addr(),
            want,
            "{CONFIG} names {want} for {name}"
        );
    }
    assert_eq!(plane.vip(), VIP);
    plane.route_fwmark_locally(7);
    // rs4 is still booting: its health endpoint says 503.
    plane.server("rs4").set_health(Health::down());

    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = DaemonProcess::start(Path::new(CONFIG), &dir.path().join("bigbro.log"));
    let rt = runtime();
    poll(Duration::from_secs(30), "the daemon's API", || {
        rt.block_on(http_get(API, "/"))
            .ok()
            .filter(|r| r.status == 200)
    });
    let start = std::process::Command::new(env!("CARGO_BIN_EXE_bigbro"))
        .args(["start", "web"])
        .output()
        .expect("bigbro start web");
    let started = String::from_utf8_lossy(&start.stdout).trim().to_string();
    let t0 = Instant::now();
    // About 40 requests a second: enough to see the shares, and room left for the probes
    // on the guest's one emulated CPU.
    let traffic = Traffic::paced(plane.clone(), 5, Duration::from_millis(80));

    let mut events: Vec<String> = vec![
        format!("$ bigbro daemon -c {CONFIG}"),
        format!("$ bigbro start web   -> {started}"),
    ];
    let mut rs4_weights: Vec<u64> = Vec::new();
    let mut drained_at: Option<Instant> = None;
    let mut acts = vec![
        (
            JOIN,
            "rs4 is up: its health endpoint answers 100; it joins and ramps up",
        ),
        (DEGRADE, "rs2 degrades: its health endpoint answers 40"),
        (
            FAIL,
            "rs3 fails: its health endpoint answers 503; it is drained",
        ),
    ];
    while t0.elapsed() < Duration::from_secs(END) {
        let now = t0.elapsed().as_secs();
        while acts.first().is_some_and(|(at, _)| *at <= now) {
            let (at, what) = acts.remove(0);
            match at {
                JOIN => plane.server("rs4").set_health(Health::litmus(100)),
                DEGRADE => plane.server("rs2").set_health(Health::litmus(40)),
                _ => plane.server("rs3").set_health(Health::down()),
            }
            events.push(format!("t={at:>2}s  {what}"));
        }
        let rows = rows(&rt);
        if let Some(w) = rows.iter().find(|r| r.name == "rs4").and_then(|r| r.weight) {
            if rs4_weights.last() != Some(&w) {
                rs4_weights.push(w);
            }
        }
        if drained_at.is_none()
            && rows
                .iter()
                .any(|r| r.name == "rs3" && r.weight == Some(0) && now >= FAIL)
        {
            drained_at = Some(Instant::now());
        }
        let frame = render(now, &rows, &traffic, &events, &daemon.log());
        if ansi {
            print!("\x1b[H\x1b[2J{frame}");
        } else {
            println!("{frame}");
        }
        // The table's refresh rate: this is the display, not a synchronisation.
        std::thread::sleep(Duration::from_secs(1));
    }
    let after_drain = drained_at.map(|t| traffic.since(t));
    let total = traffic.stop();
    let status = daemon.terminate();
    let code = status
        .code()
        .map_or("a signal".to_string(), |c| c.to_string());
    println!("\n$ kill -TERM bigbro   -> it exits ({code}); IPVS is left as it is:");
    println!("{}", testbed::sh("ipvsadm -L -n"));
    println!(
        "{} requests, {} failed; rs4's weight went {}",
        total.answered() + total.failures.len(),
        total.failures.len(),
        rs4_weights
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" → ")
    );
    assert!(status.success(), "bigbro daemon exited with {status}");
    assert!(
        total.failures.is_empty(),
        "failed requests: {:?}",
        total.failures
    );
    let ramping = rs4_weights.iter().filter(|w| (1..100).contains(*w)).count();
    assert!(
        ramping >= 4,
        "rs4 ramped in {ramping} visible steps: {rs4_weights:?}"
    );
    let after = after_drain.expect("rs3 was drained");
    assert_eq!(after.count("rs3"), 0, "rs3 got connections after its drain");
}

/// The nodes as the daemon's JSON API shows them.
fn rows(rt: &tokio::runtime::Runtime) -> Vec<Row> {
    let Ok(r) = rt.block_on(http_get(API, "/api/v1/clusters/web")) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.body) else {
        return Vec::new();
    };
    let names: BTreeMap<&str, &str> = [
        ("203.0.113.2", "rs1"),
        ("203.0.113.6", "rs2"),
        ("203.0.113.10", "rs3"),
        ("203.0.113.14", "rs4"),
    ]
    .into();
    v["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    let address = n["address"].as_str().unwrap_or("?").to_string();
                    Row {
                        name: names.get(address.as_str()).unwrap_or(&"?").to_string(),
                        status: n["status"].as_str().unwrap_or("-").to_string(),
                        health: n["health"]
                            .as_u64()
                            .map_or("-".to_string(), |h| h.to_string()),
                        weight: n["kernel_weight"].as_u64(),
                        ramp: n["ramp"]["progress"].as_f64().unwrap_or(0.0),
                        address,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One frame of the live table.
fn render(now: u64, rows: &[Row], traffic: &Traffic, events: &[String], log: &str) -> String {
    let window = traffic.since(Instant::now() - Duration::from_secs(3));
    let all = traffic.since(Instant::now() - Duration::from_secs(3600));
    let answered = window.answered().max(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bigbro demo   t={now:>2}s   cluster web (fwmark 7, wrr)   VIP {VIP}:{SERVICE_PORT}   \
         {} requests, {} failed",
        all.answered() + all.failures.len(),
        all.failures.len()
    );
    let _ = writeln!(
        out,
        "\n  node  address         status   health  weight  ramp   share of connections (last 3 s)"
    );
    for r in rows {
        let count = window.count(&r.name);
        let share = count * 100 / answered;
        let bar = "█".repeat(share / 4);
        let _ = writeln!(
            out,
            "  {:<4}  {:<14}  {:<7}  {:>6}  {:>6}  {:>4.0}%  {:<25} {:>3}%",
            r.name,
            r.address,
            r.status,
            r.health,
            r.weight.map_or("-".to_string(), |w| w.to_string()),
            r.ramp * 100.0,
            bar,
            share
        );
    }
    let _ = writeln!(out, "\n  what happened:");
    for e in events.iter().rev().take(5).rev() {
        let _ = writeln!(out, "    {e}");
    }
    let _ = writeln!(out, "\n  bigbro's log (IPVS changes):");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ipvsadm ") || l.contains(" is up ") || l.contains(" is down "))
        .collect();
    for l in lines.iter().rev().take(6).rev() {
        // Drop the timestamp and target: keep the message.
        let message = l.split_once(": ").map_or(*l, |(_, m)| m);
        let _ = writeln!(out, "    {}", message.chars().take(150).collect::<String>());
    }
    out
}
