//! Helpers for kernel tests of the daemon (and the demo), on top of the test bed's data
//! plane: configuration files naming the real servers, the daemon in-process (through its
//! `Handle`) or as the real `bigbro daemon` binary, client traffic running in the
//! background for the whole test, and reads of the kernel state.
//!
//! Guest only: everything here changes kernel state.
// Shared by several suites (tests/*/main.rs), each of which uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bigbro::daemon::kernel::{LazyIpvs, LazyNft, LazyRoute};
use bigbro::daemon::{self, ClusterStatus, Handle, Options};
use bigbro::health::NetProber;
use bigbro::types::Fwmark;
use bigbro::weight::DriverOptions;

use crate::testbed::dataplane::{in_netns, DataPlane, Tally, HEALTH_PORT, SERVICE_PORT};
use crate::testbed::sh;

/// The health path every real server answers on.
pub const HEALTH_PATH: &str = "/web/status";

/// Logs of the in-process daemon go to the test's output (shown when it fails).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .try_init();
}

/// `- {address: A, port: 9292, path: /web/status}` for each named real server.
pub fn nodes(plane: &DataPlane, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "      - {{address: {}, port: {HEALTH_PORT}, path: {HEALTH_PATH}}}\n",
                plane.server(n).addr()
            )
        })
        .collect()
}

/// A configuration file in a fresh temporary directory.
pub struct ConfigFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl ConfigFile {
    pub fn new(text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bigbro.yml");
        std::fs::write(&path, text).expect("write config");
        ConfigFile { dir, path }
    }

    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text).expect("write config");
    }
}

/// The `bigbro:` section tests use: a short anti-entropy interval and a data dir of
/// their own (so no override file of the host applies).
pub fn settings(dir: &Path, anti_entropy_secs: u32) -> String {
    format!(
        "bigbro:\n  anti_entropy_interval: {anti_entropy_secs}\n  data_dir: {}\n",
        dir.join("data").display()
    )
}

/// A tokio runtime for the in-process daemon: its worker threads are created here, so they
/// share the test's network namespace. The test thread stays free for blocking waits.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Starts the daemon in this process, on `rt`, with the real IPVS, nf_tables, route
/// netlink and probes.
pub fn spawn_daemon(rt: &tokio::runtime::Runtime, config: &Path) -> Handle {
    init_logging();
    let _guard = rt.enter();
    let model = bigbro::config::load(config).unwrap_or_else(|e| panic!("{e}"));
    let mut options = Options::new(config);
    options.driver = DriverOptions {
        data_dir: Some(model.settings.data_dir.clone()),
        ..DriverOptions::default()
    };
    let (handle, _task) = daemon::spawn(
        model,
        options,
        Arc::new(LazyIpvs::new()),
        Arc::new(LazyNft::new()),
        Arc::new(LazyRoute::new()),
        NetProber::default(),
    );
    handle
}

/// Waits until `cluster`'s status satisfies `ok`, for at most `limit`.
pub async fn until(
    h: &Handle,
    cluster: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&ClusterStatus) -> bool,
) -> ClusterStatus {
    let mut watch = h.clone();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let s = h.status(cluster).await.expect("configured cluster");
        if ok(&s) {
            return s;
        }
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!(
                "timed out after {limit:?} waiting for {what}\nstatus: {s:#?}\nipvsadm:\n{}",
                sh("ipvsadm -S -n")
            ),
        }
    }
}

/// Unix time now (what the daemon's pass times are in).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Waits for the first full pass (one that read every owned service, as anti-entropy
/// does: a partial pass leaves the status of services it did not read as they were) that
/// started after `t_unix` and left `cluster` in a state `ok` accepts; returns when that
/// pass finished (unix time).
pub async fn until_pass_after(
    h: &Handle,
    cluster: &str,
    t_unix: f64,
    limit: Duration,
    what: &str,
    ok: impl Fn(&ClusterStatus) -> bool,
) -> f64 {
    let mut watch = h.clone();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let pass = h.daemon_status().last_pass;
        if let Some(p) = pass.filter(|p| p.full && p.at_unix - p.duration_seconds > t_unix) {
            let s = h.status(cluster).await.expect("configured cluster");
            if ok(&s) {
                return p.at_unix;
            }
        }
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!(
                "no pass repaired {what} within {limit:?}\nipvsadm:\n{}",
                sh("ipvsadm -S -n")
            ),
        }
    }
}

/// The weights of `cluster`'s nodes as the last dump found them, by address.
pub fn kernel_weights(s: &ClusterStatus) -> BTreeMap<IpAddr, u32> {
    s.kernel
        .as_ref()
        .map(|k| k.dests.iter().map(|d| (d.address, d.weight)).collect())
        .unwrap_or_default()
}

/// Reads the weights of fwmark service `mark` straight from the kernel.
pub async fn read_weights(client: &bigbro::ipvs::Client, mark: u32) -> BTreeMap<IpAddr, u32> {
    let key = bigbro::ipvs::ServiceKey::fwmark_v4(Fwmark::new(mark).expect("mark"));
    client
        .dests(&key)
        .await
        .expect("dump")
        .into_iter()
        .map(|d| (d.dest.addr, d.dest.weight))
        .collect()
}

