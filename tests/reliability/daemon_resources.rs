//! Resources of the real `bigbro daemon` stay flat over a long run with probes timing out
//! (docs/RELIABILITY.md), in the kernel test bed. tests/reliability/resources.rs measures the probe
//! scheduler in-process; this is the whole binary, with real IPVS and nf_tables, its API
//! and SIGHUP reloads.
//!
//! Three clusters hold 222 nodes whose health endpoints fail (202 accept and never answer,
//! 10 refuse the connection, 10 accept and reset it) next to two healthy IPIP real servers.
//! Cluster `web` (the healthy nodes and two hanging ones) is probed every 0.5 s; `ROUNDS` of
//! its probes make the run, and each round is an event of the daemon's: its probe reaching
//! real server rs1. After each one the test reads the daemon's descriptors
//! (`/proc/PID/fd`), threads and resident memory (`/proc/PID/status`), the connections it
//! holds to hanging endpoints (`/proc/net/tcp`) and the healthy nodes' IPVS weights
//! (`/proc/net/ip_vs`), and reads the API (`/api/v1/clusters/web`); every `METRICS_EVERY`
//! rounds it scrapes `/metrics`, every `RELOAD_EVERY` rounds it reloads the configuration
//! (SIGHUP, two files in turn: one changes a cluster's probe timeout and drops ten nodes,
//! the other restores them). Asserted: descriptors at most one per probe in flight above
//! the idle daemon's, never two probes at once to one endpoint, threads and memory within
//! stated bounds, no growth from an early window to the late one (medians), the healthy
//! nodes at full weight in IPVS after every round, the expected number of timeouts in
//! `/metrics`, and everything given back when a last reload removes the failing nodes. The
//! figures are printed; docs/RELIABILITY.md quotes them.
//!
//! The failing endpoints live in a network namespace of their own (the "farm") behind a
//! veth link: the addresses of 10.48.0.0/12 are routed there to its loopback and served by
//! this test process, so the director's IPVS sees them as ordinary unicast destinations.

use crate::daemon_bed;
use crate::testbed;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use daemon_bed::{poll, usage, DaemonProcess, HEALTH_PATH};
use nix::sys::signal::Signal;
use testbed::dataplane::{http_get, DataPlane, HEALTH_PORT, SERVICE_PORT};
use testbed::{kernel_test, sh};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Cluster `web`: the healthy real servers rs1 and rs2 and `WEB_HANGING` hanging nodes,
/// probed every 0.5 s with a 0.45 s timeout. A node goes down after three failed probes in
/// a row (`fall: 3`), so that a probe or two starved of the guest's one emulated CPU (the
/// host is shared; seen with `fall: 2` at a load average of 8) does not fail the run. One
/// probe of rs1 is one round of the run.
const WEB_INTERVAL: Duration = Duration::from_millis(500);
const WEB_HANGING: usize = 2;
/// Cluster `stalled`: `STALLED` hanging nodes probed every 10 s with a 9 s timeout, so that
/// about 180 probes are always waiting on a silent connection. (Probing them every 0.5 s
/// would be 400 probes a second. Under TCG a probe costs the debug-built daemon several ms
/// of the guest's one CPU: with 240 failing nodes every 0.5 s, measured, the rounds
/// stretched to 1.6 to 2 s and the healthy nodes' probes timed out.)
const STALLED: usize = 200;
const STALLED_INTERVAL: Duration = Duration::from_secs(10);
/// `stalled`'s timeout in the first configuration file, and in the second.
const STALLED_TIMEOUTS: [&str; 2] = ["9", "8"];
/// Cluster `mixed`: nodes that refuse the connection and nodes that accept and reset it,
/// probed every 4 s with a 1 s timeout.
const REFUSING: usize = 10;
const RESETTING: usize = 10;
/// Healthy nodes (real servers rs1, rs2 of cluster `web`).
const HEALTHY: usize = 2;
const HANGING: usize = WEB_HANGING + STALLED;
/// Every probed node.
const NODES: usize = HANGING + REFUSING + RESETTING + HEALTHY;
/// Hanging nodes the second configuration file drops (from cluster `stalled`).
const DROPPED: usize = 10;
/// Probe rounds of the run.
const ROUNDS: usize = 110;
const RELOAD_EVERY: usize = 20;
const METRICS_EVERY: usize = 10;
/// The windows compared: rounds 20..40 (`stalled` has started every probe by round 20, its
/// first interval) and the last 20.
const EARLY: std::ops::Range<usize> = 20..40;
const WINDOW: usize = 20;
/// Connections of the test's own to the API at one time, at most (a read, a scrape).
const API_SLACK: usize = 4;
/// Probes that start or end between the listing of the daemon's descriptors and the read
/// of `/proc/net/tcp` (a descriptor listed, its connection gone by then).
const LISTING_SLACK: usize = 4;
/// Threads beyond the idle daemon's: tokio's blocking pool (override files, reloads).
const THREAD_SLACK: usize = 8;
/// The stated memory bounds: resident memory at most `RSS_PEAK_MIB` at any time, and the
/// late median at most `RSS_GROWTH_MIB` above the early one.
const RSS_PEAK_MIB: usize = 64;
const RSS_GROWTH_MIB: usize = 4;

