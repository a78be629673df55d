//! Health probing at scale: N litmus targets on loopback probed every interval by the real
//! weight driver (health::ProbeScheduler + NetProber inside it), in this process, while the stub
//! backends run in a child process. Measures this process's CPU time (getrusage, every
//! thread) and peak RSS (VmHWM), and when each probe started against its target's tick
//! grid.
//!
//! Targets are 127.1.x.y:9292, one address per node, so no two nodes share a 4-tuple
//! space. When run as root, the whole measurement (prober and stub) happens in a network
//! namespace of its own, so the host's loopback and its TIME_WAIT table are left alone.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bigbro::health::{NetProber, ProbeResult, ProbeSettings, ProbeThread, Prober, Target};
use bigbro::types::{ClusterName, Weight};
use bigbro::weight::{self, DriverOptions, Initial, NodeParams, NodeSpec};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::usage;

/// The health port every stub address listens on (litmus_paper's usual port).
pub const PORT: u16 = 9292;
/// A probe that starts later than this after its tick is late.
const ON_TIME: Duration = Duration::from_millis(100);

/// The address of node `i` (from 0): 127.1.0.1 ... 127.1.0.250, 127.1.1.1 ...
pub fn node_addr(i: usize) -> Ipv4Addr {
    let (hi, lo) = (i / 250, i % 250);
    Ipv4Addr::new(127, 1 + (hi / 250) as u8, (hi % 250) as u8, 1 + lo as u8)
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub nodes: usize,
    pub seconds: u64,
    pub interval: Duration,
    pub timeout: Duration,
    pub ramp: Duration,
    /// Nodes per cluster (10: as in the kernel workload, 1,000 services × 10).
    pub cluster_size: usize,
    /// tokio worker threads; 0 for a current-thread runtime.
    pub threads: usize,
    /// The probe tasks run on a probe thread of their own, as in the daemon (else on the
    /// runtime above).
    pub probe_thread: bool,
}

/// Every probe start and outcome, per target.
struct Record {
    t0: Instant,
    index: HashMap<Target, usize>,
    slots: Vec<Mutex<Slot>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

#[derive(Default)]
struct Slot {
    /// Microseconds after `t0`.
    starts: Vec<u32>,
    ok: u32,
    failed: u32,
}

/// NetProber, recording when each probe starts and how it ends.
#[derive(Clone)]
struct Recording {
    inner: NetProber,
    record: Arc<Record>,
}

impl Prober for Recording {
    fn probe(
        &self,
        target: &Target,
        timeout: Duration,
        deadline: Instant,
    ) -> impl Future<Output = ProbeResult> + Send {
        let slot = self.record.index.get(target).copied();
        if let Some(i) = slot {
            let at = self.record.t0.elapsed().as_micros() as u32;
            self.record.slots[i].lock().unwrap().starts.push(at);
        }
        let probe = self.inner.probe(target, timeout, deadline);
        async move {
            let result = probe.await;
            if let Some(i) = slot {
                let mut s = self.record.slots[i].lock().unwrap();
                match &result {
                    Ok(_) => s.ok += 1,
                    Err(e) => {
                        s.failed += 1;
                        drop(s);
                        *self
                            .record
                            .errors
                            .lock()
                            .unwrap()
                            .entry(e.to_string())
                            .or_default() += 1;
                    }
                }
            }
            result
        }
    }

    fn enforces_deadline(&self) -> bool {
        self.inner.enforces_deadline()
    }
}

/// Enters a network namespace of our own with `lo` up, if we may (root); must be called
/// before any thread is started. Returns where the measurement runs.
pub fn private_netns() -> &'static str {
    use nix::sched::{unshare, CloneFlags};
    if unshare(CloneFlags::CLONE_NEWNET).is_err() {
        return "host network namespace (not root)";
    }
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .is_ok_and(|s| s.success());
    if up {
        "private network namespace"
    } else {
        "private network namespace, lo DOWN (ip failed)"
    }
}