/// Polls `probe` every 50 ms until it returns Some, for at most `limit` (for state that
/// gives no event to wait for: another process's effect on the kernel).
pub fn poll<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}\nipvsadm:\n{}",
                sh("ipvsadm -S -n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the future `work()` makes on a thread of its own inside network namespace `netns`
/// (a client or a fixture's namespace), on a current-thread tokio runtime, until it ends.
pub fn spawn_in_netns<F, Fut>(netns: String, work: F) -> std::thread::JoinHandle<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        in_netns(&netns, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(work())
        })
    })
}

/// Open descriptors, threads and resident memory (KiB) of process `pid`, from
/// `/proc/PID/fd` and `/proc/PID/status`.
pub fn usage(pid: u32) -> (usize, usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("process {pid}: /proc/{pid}/fd: {e}"))
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid}: /proc/{pid}/status: {e}"));
    let field = |name: &str| -> usize {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("process {pid}: no {name} in /proc/{pid}/status"))
    };
    (fds, field("Threads:"), field("VmRSS:"))
}

/// One batch of client requests, and when it finished.
#[derive(Clone, Debug)]
pub struct Batch {
    pub at: Instant,
    pub tally: Tally,
}

/// Client requests to the VIP, in batches, on a thread of their own until stopped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    batches: Arc<Mutex<Vec<Batch>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    /// Sends `batch` sequential requests (each on a new connection) at a time to VIP:80.
    pub fn start(plane: Arc<DataPlane>, batch: usize) -> Traffic {
        Traffic::paced(plane, batch, Duration::ZERO)
    }

    /// The same, pausing `pause` between batches (to leave the guest's one CPU some room).
    pub fn paced(plane: Arc<DataPlane>, batch: usize, pause: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, batches) = (stop.clone(), batches.clone());
            std::thread::spawn(move || {
                let vip = plane.vip_addr(SERVICE_PORT);
                while !stop.load(Ordering::SeqCst) {
                    let tally = plane.client().tally(vip, batch);
                    let at = Instant::now();
                    batches.lock().unwrap().push(Batch { at, tally });
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                }
            })
        };
        Traffic {
            stop,
            batches,
            thread: Some(thread),
        }
    }

    /// Every batch so far.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().unwrap().clone()
    }

    /// The requests of the batches that started after `t` (a batch finished after `t`
    /// plus one batch of margin is not enough: only batches entirely after `t` count).
    pub fn since(&self, t: Instant) -> Tally {
        let all = self.batches();
        let mut out = Tally::default();
        let mut started_after = false;
        for b in &all {
            if started_after {
                merge(&mut out, &b.tally);
            }
            if b.at >= t {
                started_after = true;
            }
        }
        out
    }

    /// Waits until `n` more requests have been answered or failed from now.
    pub fn wait_requests(&self, n: usize) -> Tally {
        let from = Instant::now();
        poll(Duration::from_secs(120), "client requests", || {
            let t = self.since(from);
            (t.answered() + t.failures.len() >= n).then_some(t)
        })
    }

    /// Stops and returns every request's outcome.
    pub fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("traffic thread");
        }
        let mut out = Tally::default();
        for b in self.batches() {
            merge(&mut out, &b.tally);
        }
        out
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn merge(into: &mut Tally, from: &Tally) {
    for (k, v) in &from.answers {
        *into.answers.entry(k.clone()).or_default() += v;
    }
    into.failures.extend(from.failures.iter().cloned());
}

/// The real `bigbro daemon` binary, its log in a file.
pub struct DaemonProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl DaemonProcess {
    pub fn start(config: &Path, log: &Path) -> DaemonProcess {
        DaemonProcess::start_wrapped(&[], config, log)
    }

    /// `start`, run through `wrapper` (a program and its arguments, e.g. setpriv) when it
    /// is not empty.
    pub fn start_wrapped(wrapper: &[&str], config: &Path, log: &Path) -> DaemonProcess {
        let file = std::fs::File::create(log).expect("log file");
        let bin = env!("CARGO_BIN_EXE_bigbro");
        let (program, args) = match wrapper {
            [program, args @ ..] => (*program, args),
            [] => (bin, &[][..]),
        };
        let mut command = Command::new(program);
        if !wrapper.is_empty() {
            command.args(args).arg(bin);
        }
        let child = command
            .args(["daemon", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start bigbro daemon");
        DaemonProcess {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text` (at least `times` times); on timeout, panics
    /// with the log's last 40 lines.
    pub fn wait_log(&self, text: &str, times: usize) {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll(
                Duration::from_secs(60),
                &format!("{text:?} ({times} times) in the daemon's log"),
                || (self.log().matches(text).count() >= times).then_some(()),
            )
        }));
        if let Err(panic) = found {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            let why = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            panic!("{why}\n--- the daemon's log (last 40 lines) ---\n{tail}");
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("signal the daemon");
    }

    /// SIGTERM, then its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("bigbro daemon did not exit on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