const HANG_PORT: u16 = 9001;
const REFUSE_PORT: u16 = 9002;
const RESET_PORT: u16 = 9003;
const FARM_NET: &str = "10.48.0.0/12";
const API: &str = "127.0.0.1:9292";

fn hanging(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 48, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn refusing(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 49, 0, (i + 1) as u8)
}

fn resetting(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 50, 0, (i + 1) as u8)
}

/// What the farm's endpoints saw.
#[derive(Default)]
struct FarmStats {
    /// Connections to the hanging endpoint accepted so far, open now, open at most.
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak_open: AtomicUsize,
    /// Connections the resetting endpoint reset.
    resets: AtomicUsize,
}

impl FarmStats {
    fn opened(&self) {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_open.fetch_max(open, Ordering::SeqCst);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The failing endpoints: a namespace linked to the director, the addresses of `FARM_NET`
/// local there, an endpoint on `HANG_PORT` that reads the request and never answers, one
/// on `RESET_PORT` that resets every connection, nothing on `REFUSE_PORT`.
struct Farm {
    netns: String,
    stats: Arc<FarmStats>,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl Farm {
    fn start() -> Farm {
        let netns = format!("bbfarm{}", std::process::id());
        sh(&format!(
            "ip -batch - <<'EOF'\n\
             netns add {netns}\n\
             link add fa0 type veth peer name eth0 netns {netns}\n\
             addr add 198.18.0.1/30 dev fa0\n\
             link set fa0 up\n\
             route add {FARM_NET} via 198.18.0.2\n\
             EOF\n\
             ip -n {netns} -batch - <<'EOF'\n\
             link set lo up\n\
             addr add 198.18.0.2/30 dev eth0\n\
             link set eth0 up\n\
             route add local {FARM_NET} dev lo\n\
             EOF"
        ));
        let stats = Arc::new(FarmStats::default());
        let stop = Arc::new(Notify::new());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (netns, stats, stop) = (netns.clone(), stats.clone(), stop.clone());
            daemon_bed::spawn_in_netns(netns, move || async move {
                let bind = |port| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port));
                let (hang, reset) = match (bind(HANG_PORT).await, bind(RESET_PORT).await) {
                    (Ok(h), Ok(r)) => (h, r),
                    (h, r) => {
                        let _ = ready_tx.send(Err(format!("{:?} {:?}", h.err(), r.err())));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = serve_hanging(hang, stats.clone()) => {}
                    _ = serve_resetting(reset, stats) => {}
                    _ = stop.notified() => {}
                }
            })
        };
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            other => panic!("the farm's endpoints did not start: {other:?}"),
        }
        Farm {
            netns,
            stats,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = testbed::sh_status(&format!("ip netns del {}", self.netns));
    }
}

async fn serve_hanging(listener: TcpListener, stats: Arc<FarmStats>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        stats.opened();
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            stats.closed();
        });
    }
}

async fn serve_resetting(listener: TcpListener, stats: Arc<FarmStats>) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_zero_linger();
            drop(stream);
            stats.resets.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Which configuration file: the first, the second (reloads alternate them), or the last,
/// which keeps only the healthy nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    First,
    Second,
    HealthyOnly,
}

