//! Resources stay flat over a long run of probes that all time out (docs/RELIABILITY.md): file
//! descriptors, tokio tasks and memory.
//!
//! Two runs, each bounded. On the real clock with real sockets: 500 litmus targets on
//! loopback endpoints that accept and never answer, probed every second with a 250 ms
//! timeout for 15 intervals (7,500 connections): descriptors and tasks never exceed one
//! connection per target, do not grow from the first intervals to the last, and return to
//! the baseline when the scheduler is dropped. On tokio's paused clock (honest here: the
//! prober is a future that never finishes, so no I/O is involved and only the scheduler's
//! own timers, tasks, channel and allocations are measured): 500 targets for 400 intervals
//! (200,000 timed-out probes): tasks constant, memory flat.
//!
//! Process-wide figures (/proc/self/fd, /proc/self/statm) are read, so each test runs in a
//! process of its own (tests/support/own_process.rs), away from the other tests of the
//! suite, and the tests of this file run one at a time (`SERIAL`).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bigbro::health::{
    NetProber, Phase, ProbeError, ProbeResult, ProbeScheduler, ProbeSettings, Prober, Sample,
    Target,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `body` alone (the process-wide figures would count another test's runtime) on a
/// runtime built by `builder`.
fn alone<F: Future<Output = ()>>(mut builder: tokio::runtime::Builder, body: impl FnOnce() -> F) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    builder.enable_all().build().unwrap().block_on(body());
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What each open descriptor is, for failure messages.
fn fd_list() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{}: {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    out.sort();
    out
}

/// Resident set size in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Server-side connection counts of the hanging endpoints.
#[derive(Default)]
struct Open {
    now: AtomicUsize,
    idle: Notify,
}

/// An endpoint that reads the request and then waits, silent, until the prober hangs up.
async fn hanging_endpoint(open: Arc<Open>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            open.now.fetch_add(1, Ordering::SeqCst);
            let open = open.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                drop(s);
                if open.now.fetch_sub(1, Ordering::SeqCst) == 1 {
                    open.idle.notify_one();
                }
            });
        }
    });
    addr
}

#[test]
fn five_hundred_hanging_targets_leak_no_descriptors_tasks_or_memory() {
    crate::own_process::run(
        module_path!(),
        "five_hundred_hanging_targets_leak_no_descriptors_tasks_or_memory",
        || {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(2);
            alone(runtime, five_hundred_hanging_targets);
        },
    );
}

async fn five_hundred_hanging_targets() {
    const TARGETS: usize = 500;
    const ENDPOINTS: usize = 5;
    const INTERVALS: usize = 15;
    let settings = ProbeSettings {
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(250),
    };
    let open = Arc::new(Open::default());
    let mut addrs = Vec::new();
    for _ in 0..ENDPOINTS {
        addrs.push(hanging_endpoint(open.clone()).await);
    }
    let targets: Vec<Target> = (0..TARGETS)
        .map(|i| {
            let a = addrs[i % ENDPOINTS];
            Target::litmus(a.ip(), a.port(), &format!("/svc{i}/status")).unwrap()
        })
        .collect();
    let (fds0, tasks0, list0) = (open_fds(), alive_tasks(), fd_list());

    let (tx, mut rx) = mpsc::channel::<Sample>(4096);
    let mut scheduler = ProbeScheduler::with_seed(NetProber::default(), tx, 5);
    scheduler.sync(targets.iter().map(|t| (t.clone(), settings)));

    // Every 100 ms: descriptors, tasks and memory; and every sample, which must be a
    // timeout while waiting for the headers.
    let mut figures: Vec<(Duration, usize, usize, usize)> = Vec::new();
    let mut samples = 0usize;
    let start = Instant::now();
    let end = start + settings.interval * INTERVALS as u32;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < end {
        tokio::select! {
            _ = tick.tick() => figures.push((start.elapsed(), open_fds(), alive_tasks(), rss())),
            s = rx.recv() => {
                let s = s.unwrap();
                // Mostly while waiting for the headers; on a loaded machine also while
                // connecting or sending.
                assert!(
                    matches!(s.result, Err(ProbeError::Timeout { timeout, .. }) if timeout == settings.timeout),
                    "{}: {:?}",
                    s.target,
                    s.result
                );
                samples += 1;
            }
        }
    }
    // About one probe per target per interval (the first interval is jittered in).
    assert!(
        samples >= TARGETS * (INTERVALS - 2),
        "only {samples} probes in {INTERVALS} intervals"
    );

    // Never more than one connection per target (client side and server side), nor more
    // than one task per target plus one per connection being served.
    for &(at, fds, tasks, _) in &figures {
        assert!(
            fds <= fds0 + 2 * TARGETS,
            "{fds} descriptors at {at:?} (baseline {fds0})"
        );
        assert!(
            tasks <= tasks0 + 2 * TARGETS,
            "{tasks} tasks at {at:?} (baseline {tasks0})"
        );
    }
    // No growth: the median of the last four intervals is no higher than that of intervals
    // 2 to 5 (allowing for jitter and a loaded machine), and memory grows by at most 16 MiB.
    let median = |from: u32, to: u32, pick: fn(&(Duration, usize, usize, usize)) -> usize| {
        let mut v: Vec<usize> = figures
            .iter()
            .filter(|(at, ..)| *at >= settings.interval * from && *at < settings.interval * to)
            .map(pick)
            .collect();
        v.sort();
        v[v.len() / 2]
    };
    let last = INTERVALS as u32;
    let (early_fds, late_fds) = (median(1, 5, |f| f.1), median(last - 4, last, |f| f.1));
    assert!(
        late_fds <= early_fds + TARGETS / 5,
        "descriptors grew: median {early_fds} early, {late_fds} late"
    );
    let (early_tasks, late_tasks) = (median(1, 5, |f| f.2), median(last - 4, last, |f| f.2));
    assert!(
        late_tasks <= early_tasks + TARGETS / 5,
        "tasks grew: median {early_tasks} early, {late_tasks} late"
    );
    let (early_rss, late_rss) = (median(1, 5, |f| f.3), median(last - 4, last, |f| f.3));
    assert!(
        late_rss <= early_rss + (16 << 20),
        "memory grew from {early_rss} to {late_rss} bytes"
    );
    let peak_fds = figures.iter().map(|f| f.1).max().unwrap();
    let peak_tasks = figures.iter().map(|f| f.2).max().unwrap();

    // Dropping the scheduler ends every probe: each endpoint sees its connection close.
    drop(scheduler);
    drop(rx);
    // The aborted probe tasks close their sockets as the runtime drops them, and a
    // connection still in an endpoint's accept queue is accepted, sees the end and closes:
    // wait (at most 10 s) for the endpoints to go idle with the counts back at the baseline.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open.now.load(Ordering::SeqCst) > 0 || open_fds() > fds0 || alive_tasks() > tasks0 {
        if Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), open.idle.notified()).await;
    }
    assert_eq!(
        open.now.load(Ordering::SeqCst),
        0,
        "connections still open 10 s after the scheduler was dropped"
    );
    let (fds, tasks) = (open_fds(), alive_tasks());
    assert!(
        fds <= fds0 + 2,
        "{fds} descriptors after the run, {fds0} before: {:#?}, was {list0:#?}",
        fd_list()
    );
    assert!(
        tasks <= tasks0 + 2,
        "{tasks} tasks after the run, {tasks0} before"
    );
    eprintln!(
        "{samples} timed-out probes; descriptors median {early_fds} early / {late_fds} late (peak {peak_fds}), tasks {early_tasks} / {late_tasks} (peak {peak_tasks}), rss {} KiB / {} KiB; baseline {fds0} fds, {tasks0} tasks",
        early_rss >> 10,
        late_rss >> 10
    );
}

