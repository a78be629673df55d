//! The probe scheduler: one task per distinct target, probing it every interval from a
//! jittered start, sending one `Sample` per probe on a channel.
//!
//! Each task probes its own target only, so a hanging backend delays nothing but itself, and
//! it never starts a probe while the previous one runs: ticks fall on a fixed grid
//! (`first + k × interval`), and a probe still running at a tick makes that tick be skipped;
//! the next probe starts at the first tick after it finished or timed out. Start times are
//! spread by a random offset in `[0, interval)` so 10,000 targets do not all connect at the
//! same instant. Targets are added, changed and removed at runtime with `sync`.
//!
//! The scheduler must never probe one target twice at once, never let a probe outlive its
//! timeout, and knows nothing of clusters or weights: users of a shared target read its
//! samples from the one stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::error::{Phase, ProbeError};
use super::jitter::Jitter;
use super::probe::{NetProber, ProbeResult, Prober};
use super::target::{ProbeSettings, Target};

/// The result of one probe of one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub target: Target,
    pub result: ProbeResult,
    /// When the probe started.
    pub started: Instant,
    /// How long it took to succeed or fail (at most about the timeout).
    pub latency: Duration,
}

impl Sample {
    /// When the result became known.
    pub fn finished(&self) -> Instant {
        self.started + self.latency
    }
}

/// What a `sync` changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<Target>,
    pub removed: Vec<Target>,
    pub retimed: Vec<Target>,
}

struct Task {
    settings: watch::Sender<ProbeSettings>,
    handle: JoinHandle<()>,
}

/// Owns the probe tasks. Dropping it stops them all. Must be used inside a tokio runtime.
pub struct ProbeScheduler<P: Prober = NetProber> {
    prober: Arc<P>,
    samples: mpsc::Sender<Sample>,
    tasks: HashMap<Target, Task>,
    rng: Jitter,
    /// Targets looked at by `sync` and `set` so far (see `examined`).
    examined: u64,
}

impl<P: Prober> ProbeScheduler<P> {
    /// Samples go to `samples`; if its receiver lags, the probes of the targets waiting to
    /// send are held back (and resume on their next tick), nothing is buffered without bound.
    pub fn new(prober: P, samples: mpsc::Sender<Sample>) -> ProbeScheduler<P> {
        ProbeScheduler::with_rng(prober, samples, Jitter::from_os())
    }

    /// Same, with reproducible jitter (for tests).
    pub fn with_seed(prober: P, samples: mpsc::Sender<Sample>, seed: u64) -> ProbeScheduler<P> {
        ProbeScheduler::with_rng(prober, samples, Jitter::seeded(seed))
    }

    fn with_rng(prober: P, samples: mpsc::Sender<Sample>, rng: Jitter) -> ProbeScheduler<P> {
        ProbeScheduler {
            prober: Arc::new(prober),
            samples,
            tasks: HashMap::new(),
            rng,
            examined: 0,
        }
    }

    /// Makes the probed set exactly `wanted`. A target listed several times (shared by
    /// clusters) gets one task with the merged settings (shortest interval, shortest
    /// timeout). New targets start after a random offset within their interval; targets
    /// that stay keep their phase and get new settings from their next probe on; targets no
    /// longer wanted stop at once (a sample of theirs may still be in the channel).
    pub fn sync(
        &mut self,
        wanted: impl IntoIterator<Item = (Target, ProbeSettings)>,
    ) -> SyncReport {
        let mut merged: HashMap<Target, ProbeSettings> = HashMap::new();
        for (target, settings) in wanted {
            let settings = settings.sanitized();
            merged
                .entry(target)
                .and_modify(|s| *s = s.merge(settings))
                .or_insert(settings);
        }
        self.examined += (merged.len() + self.tasks.len()) as u64;
        let mut report = SyncReport::default();
        let gone: Vec<Target> = self
            .tasks
            .keys()
            .filter(|t| !merged.contains_key(*t))
            .cloned()
            .collect();
        for target in gone {
            self.remove(&target);
            report.removed.push(target);
        }
        for (target, settings) in merged {
            match self.tasks.get(&target) {
                Some(task) if *task.settings.borrow() == settings => {}
                Some(task) => {
                    task.settings.send_replace(settings);
                    report.retimed.push(target);
                }
                None => {
                    self.insert(target.clone(), settings);
                    report.added.push(target);
                }
            }
        }
        report.added.sort();
        report.removed.sort();
        report.retimed.sort();
        report
    }