fn cluster(name: &str, mark: u32, probes: &str, extra: &str, nodes: &[(Ipv4Addr, u16)]) -> String {
    let nodes: String = nodes
        .iter()
        .map(|(a, p)| format!("      - {{address: {a}, port: {p}, path: {HEALTH_PATH}}}\n"))
        .collect();
    format!(
        "  - cluster_name: {name}\n    fwmark: {mark}\n    scheduler: wrr\n    {probes}\n    ramp_up_time: 0\n{extra}    nodes:\n{nodes}"
    )
}

/// `web` (fwmark 7, the VIP): rs1, rs2 and the first hanging nodes; `stalled` (8): the
/// other hanging nodes; `mixed` (9): the refusing and resetting nodes.
fn config(plane: &DataPlane, dir: &Path, variant: Variant) -> String {
    let healthy: Vec<(Ipv4Addr, u16)> = ["rs1", "rs2"]
        .iter()
        .map(|n| (plane.server(n).addr(), HEALTH_PORT))
        .collect();
    let hang = |r: std::ops::Range<usize>| r.map(|i| (hanging(i), HANG_PORT)).collect::<Vec<_>>();
    let vip = format!(
        "    vips: [{{address: {}, port: {SERVICE_PORT}}}]\n",
        plane.vip()
    );
    let web_probes = "check_interval: 0.5\n    health: {timeout: 0.45, fall: 3}";
    let mut text = format!("{}clusters:\n", daemon_bed::settings(dir, 5));
    if variant == Variant::HealthyOnly {
        text.push_str(&cluster("web", 7, web_probes, &vip, &healthy));
        return text;
    }
    let web: Vec<_> = healthy
        .iter()
        .copied()
        .chain(hang(0..WEB_HANGING))
        .collect();
    text.push_str(&cluster("web", 7, web_probes, &vip, &web));
    let (timeout, last) = match variant {
        Variant::Second => (STALLED_TIMEOUTS[1], HANGING - DROPPED),
        _ => (STALLED_TIMEOUTS[0], HANGING),
    };
    let stalled_probes = format!(
        "check_interval: {}\n    health: {{timeout: {timeout}}}",
        STALLED_INTERVAL.as_secs()
    );
    text.push_str(&cluster(
        "stalled",
        8,
        &stalled_probes,
        "",
        &hang(WEB_HANGING..last),
    ));
    let mixed: Vec<_> = (0..REFUSING)
        .map(|i| (refusing(i), REFUSE_PORT))
        .chain((0..RESETTING).map(|i| (resetting(i), RESET_PORT)))
        .collect();
    text.push_str(&cluster(
        "mixed",
        9,
        "check_interval: 4\n    health: {timeout: 1}",
        "",
        &mixed,
    ));
    text
}

/// The weights of fwmark service `mark`'s destinations, from `/proc/net/ip_vs` of this
/// thread's namespace (reading a file costs no process, which is dear under TCG).
fn ipvs_weights(mark: u32) -> BTreeMap<Ipv4Addr, u32> {
    let text = std::fs::read_to_string("/proc/thread-self/net/ip_vs").unwrap_or_default();
    weights_in(&text, mark)
}

/// The weights of fwmark service `mark`'s destinations in a `/proc/net/ip_vs` text.
fn weights_in(text: &str, mark: u32) -> BTreeMap<Ipv4Addr, u32> {
    let head = format!("FWM  {mark:08X} ");
    text.lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| l.starts_with("  ->"))
        .filter_map(|l| {
            let mut fields = l.split_whitespace().skip(1);
            let (addr, _forward, weight) = (fields.next()?, fields.next()?, fields.next()?);
            let hex = addr.split(':').next()?;
            Some((
                Ipv4Addr::from(u32::from_str_radix(hex, 16).ok()?),
                weight.parse().ok()?,
            ))
        })
        .collect()
}

/// The daemon's descriptors, listed once.
struct Descriptors {
    /// How many.
    count: usize,
    /// Its TCP connections to the farm's hanging endpoint, by farm address: the sockets
    /// among its descriptors that `/proc/net/tcp` of this thread's namespace shows with that
    /// remote port. These are its probes in flight.
    held: BTreeMap<Ipv4Addr, usize>,
    /// What every descriptor refers to (for failure messages).
    targets: Vec<String>,
}