/// Runs one probing measurement and returns its results as JSON.
pub fn run(settings: &Settings) -> anyhow::Result<Value> {
    let netns = private_netns();
    let nofile = usage::raise_nofile();
    let mut stub = Command::new(std::env::current_exe()?)
        .args(["stub", "--nodes", &settings.nodes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the stub backends")?;
    let mut stub_out = BufReader::new(stub.stdout.take().context("stub stdout")?);
    let mut line = String::new();
    stub_out.read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = stub.kill();
        bail!("the stub did not start: {line:?}");
    }

    // The daemon's probe thread, dropped after the runtime (as in the daemon).
    let probes = if settings.probe_thread {
        Some(ProbeThread::start("probes")?)
    } else {
        None
    };
    // The daemon's kind of runtime: multi-threaded, one worker per CPU (or as asked).
    let runtime = match settings.threads {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    let rss_before = usage::status_kib("VmRSS");
    let measured = runtime.block_on(measure(settings, probes.as_ref().map(ProbeThread::handle)));
    drop(runtime);
    drop(probes);

    drop(stub.stdin.take()); // tells the stub to report and stop
    line.clear();
    stub_out.read_line(&mut line)?;
    stub.wait()?;
    let stub_report: Value =
        serde_json::from_str(line.trim()).with_context(|| format!("stub report {line:?}"))?;
    let mut result = measured?;
    result["stub"] = stub_report;
    result["rss_before_kib"] = json!(rss_before);
    result["netns"] = json!(netns);
    result["nofile_limit"] = json!(nofile);
    let _ = std::io::stdout().flush();
    Ok(result)
}

async fn measure(
    settings: &Settings,
    probe_runtime: Option<tokio::runtime::Handle>,
) -> anyhow::Result<Value> {
    let probe = ProbeSettings {
        interval: settings.interval,
        timeout: settings.timeout,
    };
    let targets: Vec<Target> = (0..settings.nodes)
        .map(|i| Target::litmus(IpAddr::V4(node_addr(i)), PORT, "/health"))
        .collect::<Result<_, _>>()?;
    let expected_per_target = (settings.seconds * 1000 / settings.interval.as_millis() as u64) + 2;
    let record = Arc::new(Record {
        t0: Instant::now(),
        index: targets
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, t)| (t, i))
            .collect(),
        slots: (0..settings.nodes)
            .map(|_| {
                Mutex::new(Slot {
                    starts: Vec::with_capacity(expected_per_target as usize),
                    ..Slot::default()
                })
            })
            .collect(),
        errors: Mutex::new(BTreeMap::new()),
    });
    let prober = Recording {
        inner: NetProber::default(),
        record: record.clone(),
    };
    // What one probe in progress holds in its task (the scheduler's task holds more).
    let probe_future_bytes = {
        let deadline = Instant::now();
        std::mem::size_of_val(&NetProber::default().probe(&targets[0], settings.timeout, deadline))
    };

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread_stalls = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut stalls = Stalls::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = std::time::Instant::now();
                std::thread::sleep(STALL_TICK);
                stalls.add(t.elapsed());
            }
            stalls
        })
    };
    // On the runtime the driver and the probes run on, to see when it was busy.
    let tokio_stalls = {
        let stop = stop.clone();
        let monitor = async move {
            let mut stalls = Stalls::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                tokio::time::sleep(STALL_TICK).await;
                stalls.add(t.elapsed());
            }
            stalls
        };
        match &probe_runtime {
            Some(runtime) => runtime.spawn(monitor),
            None => tokio::spawn(monitor),
        }
    };
    let cpu0 = usage::cpu_time();
    let wall0 = Instant::now();
    let options = DriverOptions {
        probe_runtime,
        ..DriverOptions::default()
    };
    let (handle, mut batches) = weight::spawn(options, prober);
    let counter = tokio::spawn(async move {
        let mut changes = 0u64;
        while let Some(batch) = batches.recv().await {
            changes += batch.changes.len() as u64;
        }
        changes
    });
    for (c, chunk) in targets.chunks(settings.cluster_size.max(1)).enumerate() {
        let nodes = chunk
            .iter()
            .map(|t| {
                let mut params = NodeParams::new(t.clone(), probe);
                params.ramp_up_time = settings.ramp;
                NodeSpec {
                    addr: t.socket_addr().ip(),
                    params,
                    initial: Initial::Fresh(Weight::clamped(1)),
                }
            })
            .collect();
        handle
            .set_cluster(ClusterName(format!("c{c}")), nodes)
            .await?;
    }
    let setup = wall0.elapsed();
    let cpu_setup = usage::cpu_time() - cpu0;
    let (user0, system0) = usage::cpu_times();
    let (vcsw0, ivcsw0) = usage::context_switches();
    let rss_after_setup = usage::status_kib("VmRSS");
    let peak_after_setup = usage::status_kib("VmHWM");
    // The steady state: `seconds` from the moment every node is registered.
    let steady = Instant::now();
    let end = steady + Duration::from_secs(settings.seconds);
    tokio::time::sleep_until(end).await;
    let (user1, system1) = usage::cpu_times();
    let (vcsw1, ivcsw1) = usage::context_switches();
    let (user, system) = (user1 - user0, system1 - system0);
    let cpu = user + system;
    let wall = steady.elapsed();
    let from_us = (steady - record.t0).as_micros() as i64;
    let end_us = (end - record.t0).as_micros() as i64;
    let peak_rss = usage::status_kib("VmHWM");
    let rss_end = usage::status_kib("VmRSS");
    drop(handle);
    let weight_changes = counter.await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let thread_stalls = thread_stalls.join().unwrap_or_default();
    let tokio_stalls = tokio_stalls.await.unwrap_or_default();

    let timing = on_time(&record, settings.interval, from_us, end_us);
    let (ok, failed) = record.slots.iter().fold((0u64, 0u64), |(ok, failed), s| {
        let s = s.lock().unwrap();
        (ok + u64::from(s.ok), failed + u64::from(s.failed))
    });
    let errors = record.errors.lock().unwrap().clone();
    Ok(json!({
        "nodes": settings.nodes,
        "interval_seconds": settings.interval.as_secs_f64(),
        "timeout_seconds": settings.timeout.as_secs_f64(),
        "ramp_seconds": settings.ramp.as_secs_f64(),
        "cluster_size": settings.cluster_size,
        "worker_threads": settings.threads,
        "probe_thread": settings.probe_thread,
        "context_switches": {"voluntary": vcsw1 - vcsw0, "involuntary": ivcsw1 - ivcsw0},
        "seconds": settings.seconds,
        "setup_seconds": setup.as_secs_f64(),
        "setup_cpu_seconds": cpu_setup.as_secs_f64(),
        "cpu_seconds": cpu.as_secs_f64(),
        "cpu_user_seconds": user.as_secs_f64(),
        "cpu_system_seconds": system.as_secs_f64(),
        "probe_future_bytes": probe_future_bytes,
        "wall_seconds": wall.as_secs_f64(),
        "cpu_share": cpu.as_secs_f64() / wall.as_secs_f64(),
        "peak_rss_kib": peak_rss,
        "rss_after_setup_kib": rss_after_setup,
        "peak_rss_after_setup_kib": peak_after_setup,
        "rss_end_kib": rss_end,
        "probes_ok": ok,
        "probes_failed": failed,
        "errors": errors,
        "weight_changes": weight_changes,
        "stalls": {
            "thread": thread_stalls.json(),
            "tokio": tokio_stalls.json(),
        },
        "ticks": timing.ticks,
        "on_time": timing.on_time,
        "on_time_share": timing.on_time as f64 / timing.ticks.max(1) as f64,
        "lateness_ms": timing.lateness_ms,
    }))
}