    /// Brings one target in line: probed with `settings` (already merged over its users),
    /// or not at all for None. Costs one target's work, where `sync` costs all of them;
    /// returns what changed as a one-target report.
    pub fn set(&mut self, target: Target, settings: Option<ProbeSettings>) -> SyncReport {
        self.examined += 1;
        let mut report = SyncReport::default();
        match settings {
            None => {
                if self.remove(&target) {
                    report.removed.push(target);
                }
            }
            Some(settings) => match self.tasks.get(&target) {
                Some(task) if *task.settings.borrow() == settings.sanitized() => {}
                Some(_) => {
                    self.insert(target.clone(), settings);
                    report.retimed.push(target);
                }
                None => {
                    self.insert(target.clone(), settings);
                    report.added.push(target);
                }
            },
        }
        report
    }

    /// How many targets `sync` and `set` have looked at since the scheduler was made: the
    /// work of keeping it up to date, which tests hold to the number of targets changed.
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// Starts probing `target` (or changes its settings if it is already probed).
    pub fn insert(&mut self, target: Target, settings: ProbeSettings) {
        let settings = settings.sanitized();
        if let Some(task) = self.tasks.get(&target) {
            if *task.settings.borrow() != settings {
                task.settings.send_replace(settings);
            }
            return;
        }
        let interval_ns = u64::try_from(settings.interval.as_nanos()).unwrap_or(u64::MAX);
        let first = Instant::now() + Duration::from_nanos(self.rng.below(interval_ns));
        let (settings_tx, settings_rx) = watch::channel(settings);
        let handle = tokio::spawn(run_target(
            self.prober.clone(),
            target.clone(),
            settings_rx,
            first,
            self.samples.clone(),
        ));
        self.tasks.insert(
            target,
            Task {
                settings: settings_tx,
                handle,
            },
        );
    }

    /// Stops probing `target`; false if it was not probed.
    pub fn remove(&mut self, target: &Target) -> bool {
        match self.tasks.remove(target) {
            Some(task) => {
                task.handle.abort();
                true
            }
            None => false,
        }
    }