/// A prober whose every probe hangs until the scheduler's deadline cuts it off.
#[derive(Clone, Default)]
struct Hanging {
    probes: Arc<AtomicUsize>,
}

impl Prober for Hanging {
    fn probe(
        &self,
        _target: &Target,
        _timeout: Duration,
        _deadline: Instant,
    ) -> impl Future<Output = ProbeResult> + Send {
        self.probes.fetch_add(1, Ordering::Relaxed);
        std::future::pending()
    }
}

#[test]
fn two_hundred_thousand_timeouts_on_the_paused_clock_keep_tasks_and_memory_flat() {
    crate::own_process::run(
        module_path!(),
        "two_hundred_thousand_timeouts_on_the_paused_clock_keep_tasks_and_memory_flat",
        || {
            let mut runtime = tokio::runtime::Builder::new_current_thread();
            runtime.start_paused(true);
            alone(runtime, two_hundred_thousand_timeouts);
        },
    );
}

async fn two_hundred_thousand_timeouts() {
    const TARGETS: usize = 500;
    const INTERVALS: u32 = 400;
    let settings = ProbeSettings {
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
    };
    let prober = Hanging::default();
    let (tx, mut rx) = mpsc::channel::<Sample>(1024);
    let tasks0 = alive_tasks();
    let mut scheduler = ProbeScheduler::with_seed(prober.clone(), tx, 9);
    scheduler.sync((0..TARGETS).map(|i| {
        let addr = IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1));
        (Target::litmus(addr, 9292, "/s").unwrap(), settings)
    }));

    let start = Instant::now();
    let mut samples = 0usize;
    let mut checkpoints: Vec<(u32, usize, usize)> = Vec::new();
    for k in 1..=INTERVALS {
        let until = start + settings.interval * k;
        while let Ok(Some(s)) = tokio::time::timeout_at(until, rx.recv()).await {
            assert_eq!(
                s.result,
                Err(ProbeError::Timeout {
                    timeout: settings.timeout,
                    phase: Phase::Unknown
                })
            );
            assert_eq!(s.latency, settings.timeout);
            samples += 1;
        }
        if k % 50 == 0 {
            checkpoints.push((k, alive_tasks(), rss()));
        }
    }
    assert!(
        samples >= TARGETS * (INTERVALS as usize - 1),
        "{samples} samples"
    );
    // Every probe started was answered (timed out), but for those still under way.
    let probes = prober.probes.load(Ordering::Relaxed);
    assert!(
        (samples..=samples + TARGETS).contains(&probes),
        "{probes} probes, {samples} samples"
    );
    // One task per target, the whole run.
    for &(k, tasks, _) in &checkpoints {
        assert_eq!(tasks, tasks0 + TARGETS, "at interval {k}");
    }
    let (_, _, first_rss) = checkpoints[0];
    let (_, _, last_rss) = *checkpoints.last().unwrap();
    assert!(
        last_rss <= first_rss + (4 << 20),
        "memory grew from {first_rss} to {last_rss} bytes over {INTERVALS} intervals"
    );
    drop(scheduler);
    for _ in 0..1000 {
        if alive_tasks() == tasks0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(alive_tasks(), tasks0);
    eprintln!(
        "{samples} timeouts; tasks {} throughout; rss {} KiB at interval 50, {} KiB at {INTERVALS}",
        checkpoints[0].1,
        first_rss >> 10,
        last_rss >> 10
    );
}