fn descriptors(pid: u32) -> Descriptors {
    let targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|l| l.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let inodes: BTreeSet<u64> = targets
        .iter()
        .filter_map(|l| l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
        .collect();
    let text = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default();
    Descriptors {
        count: targets.len(),
        held: held_in(&text, HANG_PORT, &inodes),
        targets,
    }
}

/// The same, from a `/proc/net/tcp` text: the sockets with remote port `port` whose inode
/// is one of `inodes`. A socket is counted once even if the table lists it twice (the
/// kernel reads it in pages while sockets come and go).
fn held_in(text: &str, port: u16, inodes: &BTreeSet<u64>) -> BTreeMap<Ipv4Addr, usize> {
    let mut sockets: BTreeMap<u64, Ipv4Addr> = BTreeMap::new();
    for line in text.lines().skip(1) {
        // sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode.
        let mut fields = line.split_whitespace().skip(2);
        let (Some(remote), Some(state)) = (fields.next(), fields.next()) else {
            continue;
        };
        // TIME_WAIT (most of the table here): no process holds it.
        if state == "06" {
            continue;
        }
        let Some(inode) = fields.nth(5) else {
            continue;
        };
        let Some((addr, p)) = remote.split_once(':') else {
            continue;
        };
        let (Ok(addr), Ok(p), Ok(inode)) = (
            u32::from_str_radix(addr, 16),
            u16::from_str_radix(p, 16),
            inode.parse::<u64>(),
        ) else {
            continue;
        };
        if p == port && inodes.contains(&inode) {
            // The kernel prints the address as the host-order view of network-order bytes.
            sockets.insert(inode, Ipv4Addr::from(addr.to_le_bytes()));
        }
    }
    let mut held = BTreeMap::new();
    for addr in sockets.into_values() {
        *held.entry(addr).or_default() += 1;
    }
    held
}

/// From a `/metrics` scrape: failed probes by reason, and probes in all, over every target.
fn probe_totals(metrics: &str) -> (BTreeMap<String, u64>, u64) {
    let value = |l: &str| -> u64 {
        l.rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let mut failures = BTreeMap::new();
    let mut probes = 0;
    for line in metrics.lines() {
        if line.starts_with("bigbro_probe_failures_total{") {
            let reason = line
                .split_once("reason=\"")
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(r, _)| r.to_string())
                .unwrap_or_default();
            *failures.entry(reason).or_default() += value(line);
        } else if line.starts_with("bigbro_probe_duration_seconds_count{") {
            probes += value(line);
        }
    }
    (failures, probes)
}

/// The CPU time process `pid` has used (user and system), from `/proc/PID/stat`, in
/// seconds of 100 clock ticks.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// One reading of the daemon after a probe round.
#[derive(Clone, Copy, Debug)]
struct Sample {
    round: usize,
    fds: usize,
    threads: usize,
    rss_kib: usize,
    /// The daemon's connections to hanging endpoints, open (probes in flight).
    in_flight: usize,
    /// Its other descriptors: `fds - in_flight`, whatever the configuration of the moment.
    others: usize,
}

fn median(v: impl Iterator<Item = usize>) -> usize {
    let mut v: Vec<usize> = v.collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// A GET to the daemon's API: the status and body, or why there is none.
fn get(rt: &tokio::runtime::Runtime, path: &str) -> (u16, String) {
    match rt.block_on(http_get(API.parse().unwrap(), path)) {
        Ok(r) => (r.status, r.body),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

kernel_test! {
    fn the_daemon_keeps_descriptors_threads_and_memory_flat_over_110_rounds_of_failing_probes() {
        let started = Instant::now();
        let plane = DataPlane::new(HEALTHY);
        let farm = Farm::start();
        let rt = daemon_bed::runtime();
        let dir = tempfile::tempdir().unwrap();
        let cfg = daemon_bed::ConfigFile::new(&config(&plane, dir.path(), Variant::First));
        let mut d = DaemonProcess::start(&cfg.path, &dir.path().join("daemon.log"));
        d.wait_log("HTTP API listening", 1);
        let pid = d.child.id();
        // The idle daemon (no cluster running) after its first pass: the baseline.
        poll(Duration::from_secs(30), "the daemon's first pass", || {
            get(&rt, "/api/v1/daemon").1.contains("\"at_unix\"").then_some(())
        });
        let (base_fds, base_threads, base_rss) = usage(pid);

        for c in ["web", "stalled", "mixed"] {
            let (code, out, err) = testbed::sh_status(&format!(
                "curl -s -m 30 -w '\\n%{{http_code}}' -X PUT http://{API}/cluster/{c}"
            ));
            assert!(
                code == 0 && out.trim_end().ends_with("200"),
                "PUT /cluster/{c}: curl exit {code}: {out}{err}\nlog:\n{}",
                d.log()
            );
        }
        let (rs1, rs2) = (plane.server("rs1"), plane.server("rs2"));
        let healthy_at_full = |w: &BTreeMap<Ipv4Addr, u32>| {
            w.get(&rs1.addr()) == Some(&100) && w.get(&rs2.addr()) == Some(&100)
        };
        poll(Duration::from_secs(30), "rs1 and rs2 at weight 100", || {
            healthy_at_full(&ipvs_weights(7)).then_some(())
        });

        // The run: one sample per probe round of the daemon's (its probe reaching rs1).
        let rounds = || rs1.health_requests().len();
        let first_round = rounds();
        let run_started = Instant::now();
        let setup_took = started.elapsed();
        let cpu0 = cpu_seconds(pid);
        let mut samples: Vec<Sample> = Vec::new();
        let (mut reloads, mut scrapes, mut reads) = (0usize, 0usize, 0usize);
        let mut last_metrics = String::new();
        let mut seen = first_round;
        while seen - first_round < ROUNDS {
            seen = poll(Duration::from_secs(10), "the daemon's next probe of rs1", || {
                let now = rounds();
                (now > seen).then_some(now)
            });
            let round = seen - first_round;
            let (_, threads, rss_kib) = usage(pid);
            let Descriptors { count, held, targets } = descriptors(pid);
            let in_flight: usize = held.values().sum();
            let (fds, others) = (count, count.saturating_sub(in_flight));
            samples.push(Sample { round, fds, threads, rss_kib, in_flight, others });
            if let Some((addr, n)) = held.iter().find(|(_, n)| **n > 1) {
                let hex = format!("{:08X}", u32::from_le_bytes(addr.octets()));
                let tcp = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default();
                let lines: Vec<&str> = tcp.lines().filter(|l| l.contains(&hex)).collect();
                panic!(
                    "round {round}: the daemon holds {n} connections at once to the hanging endpoint {addr}:\n{}",
                    lines.join("\n")
                );
            }
            let weights = ipvs_weights(7);
            assert!(
                healthy_at_full(&weights),
                "round {round}: the healthy nodes lost their weight: {weights:?}\nlog:\n{}",
                d.log()
            );
            assert!(
                count <= base_fds + in_flight + (NODES - HANGING) + API_SLACK + LISTING_SLACK,
                "round {round}: {count} descriptors: more than one per probe in flight ({in_flight} hanging, at most {} others) above the idle daemon's {base_fds}: {targets:?}",
                NODES - HANGING
            );
            assert!(
                threads <= base_threads + THREAD_SLACK,
                "round {round}: {threads} threads (idle daemon: {base_threads})"
            );
            assert!(
                rss_kib <= RSS_PEAK_MIB << 10,
                "round {round}: resident memory {rss_kib} KiB, over {RSS_PEAK_MIB} MiB"
            );
            let (status, body) = get(&rt, "/api/v1/clusters/web");
            assert_eq!(status, 200, "round {round}: {body}");
            reads += 1;
            if round % METRICS_EVERY == 0 {
                let (status, body) = get(&rt, "/metrics");
                assert_eq!(status, 200, "round {round}: /metrics");
                last_metrics = body;
                scrapes += 1;
            }
            if round % RELOAD_EVERY == 0 && round < ROUNDS {
                reloads += 1;
                let variant = if reloads % 2 == 1 { Variant::Second } else { Variant::First };
                cfg.write(&config(&plane, dir.path(), variant));
                d.signal(Signal::SIGHUP);
                d.wait_log("configuration reloaded", reloads);
            }
        }
        let run_took = run_started.elapsed();
        let daemon_cpu = cpu_seconds(pid) - cpu0;
        assert!(d.is_running(), "the daemon stopped:\n{}", d.log());

        // No growth: the late window's medians against the early window's.
        let window = |pick: fn(&Sample) -> usize, late: bool| {
            let picked: Vec<&Sample> = if late {
                samples[samples.len() - WINDOW..].iter().collect()
            } else {
                samples.iter().filter(|s| EARLY.contains(&s.round)).collect()
            };
            assert!(picked.len() >= WINDOW / 2, "too few samples in a window: {}", picked.len());
            median(picked.into_iter().map(pick))
        };
        let (early_fds, late_fds) = (window(|s| s.fds, false), window(|s| s.fds, true));
        let (early_others, late_others) = (window(|s| s.others, false), window(|s| s.others, true));
        let (early_threads, late_threads) = (window(|s| s.threads, false), window(|s| s.threads, true));
        let (early_rss, late_rss) = (window(|s| s.rss_kib, false), window(|s| s.rss_kib, true));
        let peak = |pick: fn(&Sample) -> usize| samples.iter().map(pick).max().unwrap();
        let (peak_fds, peak_threads, peak_rss) = (peak(|s| s.fds), peak(|s| s.threads), peak(|s| s.rss_kib));
        let figures = format!(
            "descriptors idle {base_fds}, median {early_fds} early / {late_fds} late, peak {peak_fds}; \
             other than probes in flight {early_others} / {late_others}, peak {}; \
             threads idle {base_threads}, {early_threads} / {late_threads}, peak {peak_threads}; \
             RSS idle {base_rss} KiB, {early_rss} / {late_rss} KiB, peak {peak_rss} KiB",
            peak(|s| s.others)
        );
        // Probes in flight follow the configuration of the moment (the two files differ);
        // every other descriptor must stay where it was.
        assert!(late_others <= early_others + API_SLACK, "descriptors grew: {figures}");
        assert!(late_threads <= early_threads + 1, "threads grew: {figures}");
        assert!(late_rss <= early_rss + (RSS_GROWTH_MIB << 10), "memory grew: {figures}");

        // What the probes did: every hanging node timed out about once a round (the
        // second file drops ten of them, and a reload restarts the changed cluster's
        // probes), refusing and resetting nodes failed fast, never two probes at once
        // to one hanging endpoint.
        let (failures, probes) = probe_totals(&last_metrics);
        let timeouts = failures.get("timeout").copied().unwrap_or(0) as f64;
        let scraped_at = (ROUNDS / METRICS_EVERY * METRICS_EVERY) as f64 * WEB_INTERVAL.as_secs_f64();
        let expected = WEB_HANGING as f64 * (scraped_at / WEB_INTERVAL.as_secs_f64() - 10.0)
            + (STALLED - DROPPED) as f64 * (scraped_at / STALLED_INTERVAL.as_secs_f64() - 2.0);
        assert!(
            timeouts >= expected,
            "{timeouts} timeouts in {scraped_at} s, fewer than {expected}: {failures:?}"
        );
        assert!(failures.get("refused").copied().unwrap_or(0) > 0, "{failures:?}");
        let stats = &farm.stats;
        assert!(stats.resets.load(Ordering::SeqCst) > 0);

        // The last reload removes every failing node: all their descriptors, connections
        // and threads are given back.
        cfg.write(&config(&plane, dir.path(), Variant::HealthyOnly));
        d.signal(Signal::SIGHUP);
        d.wait_log("configuration reloaded", reloads + 1);
        let released = Instant::now();
        // Its pass deletes the removed clusters' services right after it logs the reload.
        let gone = || ipvs_weights(8).is_empty() && ipvs_weights(9).is_empty();
        let after = poll(
            Duration::from_secs(20),
            "the failing nodes' resources released and their services deleted",
            || {
                let u = usage(pid);
                (u.0 <= base_fds + HEALTHY + API_SLACK
                    && stats.open.load(Ordering::SeqCst) == 0
                    && gone())
                .then_some(u)
            },
        );
        let released_after = released.elapsed();
        assert!(after.1 <= base_threads + THREAD_SLACK, "{} threads after the run", after.1);
        assert!(healthy_at_full(&ipvs_weights(7)), "{:?}", ipvs_weights(7));

        let status = d.terminate();
        assert!(status.success(), "exit status {status}");
        let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
        assert!(!log.contains("panicked"), "{log}");
        eprintln!(
            "RESOURCES nodes={NODES} (hanging={HANGING} refusing={REFUSING} resetting={RESETTING} healthy={HEALTHY}) \
             rounds={} in {run_took:.1?} (setup {setup_took:.1?}) samples={} daemon_cpu={daemon_cpu:.1}s \
             reloads={} api_reads={reads} metrics_scrapes={scrapes} \
             probes_by_last_scrape={probes} failures={failures:?} \
             hanging_connections={} peak_open={} peak_in_flight={} resets={} \
             {figures}; after removing the failing nodes ({released_after:.1?}): descriptors {}, threads {}, RSS {} KiB; \
             RSS every 10th sample (KiB): {:?}; log {} KiB; test took {:.1?}",
            seen - first_round,
            samples.len(),
            reloads + 1,
            stats.accepted.load(Ordering::SeqCst),
            stats.peak_open.load(Ordering::SeqCst),
            peak(|s| s.in_flight),
            stats.resets.load(Ordering::SeqCst),
            after.0,
            after.1,
            after.2,
            samples.iter().step_by(10).map(|s| s.rss_kib).collect::<Vec<_>>(),
            log.len() >> 10,
            started.elapsed(),
        );
    }
}

#[test]
fn proc_ip_vs_and_metrics_lines_are_read() {
    let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
                Prot LocalAddress:Port Scheduler Flags\n\
                \x20 -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
                FWM  00000007 wrr \n\
                \x20 -> CB007102:0000      Tunnel  100    0          0         \n\
                \x20 -> 0A300001:0000      Tunnel  0      0          0         \n\
                FWM  00000017 wrr \n\
                \x20 -> 0A300015:0000      Tunnel  7      0          0         \n";
    let w = weights_in(text, 7);
    assert_eq!(
        w.into_iter().collect::<Vec<_>>(),
        [
            (Ipv4Addr::new(10, 48, 0, 1), 0),
            (Ipv4Addr::new(203, 0, 113, 2), 100)
        ]
    );
    assert_eq!(weights_in(text, 0x17).len(), 1);
    assert!(weights_in(text, 8).is_empty());

    let metrics = "# TYPE bigbro_probe_failures_total counter\n\
        bigbro_probe_failures_total{target=\"a\",address=\"10.48.0.1\",port=\"9001\",reason=\"timeout\"} 12\n\
        bigbro_probe_failures_total{target=\"b\",address=\"10.48.0.2\",port=\"9001\",reason=\"timeout\"} 3\n\
        bigbro_probe_failures_total{target=\"c\",address=\"10.49.0.1\",port=\"9002\",reason=\"refused\"} 4\n\
        bigbro_probe_duration_seconds_count{target=\"a\",address=\"10.48.0.1\",port=\"9001\"} 12\n\
        bigbro_probe_duration_seconds_count{target=\"c\",address=\"10.49.0.1\",port=\"9002\"} 5\n\
        bigbro_probe_duration_seconds_sum{target=\"c\",address=\"10.49.0.1\",port=\"9002\"} 0.5\n";
    let (failures, probes) = probe_totals(metrics);
    assert_eq!(failures.get("timeout"), Some(&15));
    assert_eq!(failures.get("refused"), Some(&4));
    assert_eq!(probes, 17);
    assert_eq!(median([3, 1, 2].into_iter()), 2);

    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
        \x20  0: 0100007F:2454 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
        \x20  1: 010012C6:A000 0100300A:2329 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
        \x20  2: 010012C6:A001 0100300A:2329 06 00000000:00000000 03:00000000 00000000     0        0 0 3\n\
        \x20  3: 010012C6:A002 0200300A:2329 02 00000000:00000000 00:00000000 00000000     0        0 3 1\n\
        \x20  4: 010012C6:A003 0200300A:2329 08 00000000:00000000 00:00000000 00000000     0        0 4 1\n\
        \x20  5: 010012C6:A000 0100300A:2329 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
        \x20  6: 010012C6:A005 0400300A:2329 01 00000000:00000000 00:00000000 00000000     0        0 6 1\n\
        \x20  7: 010012C6:A004 0300300A:232A 01 00000000:00000000 00:00000000 00000000     0        0 5 1\n";
    let daemon: BTreeSet<u64> = [2, 3, 4, 5, 7].into();
    let held = held_in(tcp, 9001, &daemon);
    assert_eq!(
        held.into_iter().collect::<Vec<_>>(),
        [
            (Ipv4Addr::new(10, 48, 0, 1), 1),
            (Ipv4Addr::new(10, 48, 0, 2), 2)
        ]
    );
}
