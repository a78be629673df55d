//! The soak with faults (docs/RELIABILITY.md), in the kernel test bed: ONE kernel test, the real
//! `bigbro daemon` binary with its HTTP API, four IPIP real servers, and one client sending
//! requests through the VIP, one at a time and each timed, for the whole run: from before
//! the first fault to after the last, through every phase below. The issue's counts,
//! exactly:
//!
//! 1. 10 daemon restarts (SIGTERM, start again; each awaited by its log lines, never by a
//!    sleep);
//! 2. 10 SIGHUP reloads: 5 with broken files, each broken a different way (YAML syntax, a
//!    wrong type, a duplicate key, an unknown scheduler, the file gone), and 5 valid ones,
//!    each changing something observable (the scheduler, in IPVS; a cluster added, then
//!    removed, and cluster `big` added, in the API; the health path, in the real servers'
//!    request logs);
//! 3. hand edits of owned state (`ipvsadm -D` of the owned service, the nft table deleted,
//!    `ipvsadm -e`, `ipvsadm -d`, `ipvsadm -C`), next to foreign state added by hand (a
//!    fwmark service and an nft table before the daemon first starts, a TCP service while
//!    it runs);
//! 4. a `kill -9` in the middle of a 600-destination apply, proven to land inside it by the
//!    kernel's count of the service's destinations at the kill;
//!
//! and two backends whose health flaps between 100 and 0 every 1.5 s throughout.
//!
//! Asserted: no client request fails unless it overlapped the window between a hand edit
//! that removed the service, a destination or the mark rule, and its repair (attribution by
//! time; no backend is ever really down here, flapping only changes health, so no request
//! is excused for that); every owned service is back to its desired state within one
//! anti-entropy interval plus `PASS_ALLOWANCE` of a hand edit (by the daemon's own log line
//! for the repairing operation), and within one interval plus `LARGE_PASS_ALLOWANCE` of the
//! restarted daemon's adoption of the service the kill left half applied; foreign state is byte for byte what was added by hand after
//! every fault and at the end; every broken reload is refused with its own error and
//! changes nothing, every valid one takes effect; no daemon log holds a panic. The test
//! prints its counts (`SOAK ...` lines); docs/RELIABILITY.md section 4 quotes them.
//!
//! The test declares a 480 s time limit (the test bed's default is 120 s); the client is
//! bounded too (`CLIENT_MAX_REQUESTS`, `CLIENT_MAX_TIME`) and must not have hit its bound
//! when the run ends, so it covered the whole run.
//!
//! Like every kernel test it runs only inside the guest and must never change the host's
//! network state; it never waits by sleeping where an event (a log line, the API, the
//! kernel's own listing) can be awaited.

use crate::daemon_bed;
use crate::testbed;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemon_bed::{poll, settings, unix_now, ConfigFile, DaemonProcess};
use nix::sys::signal::Signal;
use testbed::dataplane::{http_get, DataPlane, Health, HEALTH_PORT, SERVICE_PORT};
use testbed::{kernel_test, sh, sh_status};

/// The issue's counts.
const RESTARTS: usize = 10;
const RELOADS: usize = 10;
/// The anti-entropy interval of the run.
const ANTI_ENTROPY: Duration = Duration::from_secs(3);
/// What one reconcile pass of a few operations may take under TCG on a loaded host, on top
/// of the interval: "within one anti-entropy interval" means a hand edit's repair logged at
/// most ANTI_ENTROPY + PASS_ALLOWANCE after the edit.
const PASS_ALLOWANCE: Duration = Duration::from_millis(1500);
/// The same for the pass after the kill -9, which adopts a 600-node cluster and adds the
/// ~400 destinations the killed daemon did not: it took 2.4 to 5.3 s from the adoption
/// under TCG, in a debug build, on a host loaded by other builds (load 6 to 7 on 2 cores).
const LARGE_PASS_ALLOWANCE: Duration = Duration::from_secs(4);
/// The destinations of cluster `big`, whose start is the large apply `kill -9` lands in.
const BIG: usize = 600;
/// The client's own bounds: it stops by itself after so many requests or so long.
const CLIENT_MAX_REQUESTS: usize = 200_000;
const CLIENT_MAX_TIME: Duration = Duration::from_secs(420);
/// The backends whose health flaps, and how often one of them flips.
const FLAPPING: [&str; 2] = ["rs3", "rs4"];
const FLAP_PERIOD: Duration = Duration::from_millis(1500);

fn ip(plane: &DataPlane, name: &str) -> IpAddr {
    IpAddr::V4(plane.server(name).addr())
}

