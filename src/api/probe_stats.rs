//! Probe measurements for `/metrics`: a latency histogram and failures by reason per probe
//! target, accumulated from the weight driver's stream of samples.
//!
//! It only counts what it is shown; it never probes, never blocks the driver (the stream
//! is a broadcast channel: a collector that falls behind skips samples, counting them) and
//! never grows beyond one entry per target.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use std::net::IpAddr;

use super::prom::{Histogram, LATENCY_BUCKETS};
use crate::health::{Sample, Target};

/// Probes of one target, as `/metrics` shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeCounters {
    /// The target as shown to people: `litmus http://10.0.0.1:9001/app/status`.
    pub target: String,
    pub address: IpAddr,
    pub port: u16,
    /// Probe durations, failed ones included.
    pub latency: Histogram,
    /// Failed probes by reason code (`timeout`, `refused`, `status`...).
    pub failures: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default)]
struct PerTarget {
    latency: Option<Histogram>,
    failures: BTreeMap<String, u64>,
}

/// Accumulated probe measurements.
#[derive(Clone, Debug, Default)]
pub struct ProbeStats {
    targets: BTreeMap<Target, PerTarget>,
    /// Samples the collector missed because it fell behind.
    pub missed: u64,
}

impl ProbeStats {
    pub fn record(&mut self, sample: &Sample) {
        let entry = self.targets.entry(sample.target.clone()).or_default();
        entry
            .latency
            .get_or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(sample.latency.as_secs_f64());
        if let Err(e) = &sample.result {
            *entry.failures.entry(e.code().to_string()).or_default() += 1;
        }
    }

    /// Drops targets no longer probed (after a reload removed their nodes).
    pub fn retain(&mut self, keep: impl Fn(&Target) -> bool) {
        self.targets.retain(|t, _| keep(t));
    }

    pub fn counters(&self) -> Vec<ProbeCounters> {
        self.targets
            .iter()
            .map(|(t, p)| ProbeCounters {
                target: t.to_string(),
                address: t.addr(),
                port: t.port(),
                latency: p
                    .latency
                    .clone()
                    .unwrap_or_else(|| Histogram::new(LATENCY_BUCKETS)),
                failures: p.failures.clone(),
            })
            .collect()
    }
}

/// Spawns a task that records every sample from `samples` into the returned stats; it
/// ends when the sender side closes.
pub fn collect(mut samples: broadcast::Receiver<Sample>) -> Arc<Mutex<ProbeStats>> {
    let stats = Arc::new(Mutex::new(ProbeStats::default()));
    let shared = stats.clone();
    tokio::spawn(async move {
        loop {
            match samples.recv().await {
                Ok(sample) => lock(&shared).record(&sample),
                Err(broadcast::error::RecvError::Lagged(n)) => lock(&shared).missed += n,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    stats
}

/// Locks the stats, recovering them if a holder panicked (counts stay usable).
pub fn lock(stats: &Mutex<ProbeStats>) -> std::sync::MutexGuard<'_, ProbeStats> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::ProbeError;
    use std::time::Duration;
    use tokio::time::Instant;

    fn sample(result: Result<u16, ProbeError>, ms: u64) -> Sample {
        Sample {
            target: Target::litmus("10.0.0.1".parse().unwrap(), 9001, "/status").unwrap(),
            result,
            started: Instant::now(),
            latency: Duration::from_millis(ms),
        }
    }

    #[tokio::test]
    async fn counts_latency_and_failures_by_reason() {
        let (tx, rx) = broadcast::channel(16);
        let stats = collect(rx);
        tx.send(sample(Ok(50), 3)).unwrap();
        tx.send(sample(Err(ProbeError::Refused), 1)).unwrap();
        tx.send(sample(Err(ProbeError::Refused), 1)).unwrap();
        tx.send(sample(Err(ProbeError::NoHealth), 20)).unwrap();
        drop(tx);
        // The collector ends when the channel closes; wait for it to have seen everything.
        while lock(&stats).counters().first().map(|c| c.latency.count()) != Some(4) {
            tokio::task::yield_now().await;
        }
        let c = &lock(&stats).counters()[0];
        assert_eq!(c.target, "litmus http://10.0.0.1:9001/status");
        assert_eq!(c.failures.get("refused"), Some(&2));
        assert_eq!(c.failures.get("no_health"), Some(&1));
        assert_eq!(c.failures.len(), 2);
        assert!((c.latency.sum() - 0.025).abs() < 1e-9);
    }
}
