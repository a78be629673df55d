//! The daemon's counters for `/metrics`: reconciliation passes (by trigger) and their
//! duration, IPVS operations applied (by kind) and kernel errors (by kind), repairs of hand
//! edits, mark-rule writes, VIP address changes, configuration reloads, nagios and
//! interpol activity.
//!
//! The controller is the only writer; readers get a copy ([`MetricsSnapshot`]). Counters
//! only ever go up (Prometheus counters), except the gauges named as such. Recording never
//! blocks on I/O and never fails.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::status::Trigger;
use crate::ipvs::{self, Op};

/// Upper bounds (seconds) of the pass-duration histogram buckets; the last, implicit
/// bucket is +Inf.
pub const PASS_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The counters, as read.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Passes by trigger (`command`, `weights`, `remote`, `anti_entropy`, `retry`).
    pub passes: BTreeMap<&'static str, u64>,
    /// Pass durations: cumulative counts per bucket of [`PASS_BUCKETS`] (Prometheus `le`
    /// semantics), then the count and sum of all.
    pub pass_duration_buckets: [u64; PASS_BUCKETS.len()],
    pub pass_duration_count: u64,
    pub pass_duration_sum_seconds: f64,
    /// IPVS operations the kernel accepted, by kind (`add_service`, `edit_dest`...).
    pub ops: BTreeMap<&'static str, u64>,
    /// Kernel errors by kind of operation (`add_dest`..., `dump` for failed reads).
    pub kernel_errors: BTreeMap<&'static str, u64>,
    /// Operations applied by anti-entropy passes: repairs of changes made behind bigbro's
    /// back.
    pub repairs: u64,
    /// Times the mark rules were (re)written, and failures reading or writing them.
    pub mark_writes: u64,
    pub mark_errors: u64,
    /// VIP address changes the kernel accepted, and route netlink failures (each change
    /// that failed, or a failed read of the interface or addresses).
    pub vip_ops: u64,
    pub vip_errors: u64,
    pub reload_success: u64,
    pub reload_failure: u64,
    /// Gauge: unix time of the last successful configuration load.
    pub last_reload_success_unix: f64,
    /// Gauge: 1 if the last reload attempt succeeded (the first load counts), else 0.
    pub last_reload_ok: bool,
    pub nagios_sent: u64,
    pub nagios_failed: u64,
    pub interpol_polls: u64,
    pub interpol_failures: u64,
}

/// Shared between the controller (writer) and handles (readers).
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<MetricsSnapshot>>,
}

/// The label of an op's kind.
pub fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::AddService(_) => "add_service",
        Op::EditService(_) => "edit_service",
        Op::DelService(_) => "del_service",
        Op::AddDest { .. } => "add_dest",
        Op::EditDest { .. } => "edit_dest",
        Op::DelDest { .. } => "del_dest",
        Op::Zero(_) => "zero",
        Op::Flush => "flush",
        Op::SetTimeouts(_) => "set_timeouts",
        Op::StartDaemon(_) => "start_daemon",
        Op::StopDaemon(_) => "stop_daemon",
    }
}

/// The label of a kernel error's kind: the op that failed, or `dump` for reads.
pub fn error_kind(e: &ipvs::Error) -> &'static str {
    match e.operation() {
        ipvs::Operation::Apply(op) => op_kind(op),
        ipvs::Operation::Connect => "connect",
        _ => "dump",
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MetricsSnapshot> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One pass: its trigger, duration, applied ops and errors.
    pub fn pass(&self, trigger: Trigger, took: Duration, applied: &[Op], errors: &[&ipvs::Error]) {
        let mut m = self.lock();
        *m.passes.entry(trigger.name()).or_default() += 1;
        let secs = took.as_secs_f64();
        for (i, bound) in PASS_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                m.pass_duration_buckets[i] += 1;
            }
        }
        m.pass_duration_count += 1;
        m.pass_duration_sum_seconds += secs;
        for op in applied {
            *m.ops.entry(op_kind(op)).or_default() += 1;
        }
        if trigger == Trigger::AntiEntropy {
            m.repairs += applied.len() as u64;
        }
        for e in errors {
            *m.kernel_errors.entry(error_kind(e)).or_default() += 1;
        }
    }

    /// Operations applied outside a pass (the sync daemon).
    pub fn ops(&self, applied: &[Op], errors: &[&ipvs::Error]) {
        let mut m = self.lock();
        for op in applied {
            *m.ops.entry(op_kind(op)).or_default() += 1;
        }
        for e in errors {
            *m.kernel_errors.entry(error_kind(e)).or_default() += 1;
        }
    }

    pub fn marks(&self, wrote: bool, failed: bool) {
        let mut m = self.lock();
        m.mark_writes += u64::from(wrote);
        m.mark_errors += u64::from(failed);
    }

    pub fn vips(&self, applied: &[crate::route::AddrOp], errors: &[&crate::route::Error]) {
        let mut m = self.lock();
        m.vip_ops += applied.len() as u64;
        m.vip_errors += errors.len() as u64;
    }

    pub fn reload(&self, ok: bool, at_unix: f64) {
        let mut m = self.lock();
        if ok {
            m.reload_success += 1;
            m.last_reload_success_unix = at_unix;
        } else {
            m.reload_failure += 1;
        }
        m.last_reload_ok = ok;
    }

    /// The first load at startup: not a reload, but it sets the gauges.
    pub fn loaded(&self, at_unix: f64) {
        let mut m = self.lock();
        m.last_reload_success_unix = at_unix;
        m.last_reload_ok = true;
    }

    pub fn nagios(&self, ok: bool) {
        let mut m = self.lock();
        if ok {
            m.nagios_sent += 1;
        } else {
            m.nagios_failed += 1;
        }
    }

    pub fn interpol(&self, ok: bool) {
        let mut m = self.lock();
        m.interpol_polls += 1;
        m.interpol_failures += u64::from(!ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{Service, ServiceKey};
    use crate::types::Fwmark;

    #[test]
    fn passes_ops_and_histogram() {
        let m = Metrics::new();
        let key = ServiceKey::fwmark_v4(Fwmark::new(7).unwrap());
        let ops = [
            Op::AddService(Service::new(key, "wrr")),
            Op::DelService(key),
        ];
        m.pass(Trigger::AntiEntropy, Duration::from_millis(20), &ops, &[]);
        m.pass(Trigger::Weights, Duration::from_secs(10), &[], &[]);
        let s = m.snapshot();
        assert_eq!(s.passes["anti_entropy"], 1);
        assert_eq!(s.passes["weights"], 1);
        assert_eq!(s.ops["add_service"], 1);
        assert_eq!(s.ops["del_service"], 1);
        assert_eq!(s.repairs, 2);
        // 20 ms is within 0.05 and above; 10 s only in +Inf.
        assert_eq!(s.pass_duration_buckets, [0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(s.pass_duration_count, 2);
        assert!((s.pass_duration_sum_seconds - 10.02).abs() < 1e-9);
    }

    #[test]
    fn reloads() {
        let m = Metrics::new();
        m.loaded(100.0);
        m.reload(false, 200.0);
        let s = m.snapshot();
        assert_eq!((s.reload_success, s.reload_failure), (0, 1));
        assert!(!s.last_reload_ok);
        assert_eq!(s.last_reload_success_unix, 100.0);
        m.reload(true, 300.0);
        let s = m.snapshot();
        assert!(s.last_reload_ok);
        assert_eq!(s.last_reload_success_unix, 300.0);
    }
}