    /// The probed targets and their settings.
    pub fn targets(&self) -> Vec<(Target, ProbeSettings)> {
        let mut all: Vec<_> = self
            .tasks
            .iter()
            .map(|(t, task)| (t.clone(), *task.settings.borrow()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl<P: Prober> Drop for ProbeScheduler<P> {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.handle.abort();
        }
    }
}

/// The first tick on the grid `tick + k × interval` (k ≥ 1) that is not before `now`.
fn next_tick(tick: Instant, interval: Duration, now: Instant) -> Instant {
    let next = tick + interval;
    if next >= now {
        return next;
    }
    let behind = (now - next).as_nanos();
    let step = interval.as_nanos().max(1);
    let k = behind.div_ceil(step);
    next + Duration::from_nanos((k * step).min(u64::MAX as u128) as u64)
}

async fn run_target<P: Prober>(
    prober: Arc<P>,
    target: Target,
    mut settings: watch::Receiver<ProbeSettings>,
    first: Instant,
    samples: mpsc::Sender<Sample>,
) {
    // `last` is the grid tick the latest probe started on.
    let mut last = first;
    // The task's one timer, reset rather than made anew: it waits for each tick and, for
    // probers that do not bound themselves, cuts the probe off at its deadline.
    let timer = sleep_until(first);
    tokio::pin!(timer);
    timer.as_mut().await;
    loop {
        let current = *settings.borrow_and_update();
        let started = Instant::now();
        let deadline = started + current.timeout;
        // Boxed, so the task is small while it waits for its tick (nearly all the time, for
        // every target) and a probe's state exists only while the probe runs.
        let probe = Box::pin(prober.probe(&target, current.timeout, deadline));
        let result = if prober.enforces_deadline() {
            probe.await
        } else {
            // A backstop for probers that do not enforce the deadline. The probe is polled
            // first, so a probe that reports its own timeout at the deadline wins.
            timer.as_mut().reset(deadline);
            tokio::select! {
                biased;
                result = probe => result,
                _ = timer.as_mut() => Err(ProbeError::Timeout {
                    timeout: current.timeout,
                    phase: Phase::Unknown,
                }),
            }
        };
        let sample = Sample {
            target: target.clone(),
            result,
            started,
            latency: started.elapsed(),
        };
        if samples.send(sample).await.is_err() {
            return;
        }
        let mut tick = next_tick(last, current.interval, Instant::now());
        timer.as_mut().reset(tick);
        loop {
            tokio::select! {
                _ = timer.as_mut() => break,
                changed = settings.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let interval = settings.borrow().interval;
                    tick = next_tick(last, interval, Instant::now());
                    timer.as_mut().reset(tick);
                }
            }
        }
        last = tick;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::scripted::{Script, ScriptedProber};
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::time::timeout_at;

    fn target(n: u8) -> Target {
        Target::litmus(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), 9292, "/s").unwrap()
    }

    fn every(interval_ms: u64, timeout_ms: u64) -> ProbeSettings {
        ProbeSettings {
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    /// Collects the samples that arrive until `until`.
    async fn collect(rx: &mut mpsc::Receiver<Sample>, until: Instant) -> Vec<Sample> {
        let mut out = Vec::new();
        while let Ok(Some(s)) = timeout_at(until, rx.recv()).await {
            out.push(s);
        }
        out
    }

    #[test]
    fn next_tick_skips_missed_ticks() {
        let t0 = Instant::now();
        let s = Duration::from_secs(2);
        assert_eq!(next_tick(t0, s, t0 + Duration::from_secs(1)), t0 + s);
        assert_eq!(next_tick(t0, s, t0 + s), t0 + s);
        assert_eq!(
            next_tick(t0, s, t0 + Duration::from_millis(2001)),
            t0 + 2 * s
        );
        assert_eq!(next_tick(t0, s, t0 + Duration::from_secs(7)), t0 + 4 * s);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_target_does_not_delay_its_neighbours() {
        let prober = ScriptedProber::new();
        let (hung, fine) = (target(1), target(2));
        prober.set(&hung, Script::Hang);
        let (tx, mut rx) = mpsc::channel(64);
        let mut sched = ProbeScheduler::with_seed(prober.clone(), tx, 1);
        sched.sync([
            (hung.clone(), every(2000, 1500)),
            (fine.clone(), every(2000, 1500)),
        ]);
        let t0 = Instant::now();
        let samples = collect(&mut rx, t0 + Duration::from_secs(20)).await;

        let fine_starts = prober.starts_of(&fine);
        assert_eq!(fine_starts.len(), 10, "one probe per 2 s tick for 20 s");
        for pair in fine_starts.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                Duration::from_secs(2),
                "on the grid, unaffected"
            );
        }
        let fine_samples: Vec<_> = samples.iter().filter(|s| s.target == fine).collect();
        assert!(fine_samples
            .iter()
            .all(|s| s.result == Ok(100) && s.latency.is_zero()));

        let hung_samples: Vec<_> = samples.iter().filter(|s| s.target == hung).collect();
        assert!(hung_samples.len() >= 9, "{}", hung_samples.len());
        for s in &hung_samples {
            assert_eq!(s.latency, Duration::from_millis(1500));
            assert_eq!(
                s.result,
                Err(ProbeError::Timeout {
                    timeout: Duration::from_millis(1500),
                    phase: Phase::Unknown
                })
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_probe_delays_only_itself_and_never_overlaps() {
        let prober = ScriptedProber::new();
        let slow = target(1);
        // Takes 3 s with a 2 s interval and a 5 s timeout: every other tick is skipped.
        prober.set(
            &slow,
            Script::Answer {
                result: Ok(40),
                after: Duration::from_secs(3),
            },
        );
        let (tx, mut rx) = mpsc::channel(64);
        let mut sched = ProbeScheduler::with_seed(prober.clone(), tx, 2);
        sched.insert(slow.clone(), every(2000, 5000));
        let samples = collect(&mut rx, Instant::now() + Duration::from_secs(40)).await;
        let starts = prober.starts_of(&slow);
        assert!(starts.len() >= 9, "{}", starts.len());
        for pair in starts.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                Duration::from_secs(4),
                "next free tick after finishing"
            );
        }
        assert_eq!(prober.max_in_flight_per_target(), 1);
        assert!(samples
            .iter()
            .all(|s| s.result == Ok(40) && s.latency == Duration::from_secs(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn shared_targets_get_one_probe() {
        let prober = ScriptedProber::new();
        let (tx, mut rx) = mpsc::channel(64);
        let mut sched = ProbeScheduler::with_seed(prober.clone(), tx, 3);
        // Three clusters list the same target with different settings, one lists another.
        let report = sched.sync([
            (target(1), every(2000, 1000)),
            (target(1), every(5000, 500)),
            (target(1), every(3000, 1500)),
            (target(2), every(2000, 1000)),
        ]);
        assert_eq!(report.added, vec![target(1), target(2)]);
        assert_eq!(sched.len(), 2);
        assert_eq!(
            sched.targets()[0].1,
            every(2000, 500),
            "shortest interval and timeout"
        );
        collect(&mut rx, Instant::now() + Duration::from_secs(10)).await;
        assert_eq!(prober.starts_of(&target(1)).len(), 5);
        assert_eq!(prober.max_in_flight_per_target(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_first_probes_over_the_interval() {
        let prober = ScriptedProber::new();
        let (tx, mut rx) = mpsc::channel(1024);
        let mut sched = ProbeScheduler::with_seed(prober.clone(), tx, 4);
        let t0 = Instant::now();
        sched.sync((1..=200).map(|n| (target(n), every(2000, 1000))));
        collect(&mut rx, t0 + Duration::from_millis(2500)).await;
        let mut first: HashMap<Target, Duration> = HashMap::new();
        for (t, at) in prober.starts() {
            first.entry(t).or_insert(at - t0);
        }
        let offsets: Vec<Duration> = first.into_values().collect();
        assert_eq!(offsets.len(), 200);
        assert!(
            offsets.iter().all(|o| *o < Duration::from_secs(2)),
            "within one interval"
        );
        // 200 uniform offsets: every 250 ms slice of the 2 s interval has some, none has most.
        for slice in 0..8u64 {
            let lo = Duration::from_millis(slice * 250);
            let hi = lo + Duration::from_millis(250);
            let n = offsets.iter().filter(|o| **o >= lo && **o < hi).count();
            assert!((5..=60).contains(&n), "slice {slice}: {n} starts");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn targets_come_and_go_at_runtime() {
        let prober = ScriptedProber::new();
        let (tx, mut rx) = mpsc::channel(64);
        let mut sched = ProbeScheduler::with_seed(prober.clone(), tx, 5);
        sched.sync([(target(1), every(1000, 500))]);
        collect(&mut rx, Instant::now() + Duration::from_secs(5)).await;
        let report = sched.sync([(target(2), every(1000, 500))]);
        assert_eq!(
            (report.added, report.removed),
            (vec![target(2)], vec![target(1)])
        );
        let before = prober.starts_of(&target(1)).len();
        let after_sync = collect(&mut rx, Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(
            prober.starts_of(&target(1)).len(),
            before,
            "removed target not probed"
        );
        assert!(after_sync.iter().all(|s| s.target == target(2)));
        assert!(after_sync.len() >= 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_interval_applies_from_the_next_tick() {
        let prober = ScriptedProber::new();
        let (tx, mut rx) = mpsc::channel(64);
        let mut sched = ProbeScheduler::with_seed(prober.clone(), tx, 6);
        sched.insert(target(1), every(60_000, 1000));
        collect(&mut rx, Instant::now() + Duration::from_secs(61)).await;
        assert_eq!(prober.starts_of(&target(1)).len(), 1);
        let report = sched.sync([(target(1), every(1000, 500))]);
        assert_eq!(report.retimed, vec![target(1)]);
        collect(&mut rx, Instant::now() + Duration::from_secs(10)).await;
        let starts = prober.starts_of(&target(1));
        assert!(starts.len() >= 10, "{}", starts.len());
        assert_eq!(
            starts[starts.len() - 1] - starts[starts.len() - 2],
            Duration::from_secs(1)
        );
    }
}