/// How often the stall monitors look: a plain thread and a tokio task each sleep this
/// long in a loop and record how much later than asked they woke. A late plain thread
/// means the whole process (or machine) did not run; a late tokio task alone means the
/// runtime was busy.
const STALL_TICK: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Stalls {
    max: Duration,
    /// Wake-ups later than ON_TIME.
    over: u64,
    total: u64,
}

impl Stalls {
    fn add(&mut self, slept: Duration) {
        let late = slept.saturating_sub(STALL_TICK);
        self.max = self.max.max(late);
        self.over += u64::from(late > ON_TIME);
        self.total += 1;
    }

    fn json(&self) -> Value {
        json!({
            "max_ms": self.max.as_secs_f64() * 1000.0,
            "wakeups_over_100ms": self.over,
            "wakeups": self.total,
        })
    }
}

/// How punctual the probes were.
struct Timing {
    /// Grid ticks (scheduled probe starts) that fell inside the run.
    ticks: u64,
    /// Of those, ticks whose probe started within ON_TIME.
    on_time: u64,
    /// Percentiles of the lateness of every probe start.
    lateness_ms: Value,
}

/// Each target's ticks lie on a grid `g0 + k × interval` whose phase the scheduler chose
/// at random. The grid is recovered from the starts themselves: their phases (time modulo
/// the interval) sit on a circle, on-time starts bunched just after the grid's phase and
/// late ones spread after them, never before; so the grid's phase is the first phase
/// after the largest empty arc. (This needs some starts on time; if none were, lateness
/// is underestimated, and missing ticks still count as late.) A tick with no start within
/// ON_TIME is late, including a tick skipped altogether. Only ticks in
/// [`from_us`, `end_us` - ON_TIME] count (the steady state; the last ON_TIME is cut so
/// every counted tick had its chance).
fn on_time(record: &Record, interval: Duration, from_us: i64, end_us: i64) -> Timing {
    let period = interval.as_micros() as i64;
    let tolerance = ON_TIME.as_micros() as i64;
    let (mut ticks, mut on_time) = (0u64, 0u64);
    let mut lateness: Vec<i64> = Vec::new();
    for slot in &record.slots {
        let slot = slot.lock().unwrap();
        let last = end_us - tolerance;
        if slot.starts.is_empty() {
            // Never probed: every tick of the run was missed.
            ticks += ((last - from_us).max(0) / period) as u64;
            continue;
        }
        let mut phases: Vec<i64> = slot
            .starts
            .iter()
            .map(|&s| i64::from(s).rem_euclid(period))
            .collect();
        phases.sort_unstable();
        let n = phases.len();
        let gap_before = |i: usize| {
            if i == 0 {
                phases[0] + period - phases[n - 1]
            } else {
                phases[i] - phases[i - 1]
            }
        };
        let grid_phase = phases[(0..n).max_by_key(|&i| gap_before(i)).unwrap_or(0)];
        let first = i64::from(slot.starts[0]);
        let grid0 = first - (first - grid_phase).rem_euclid(period);
        let offsets: Vec<i64> = slot
            .starts
            .iter()
            .map(|&s| (i64::from(s) - grid_phase).rem_euclid(period))
            .collect();
        // The grid's ticks inside the window.
        let k_min = if from_us > grid0 {
            (from_us - grid0 + period - 1) / period
        } else {
            0
        };
        let k_max = if last >= grid0 {
            (last - grid0) / period
        } else {
            -1
        };
        let target_ticks = (k_max - k_min + 1).max(0) as u64;
        let mut good = 0u64;
        for (&s, &late) in slot.starts.iter().zip(&offsets) {
            let tick = i64::from(s) - late;
            if tick < from_us || tick > last {
                continue;
            }
            lateness.push(late);
            if late <= tolerance {
                good += 1;
            }
        }
        ticks += target_ticks;
        on_time += good.min(target_ticks);
    }
    lateness.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lateness.is_empty() {
            return 0.0;
        }
        let i = ((lateness.len() - 1) as f64 * p).round() as usize;
        lateness[i] as f64 / 1000.0
    };
    Timing {
        ticks,
        on_time,
        lateness_ms: json!({
            "p50": pct(0.5),
            "p99": pct(0.99),
            "p99.9": pct(0.999),
            "max": pct(1.0),
        }),
    }
}