/// One client request through the VIP: when it ran and who answered (or why it failed).
#[derive(Clone, Debug)]
struct Request {
    start: Instant,
    end: Instant,
    outcome: Result<String, String>,
}

/// Requests to VIP:80 from the client namespace, one after the other, until stopped or
/// until its bounds.
struct Client {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(plane: &DataPlane) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let netns = plane.client().netns().to_string();
        let vip: SocketAddr = plane.vip_addr(SERVICE_PORT);
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            daemon_bed::spawn_in_netns(netns, move || async move {
                let began = Instant::now();
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst)
                    && sent < CLIENT_MAX_REQUESTS
                    && began.elapsed() < CLIENT_MAX_TIME
                {
                    let start = Instant::now();
                    let outcome = match http_get(vip, "/").await {
                        Ok(r) if r.status == 200 => Ok(r.body.trim().to_string()),
                        Ok(r) => Err(format!("status {}", r.status)),
                        Err(e) => Err(e),
                    };
                    let end = Instant::now();
                    log.lock().unwrap().push(Request {
                        start,
                        end,
                        outcome,
                    });
                    sent += 1;
                }
            })
        };
        Client {
            stop,
            log,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Waits until `n` more requests have completed.
    fn wait(&self, n: usize) {
        let target = self.count() + n;
        poll(Duration::from_secs(60), "client requests", || {
            (self.count() >= target).then_some(())
        });
    }

    /// Stops it; panics if it had already stopped at its bounds (then it did not cover
    /// the whole run).
    fn stop(mut self) -> Vec<Request> {
        let thread = self.thread.take().expect("client thread");
        assert!(
            !thread.is_finished(),
            "the client stopped at its bounds ({CLIENT_MAX_REQUESTS} requests, \
             {CLIENT_MAX_TIME:?}) before the run ended"
        );
        self.stop.store(true, Ordering::SeqCst);
        thread.join().expect("client thread");
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Failed requests that overlap none of the `excused` windows, as lines for a message.
fn unexcused(requests: &[Request], excused: &[(Instant, Instant)]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.outcome.is_err())
        .filter(|r| !excused.iter().any(|(a, b)| r.end >= *a && r.start <= *b))
        .map(|r| format!("{:?}", r.outcome))
        .collect()
}

/// Flips the health of the `FLAPPING` backends between 100 and 0, one every `FLAP_PERIOD`
/// (the fault's own pace), until stopped; then leaves them healthy.
struct Flapper {
    stop: Arc<AtomicBool>,
    flips: Arc<Mutex<usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flapper {
    fn start(plane: Arc<DataPlane>) -> Flapper {
        let stop = Arc::new(AtomicBool::new(false));
        let flips = Arc::new(Mutex::new(0));
        let thread = {
            let (stop, flips) = (stop.clone(), flips.clone());
            std::thread::spawn(move || {
                let mut up = [true; FLAPPING.len()];
                let mut next = 0;
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(FLAP_PERIOD);
                    up[next] = !up[next];
                    let health = if up[next] {
                        Health::litmus(100)
                    } else {
                        Health::down()
                    };
                    plane.server(FLAPPING[next]).set_health(health);
                    *flips.lock().unwrap() += 1;
                    next = (next + 1) % FLAPPING.len();
                }
                for name in FLAPPING {
                    plane.server(name).set_health(Health::litmus(100));
                }
            })
        };
        Flapper {
            stop,
            flips,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let n = *self.flips.lock().unwrap();
        n
    }
}

impl Drop for Flapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the valid reloads change, so that each change shows: `web`'s scheduler (in IPVS),
/// its health path (in the real servers' request logs) and whether clusters `extra` and
/// `big` are configured (in the API).
#[derive(Clone, Copy, Debug)]
struct Shape {
    scheduler: &'static str,
    health_path: &'static str,
    extra: bool,
    big: bool,
}

const FIRST_SHAPE: Shape = Shape {
    scheduler: "wrr",
    health_path: "/web/status",
    extra: false,
    big: false,
};

/// The configuration: `web` (fwmark 7, the VIP on port 80, rs1 to rs4) and, as `shape`
/// says, `extra` (fwmark 9, never started) and `big` (fwmark 8, 600 nodes nobody answers
/// for: no route, so each probe fails at once and nothing leaves the namespace; started
/// only by the kill phase). `big` comes last, by a reload: reading 600 nodes costs the
/// daemon seconds under TCG, which the restarts need not pay.
fn config(plane: &DataPlane, dir: &Path, shape: Shape) -> String {
    let nodes: String = ["rs1", "rs2", "rs3", "rs4"]
        .iter()
        .map(|n| {
            format!(
                "      - {{address: {}, port: {HEALTH_PORT}, path: {}}}\n",
                plane.server(n).addr(),
                shape.health_path
            )
        })
        .collect();
    let big = if shape.big {
        let nodes: String = (0..BIG)
            .map(|i| {
                format!(
                    "      - {{address: 10.200.{}.{}, port: 80}}\n",
                    i / 250,
                    i % 250 + 1
                )
            })
            .collect();
        format!(
            "  - cluster_name: big\n    fwmark: 8\n    scheduler: rr\n    check_interval: 5\n    health: {{kind: tcp, timeout: 0.5}}\n    vips: [{{address: 192.0.2.20, port: 80}}]\n    nodes:\n{nodes}"
        )
    } else {
        String::new()
    };
    let extra = if shape.extra {
        format!(
            "  - cluster_name: extra\n    fwmark: 9\n    scheduler: rr\n    vips: [{{address: 192.0.2.30, port: 80}}]\n    nodes:\n      - {{address: {}, port: {HEALTH_PORT}, path: /extra/status}}\n",
            plane.server("rs1").addr()
        )
    } else {
        String::new()
    };
    // web's traffic reaches IPVS through the fwmark routing of `route_fwmark_locally`, not
    // an address of bigbro's (`vip_mode: none`): the valid reloads change its scheduler,
    // and while the kernel swaps it IPVS answers a new connection with ICMP port
    // unreachable, which a VIP that is a local address lets out as "connection refused"
    // (see `sighup_with_a_new_scheduler_changes_it_in_the_kernel` in kernel_daemon.rs).
    // big's and extra's vips are bigbro's addresses, through every fault.
    format!(
        "{settings}clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: {scheduler}\n    check_interval: 1\n    health: {{timeout: 0.9}}\n    ramp_up_time: 0\n    vip_mode: none\n    vips: [{{address: {vip}, port: {SERVICE_PORT}}}]\n    nodes:\n{nodes}{extra}{big}",
        settings = settings(dir, ANTI_ENTROPY.as_secs() as u32),
        scheduler = shape.scheduler,
        vip = plane.vip(),
    )
}

/// Starts the real daemon (log `daemonN.log` in `dir`) and waits for its API.
fn start_daemon(cfg: &Path, dir: &Path, n: usize) -> DaemonProcess {
    let d = DaemonProcess::start(cfg, &dir.join(format!("daemon{n}.log")));
    d.wait_log("HTTP API listening", 1);
    d
}

/// An API call to the daemon on 127.0.0.1:9292: (status code, body).
fn api(method: &str, path: &str) -> (u16, String) {
    let out = sh(&format!(
        "curl -s -m 20 -X {method} -w '\\n%{{http_code}}' http://127.0.0.1:9292{path}"
    ));
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (code.parse().unwrap_or(0), body.to_string())
}

/// How many anti-entropy passes the daemon has run (its metrics).
fn anti_entropy_passes() -> u64 {
    let (code, body) = api("GET", "/metrics");
    assert_eq!(code, 200, "GET /metrics: {body}");
    body.lines()
        .find_map(|l| l.strip_prefix("bigbro_reconcile_passes_total{trigger=\"anti_entropy\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no anti-entropy pass count in the metrics:\n{body}"))
}

/// Waits until the daemon has run two more anti-entropy passes (so at least one whole
/// pass started after this call), asking its API every 200 ms.
fn two_anti_entropy_passes() {
    let from = anti_entropy_passes();
    let deadline = Instant::now() + ANTI_ENTROPY * 3 + Duration::from_secs(10);
    while anti_entropy_passes() < from + 2 {
        assert!(
            Instant::now() < deadline,
            "no two anti-entropy passes in time"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every daemon log in `dir`: none may hold a panic.
fn assert_no_panics(dir: &Path) -> usize {
    let mut logs = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("panicked"), "{}:\n{text}", path.display());
            logs += 1;
        }
    }
    logs
}

/// Unix seconds of a log line's leading UTC timestamp (`2026-11-21T07:01:18.540785Z`).
fn log_time(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + sec)
}

/// When the log shows every one of `lines` (substrings) logged after `since` (unix
/// seconds): the latest of their first times after it. None while one is missing.
fn all_logged_after(log: &str, since: f64, lines: &[String]) -> Option<f64> {
    lines.iter().try_fold(since, |latest, wanted| {
        let first = log
            .lines()
            .filter(|l| l.contains(wanted.as_str()))
            .filter_map(log_time)
            .find(|t| *t > since)?;
        Some(latest.max(first))
    })
}

/// The last time the log shows `text` after `since`.
fn last_logged_after(log: &str, since: f64, text: &str) -> Option<f64> {
    log.lines()
        .filter(|l| l.contains(text))
        .filter_map(log_time)
        .filter(|t| *t > since)
        .reduce(f64::max)
}

/// The lines of `ipvsadm -S -n` for fwmark `mark`.
fn service_lines(mark: u32) -> String {
    let (service, dest) = (format!("-A -f {mark} "), format!("-a -f {mark} "));
    sh("ipvsadm -S -n")
        .lines()
        .filter(|l| l.starts_with(&service) || l.starts_with(&dest))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Whether `lines` (fwmark 7's) are `web`'s desired state: its service with `scheduler`,
/// rs1 and rs2 (always healthy) at 100, the flapping rs3 and rs4 at 0 or 100 as their
/// health last was, all IPIP, nothing else.
fn web_ok(plane: &DataPlane, lines: &str, scheduler: &str) -> bool {
    let dest = |name: &str, weights: &[u32]| {
        weights.iter().any(|w| {
            lines.contains(&format!(
                "-a -f 7 -r {}:0 -i -w {w} --tun-type ipip\n",
                ip(plane, name)
            ))
        })
    };
    lines.lines().count() == 5
        && lines.starts_with(&format!("-A -f 7 -s {scheduler}\n"))
        && dest("rs1", &[100])
        && dest("rs2", &[100])
        && FLAPPING.iter().all(|n| dest(n, &[0, 100]))
}

/// Whether IPVS lists FWM 8, and how many destinations it has, read from this thread's
/// network namespace without starting a process (`/proc/net` is the process's, which is
/// not the test's).
fn proc_fwm8() -> (bool, usize) {
    let text = std::fs::read_to_string("/proc/thread-self/net/ip_vs").unwrap_or_default();
    let mut lines = text.lines().skip_while(|l| !l.starts_with("FWM  00000008"));
    match lines.next() {
        Some(_) => (true, lines.take_while(|l| l.starts_with("  ->")).count()),
        None => (false, 0),
    }
}

/// The state added by hand that bigbro must never touch: IPVS services other than fwmark
/// 7 and 8 (`-S` lines), and the `foreign` nft table.
fn foreign() -> (String, String) {
    let ipvs: String = sh("ipvsadm -S -n")
        .lines()
        .filter(|l| {
            !["-A -f 7 ", "-a -f 7 ", "-A -f 8 ", "-a -f 8 "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    (ipvs, sh("nft list table ip foreign"))
}

const FOREIGN_FWMARK: &str = "ipvsadm -A -f 99 -s rr && ipvsadm -a -f 99 -r 198.51.100.99 -g -w 3";
const FOREIGN_TCP: &str = "ipvsadm -A -t 192.0.2.99:8080 -s wlc && ipvsadm -a -t 192.0.2.99:8080 -r 198.51.100.98:8080 -m -w 2";
const FOREIGN_NFT: &str = "nft add table ip foreign && nft add chain ip foreign input '{ type filter hook input priority 0; }' && nft add rule ip foreign input tcp dport 9 counter";

/// Everything the phases share: the data plane, the daemon and its files, the client and
/// the flapping backends, the foreign state expected, and what the run counted.
struct Soak {
    started: Instant,
    plane: Arc<DataPlane>,
    dir: tempfile::TempDir,
    cfg: ConfigFile,
    /// What the running configuration looks like.
    shape: Shape,
    daemon: Option<DaemonProcess>,
    /// Daemon processes started so far.
    starts: usize,
    client: Client,
    flapper: Flapper,
    /// bigbro's nft table as the daemon wrote it for `web`.
    rules: String,
    /// The foreign state as last added by hand: (IPVS lines, nft table).
    foreign: (String, String),
    foreign_checks: usize,
    /// Windows between a hand edit and its repair: failures inside are the edit's.
    excused: Vec<(Instant, Instant)>,
    /// Lines for the report: phases, reloads, repairs, the kill.
    report: Vec<String>,
}

impl Soak {
    /// Foreign state added by hand, then the daemon with `web` started and at 100
    /// everywhere, then the client and the flapping backends.
    fn begin() -> Soak {
        let started = Instant::now();
        let plane = Arc::new(DataPlane::new(4));
        plane.route_fwmark_locally(7);
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigFile::new(&config(&plane, dir.path(), FIRST_SHAPE));
        sh(&format!("{FOREIGN_FWMARK} && {FOREIGN_NFT}"));
        let foreign = foreign();
        assert!(foreign.0.contains("-A -f 99 -s rr"), "{foreign:?}");

        let daemon = start_daemon(&cfg.path, dir.path(), 0);
        assert_eq!(api("PUT", "/cluster/web"), (200, "OK".to_string()));
        poll(Duration::from_secs(30), "web at 100 everywhere", || {
            let lines = service_lines(7);
            (web_ok(&plane, &lines, "wrr") && !lines.contains(" -w 0 ")).then_some(())
        });
        let rules = sh("nft list table ip bigbro");
        let client = Client::start(&plane);
        client.wait(20);
        let flapper = Flapper::start(plane.clone());
        Soak {
            started,
            plane,
            dir,
            cfg,
            shape: FIRST_SHAPE,
            daemon: Some(daemon),
            starts: 1,
            client,
            flapper,
            rules,
            foreign,
            foreign_checks: 0,
            excused: Vec::new(),
            report: Vec::new(),
        }
    }

    fn d(&self) -> &DaemonProcess {
        self.daemon.as_ref().expect("a daemon runs")
    }

    /// Starts the next daemon process; waits for its API.
    fn start(&mut self) {
        self.daemon = Some(start_daemon(&self.cfg.path, self.dir.path(), self.starts));
        self.starts += 1;
    }

    fn config(&self, shape: Shape) -> String {
        config(&self.plane, self.dir.path(), shape)
    }

    /// Whether `web` is in its desired state in IPVS now.
    fn web_ok(&self) -> bool {
        web_ok(&self.plane, &service_lines(7), self.shape.scheduler)
    }

    fn assert_web_ok(&self, when: &str) {
        let lines = service_lines(7);
        assert!(
            web_ok(&self.plane, &lines, self.shape.scheduler),
            "{when}: web is not as wanted:\n{lines}\nlog:\n{}",
            self.d().log()
        );
    }

    fn check_foreign(&mut self, when: &str) {
        assert_eq!(foreign(), self.foreign, "{when}: foreign state touched");
        self.foreign_checks += 1;
    }

    /// Runs `phase` and reports its wall time and the requests sent meanwhile.
    fn phase(&mut self, name: &str, phase: fn(&mut Soak)) {
        let (began, sent) = (Instant::now(), self.client.count());
        phase(self);
        let line = format!(
            "phase {name}: {:.1} s, {} requests",
            began.elapsed().as_secs_f64(),
            self.client.count() - sent
        );
        eprintln!("{line}");
        self.report.push(line);
    }

    /// SIGTERM leaves IPVS as it is, requests flow while no daemon runs, and each new
    /// daemon adopts the running cluster with its weights.
    fn restarts(&mut self) {
        let mut times = Vec::new();
        for n in 1..=RESTARTS {
            let stopping = Instant::now();
            let status = self.daemon.take().expect("a daemon runs").terminate();
            let stopped_after = stopping.elapsed();
            assert!(status.success(), "restart {n}: exit status {status}");
            let stopped = service_lines(7);
            assert!(
                web_ok(&self.plane, &stopped, self.shape.scheduler),
                "restart {n}: SIGTERM left\n{stopped}"
            );
            self.client.wait(3);
            assert_eq!(
                service_lines(7),
                stopped,
                "restart {n}: IPVS changed with no daemon"
            );
            let starting = Instant::now();
            self.start();
            self.d()
                .wait_log("resuming previously running cluster web", 1);
            times.push(format!(
                "{:.1}+{:.1}",
                stopped_after.as_secs_f64(),
                starting.elapsed().as_secs_f64()
            ));
            self.client.wait(3);
            self.assert_web_ok(&format!("after restart {n}"));
            self.check_foreign(&format!("after restart {n}"));
        }
        self.report.push(format!(
            "restarts, seconds from SIGTERM to exit + from start to adoption: {times:?}"
        ));
    }

    /// SIGHUP reloads, alternately broken (each its own way: refused with its own error,
    /// nothing changed) and valid (each visible where it should be).
    fn reloads(&mut self) {
        type Breakage = (&'static str, &'static str, fn(&str) -> Option<String>);
        let broken: [Breakage; 5] = [
            ("YAML syntax", "invalid YAML", |t| {
                Some(t.replacen("fwmark: 7", "fwmark: [7", 1))
            }),
            ("wrong type", "\"seven\" is not an integer", |t| {
                Some(t.replacen("fwmark: 7", "fwmark: seven", 1))
            }),
            ("duplicate key", "duplicate key", |t| {
                Some(t.replacen("clusters:", "clusters: 5\nclusters:", 1))
            }),
            (
                "unknown scheduler",
                "\"nosuch\" is not an IPVS scheduler",
                |t| {
                    let at = t.find("scheduler: ")?;
                    let end = at + t[at..].find('\n')?;
                    Some(format!("{}scheduler: nosuch{}", &t[..at], &t[end..]))
                },
            ),
            ("file gone", "Could not find", |_| None),
        ];
        let wlc = Shape {
            scheduler: "wlc",
            ..FIRST_SHAPE
        };
        let valid: [(&str, Shape); 5] = [
            ("scheduler wrr -> wlc", wlc),
            ("cluster extra added", Shape { extra: true, ..wlc }),
            (
                "health path changed",
                Shape {
                    extra: true,
                    health_path: "/web/health",
                    ..wlc
                },
            ),
            (
                "cluster extra removed",
                Shape {
                    health_path: "/web/health",
                    ..wlc
                },
            ),
            (
                "cluster big added",
                Shape {
                    health_path: "/web/health",
                    big: true,
                    ..wlc
                },
            ),
        ];
        let (mut refused, mut applied) = (0, 0);
        for n in 0..RELOADS {
            if n % 2 == 0 {
                let (what, error, breaks) = broken[n / 2];
                let good = self.config(self.shape);
                match breaks(&good) {
                    Some(bad) => {
                        assert_ne!(bad, good, "{what}: nothing broken");
                        self.cfg.write(&bad);
                    }
                    None => std::fs::remove_file(&self.cfg.path).unwrap(),
                }
                self.d().signal(Signal::SIGHUP);
                refused += 1;
                self.d().wait_log("reload refused:", refused);
                let log = self.d().log();
                assert_eq!(
                    log.matches(error).count(),
                    1,
                    "{what}: not refused with {error:?}:\n{log}"
                );
                // Nothing changed: the same scheduler, every node, the steady ones at 100
                // (the flapping ones' weights move with their health meanwhile).
                self.assert_web_ok(&format!("{what}: after the refused reload"));
                // The running configuration is the file's again (no reload needed).
                self.cfg.write(&good);
                self.report.push(format!("reload {n}: refused, {what}"));
            } else {
                let (what, next) = valid[n / 2];
                self.cfg.write(&self.config(next));
                self.d().signal(Signal::SIGHUP);
                applied += 1;
                self.d().wait_log("configuration reloaded", applied);
                match what {
                    "cluster extra added" | "cluster big added" => {
                        let name = what.split(' ').nth(1).unwrap();
                        assert_eq!(
                            api("GET", &format!("/cluster/{name}/status")),
                            (200, "Running: false\nCombinedWeight: 0\n".to_string()),
                            "{what}"
                        );
                    }
                    "cluster extra removed" => {
                        assert_eq!(api("GET", "/cluster/extra/status").0, 404, "{what}")
                    }
                    "health path changed" => {
                        let rs1 = self.plane.server("rs1");
                        poll(
                            Duration::from_secs(10),
                            "probes on the new health path",
                            || {
                                let last = rs1.health_requests().last().cloned();
                                (last.as_deref() == Some("/web/health")).then_some(())
                            },
                        );
                    }
                    _ => poll(Duration::from_secs(10), what, || {
                        web_ok(&self.plane, &service_lines(7), next.scheduler).then_some(())
                    }),
                }
                self.shape = next;
                self.report.push(format!("reload {n}: applied, {what}"));
            }
            self.client.wait(3);
            let running = self.daemon.as_mut().expect("a daemon runs").is_running();
            assert!(
                running,
                "reload {n} stopped the daemon:\n{}",
                self.d().log()
            );
            self.assert_web_ok(&format!("after reload {n}"));
            self.check_foreign(&format!("after reload {n}"));
        }
        assert_eq!((refused, applied), (RELOADS / 2, RELOADS / 2));
    }

    /// A foreign TCP service added by hand while bigbro runs, which two anti-entropy passes
    /// leave alone; then hand edits of owned state, each repaired within one interval plus
    /// the pass allowance, by the time of the daemon's log line for the repairing
    /// operation.
    fn hand_edits(&mut self) {
        sh(FOREIGN_TCP);
        self.foreign = foreign();
        two_anti_entropy_passes();
        self.check_foreign("a foreign TCP service added by hand");
        let addr = |n: &str| ip(&self.plane, n);
        let (rs1, rs2) = (addr("rs1"), addr("rs2"));
        let whole_service: Vec<String> =
            std::iter::once(format!("ipvsadm -A -f 7 -s {}", self.shape.scheduler))
                .chain(
                    ["rs1", "rs2", "rs3", "rs4"]
                        .map(|n| format!("ipvsadm -a -f 7 -r {}:0 ", addr(n))),
                )
                .collect();
        let edits: [(&str, String, Vec<String>); 5] = [
            (
                "ipvsadm -D (the owned service)",
                "ipvsadm -D -f 7".into(),
                whole_service.clone(),
            ),
            (
                "nft table deleted",
                "nft delete table ip bigbro".into(),
                vec!["repaired the nf_tables mark rules".into()],
            ),
            (
                "ipvsadm -e (a weight)",
                format!("ipvsadm -e -f 7 -r {rs1} -i -w 5"),
                vec![format!("ipvsadm -e -f 7 -r {rs1}:0 ")],
            ),
            (
                "ipvsadm -d (a destination)",
                format!("ipvsadm -d -f 7 -r {rs2}"),
                vec![format!("ipvsadm -a -f 7 -r {rs2}:0 ")],
            ),
            ("ipvsadm -C", "ipvsadm -C".into(), whole_service),
        ];
        let limit = ANTI_ENTROPY + PASS_ALLOWANCE;
        for (what, command, repair) in &edits {
            let edited = Instant::now();
            let edited_unix = unix_now();
            sh(command);
            let seen = poll(limit + Duration::from_secs(10), what, || {
                (self.web_ok() && sh_status("nft list table ip bigbro").1 == self.rules)
                    .then(Instant::now)
            });
            // The daemon logs an operation once the kernel has it: wait for the lines.
            let at = poll(
                Duration::from_secs(10),
                &format!("{what}: {repair:?} logged"),
                || all_logged_after(&self.d().log(), edited_unix, repair),
            );
            let took = Duration::from_secs_f64(at - edited_unix);
            let line = format!(
                "{what}: repaired after {:.1} s by the log (seen from outside after {:.1} s)",
                took.as_secs_f64(),
                (seen - edited).as_secs_f64()
            );
            eprintln!("{line}");
            assert!(
                took <= limit,
                "{line}, more than {limit:?}:\n{}",
                self.d().log()
            );
            self.excused.push((edited, seen));
            self.report.push(line);
            self.client.wait(5);
            if command == "ipvsadm -C" {
                // The hand-made -C took the foreign services too: put them back by hand.
                assert_eq!(foreign().0, "", "ipvsadm -C left foreign services");
                sh(&format!("{FOREIGN_FWMARK} && {FOREIGN_TCP}"));
            }
            self.check_foreign(&format!("after {what}"));
        }
    }

    /// `kill -9` at the first sight of `big`'s service in the kernel, while its 600
    /// destinations are still going in (the count at the kill proves it); the restarted
    /// daemon adopts the half-applied service and completes it within one interval plus
    /// the large pass's allowance of adopting it; stopped, it leaves nothing of big behind.
    fn kill_9_in_a_large_apply(&mut self) {
        sh("curl -s -m 60 -X PUT http://127.0.0.1:9292/cluster/big >/dev/null 2>&1 &");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !proc_fwm8().0 {
            assert!(Instant::now() < deadline, "big's service never appeared");
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut killed = self.daemon.take().expect("a daemon runs");
        killed.signal(Signal::SIGKILL);
        let _ = killed.child.wait();
        let at_kill = proc_fwm8();
        assert!(
            at_kill.0 && at_kill.1 < BIG,
            "the kill -9 did not land inside the apply: {at_kill:?}"
        );
        self.assert_web_ok("after the kill -9");
        self.client.wait(3);
        self.start();
        self.d()
            .wait_log("resuming previously running cluster big", 1);
        // The moment the kernel has all of big, read without starting a process.
        let deadline =
            Instant::now() + ANTI_ENTROPY + LARGE_PASS_ALLOWANCE + Duration::from_secs(20);
        while proc_fwm8().1 != BIG {
            assert!(
                Instant::now() < deadline,
                "big incomplete: {:?}\n{}",
                proc_fwm8(),
                self.d().log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let completed = unix_now();
        // Its missing destinations, each logged by the daemon once the kernel had it.
        let missing = BIG - at_kill.1;
        poll(
            Duration::from_secs(10),
            "big's missing destinations logged",
            || (self.d().log().matches("ipvsadm -a -f 8 ").count() == missing).then_some(()),
        );
        let log = self.d().log();
        let adopted =
            last_logged_after(&log, 0.0, "resuming previously running cluster big").unwrap();
        let logged = last_logged_after(&log, adopted, "ipvsadm -a -f 8 ").unwrap();
        let completion = Duration::from_secs_f64(completed - adopted);
        let line = format!(
            "kill -9 with big's service in the kernel and {} of {BIG} destinations; the restarted \
             daemon completed it in the kernel {:.1} s after adopting it (its {missing} additions \
             logged by {:.1} s)",
            at_kill.1,
            completion.as_secs_f64(),
            logged - adopted
        );
        eprintln!("{line}");
        let limit = ANTI_ENTROPY + LARGE_PASS_ALLOWANCE;
        assert!(completion <= limit, "{line}: more than {limit:?}");
        self.report.push(line);
        assert_eq!(api("DELETE", "/cluster/big"), (200, "OK".to_string()));
        poll(
            ANTI_ENTROPY + PASS_ALLOWANCE,
            "big and its mark rule gone",
            || (!proc_fwm8().0 && sh("nft list table ip bigbro") == self.rules).then_some(()),
        );
        self.assert_web_ok("after big stopped");
        self.check_foreign("after the kill -9");
    }

    /// Two more anti-entropy passes change nothing of anyone's; then the client's verdict,
    /// the logs, and the counts.
    fn finish(mut self) {
        two_anti_entropy_passes();
        self.check_foreign("at the end");
        self.assert_web_ok("at the end");
        assert_eq!(sh("nft list table ip bigbro"), self.rules);
        let flips = self.flapper.stop();
        self.client.wait(10);
        let requests = self.client.stop();
        let failed = unexcused(&requests, &self.excused);
        assert!(
            failed.is_empty(),
            "{} of {} requests failed outside the hand edits' windows: {failed:?}",
            failed.len(),
            requests.len()
        );
        let inside_edits = requests.iter().filter(|r| r.outcome.is_err()).count();
        let mut served: BTreeMap<String, usize> = BTreeMap::new();
        for who in requests.iter().filter_map(|r| r.outcome.as_ref().ok()) {
            *served.entry(who.clone()).or_default() += 1;
        }
        let status = self.daemon.take().expect("a daemon runs").terminate();
        assert!(status.success(), "the last daemon: exit status {status}");
        let logs = assert_no_panics(self.dir.path());
        for line in &self.report {
            eprintln!("SOAK {line}");
        }
        eprintln!(
            "SOAK restarts={RESTARTS} reloads={RELOADS} (refused={} applied={}) hand_edits=5 \
             kill9=1 health_flips={flips} foreign_checks={} daemon_processes={} \
             daemon_logs_without_panic={logs}",
            RELOADS / 2,
            RELOADS / 2,
            self.foreign_checks,
            self.starts
        );
        eprintln!(
            "SOAK requests={} failed_inside_edit_windows={inside_edits} failed_otherwise=0 \
             served={served:?} whole_run={:.1} s",
            requests.len(),
            self.started.elapsed().as_secs_f64()
        );
    }
}

kernel_test! {
    #[time_limit(secs = 480)]
    /// The whole soak (docs/RELIABILITY.md), one client throughout (see the module notes).
    fn soak_with_every_fault_of_issue_12_fails_no_request_bigbro_is_responsible_for() {
        let mut soak = Soak::begin();
        soak.phase("restarts", Soak::restarts);
        soak.phase("reloads", Soak::reloads);
        soak.phase("hand edits", Soak::hand_edits);
        soak.phase("kill -9", Soak::kill_9_in_a_large_apply);
        soak.finish();
    }
}

#[test]
fn log_timestamps_read_as_unix_seconds() {
    // The daemon logged reload success at unix 1795244478.548118 on this line's instant.
    let t = log_time("2026-11-21T07:01:18.548118Z  INFO bigbro::daemon::run: starting").unwrap();
    assert!((t - 1_795_244_478.548_118).abs() < 1e-6, "{t}");
    assert_eq!(log_time("1970-01-01T00:00:00Z x"), Some(0.0));
    assert_eq!(log_time("2000-03-01T00:00:00Z x"), Some(951_868_800.0));
    assert_eq!(log_time("no timestamp"), None);
}

#[test]
fn repairs_are_read_from_the_log() {
    let log = "2000-03-01T00:00:01Z INFO ipvsadm -A -f 7 -s wrr\n\
               2000-03-01T00:00:02Z WARN repaired ...: ipvsadm -a -f 7 -r 10.0.0.1:0 -i -w 100\n\
               2000-03-01T00:00:03Z INFO ipvsadm -A -f 7 -s wrr\n\
               2000-03-01T00:00:04Z INFO ipvsadm -a -f 7 -r 10.0.0.2:0 -i -w 100\n";
    let t0 = 951_868_800.0;
    let both = ["ipvsadm -A -f 7 ".to_string(), "-r 10.0.0.1:0 ".to_string()];
    // The latest of each line's first time after `since`.
    assert_eq!(all_logged_after(log, t0, &both), Some(t0 + 2.0));
    assert_eq!(all_logged_after(log, t0 + 1.5, &both[..1]), Some(t0 + 3.0));
    // One of them not logged since: not repaired yet.
    assert_eq!(all_logged_after(log, t0 + 2.5, &both), None);
    assert_eq!(
        last_logged_after(log, t0, "ipvsadm -A -f 7"),
        Some(t0 + 3.0)
    );
    assert_eq!(last_logged_after(log, t0 + 4.0, "ipvsadm"), None);
}
