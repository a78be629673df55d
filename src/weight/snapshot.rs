//! Read-only views of the weight policy for the HTTP API, the status page and metrics:
//! per node its status and streaks, health, weight and why, ramp progress, last probe
//! (result, reason, latency) and override; per cluster its files and override.
//!
//! Times are given relative to the snapshot's `now` (seconds ago / seconds left), so the
//! views serialize to JSON as they are. Building a view must never change the policy.

use std::net::IpAddr;

use tokio::time::Instant;

use super::node::{Initial, NodeHealth, NodeParams, Source, Status};
use super::overrides::{FileOverrides, Force, Override};
use super::policy::NodeKey;
use crate::health::Target;
use crate::types::{ClusterName, Weight};

/// The whole policy.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PolicySnapshot {
    pub clusters: Vec<ClusterSnapshot>,
}

impl PolicySnapshot {
    pub fn cluster(&self, name: &str) -> Option<&ClusterSnapshot> {
        self.clusters.iter().find(|c| c.name.as_str() == name)
    }
    pub fn node(&self, cluster: &str, addr: IpAddr) -> Option<&NodeSnapshot> {
        self.cluster(cluster)?.nodes.iter().find(|n| n.addr == addr)
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClusterSnapshot {
    pub name: ClusterName,
    pub files: FileOverrides,
    #[serde(rename = "override")]
    pub over: Option<OverrideView>,
    /// In address order (the status finds a node's view by binary search).
    pub nodes: Vec<NodeSnapshot>,
}

impl ClusterSnapshot {
    pub(super) fn new(
        name: &ClusterName,
        files: FileOverrides,
        over: Option<&Override>,
        nodes: Vec<NodeSnapshot>,
        now: Instant,
    ) -> ClusterSnapshot {
        ClusterSnapshot {
            name: name.clone(),
            files,
            over: over.map(|o| OverrideView::new(o, now)),
            nodes,
        }
    }

    /// Σ weights (big_brother's CombinedWeight).
    pub fn combined_weight(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.weight.get())).sum()
    }
}

/// An override as shown.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OverrideView {
    #[serde(flatten)]
    pub force: Force,
    pub reason: String,
    pub set_seconds_ago: f64,
    /// None: until cleared.
    pub expires_in_seconds: Option<f64>,
}

impl OverrideView {
    fn new(o: &Override, now: Instant) -> OverrideView {
        OverrideView {
            force: o.force,
            reason: o.reason.clone(),
            set_seconds_ago: now.saturating_duration_since(o.set_at).as_secs_f64(),
            expires_in_seconds: o
                .expires
                .map(|e| e.saturating_duration_since(now).as_secs_f64()),
        }
    }
}

/// The latest probe of a node.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProbeView {
    pub ok: bool,
    /// The health reported (also when it was 0).
    pub health: Option<u16>,
    /// Why the probe failed, for people.
    pub error: Option<String>,
    /// Why the probe failed, for machines (`timeout`, `refused`, `status`…).
    pub error_code: Option<&'static str>,
    pub latency_seconds: f64,
    pub seconds_ago: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NodeSnapshot {
    pub cluster: ClusterName,
    pub addr: IpAddr,
    pub target: Target,
    pub status: Status,
    /// How long the node has had this status.
    pub status_seconds: f64,
    /// Consecutive good probes (health > 0) / failed probes, and the thresholds.
    pub ok_streak: u32,
    pub fail_streak: u32,
    pub rise: u32,
    pub fall: u32,
    /// The health the weight is computed from (while up).
    pub health: Option<u16>,
    /// The current weight, and what decided it.
    pub weight: Weight,
    pub source: Source,
    /// 0.0 ..= 1.0 (1 when not ramping; 0 when not up).
    pub ramp_progress: f64,
    pub ramp_up_seconds: f64,
    pub max_weight: Option<Weight>,
    pub initial: Initial,
    pub last_probe: Option<ProbeView>,
    #[serde(rename = "override")]
    pub over: Option<OverrideView>,
}

impl NodeSnapshot {
    pub(super) fn new(
        key: &NodeKey,
        params: &NodeParams,
        health: &NodeHealth,
        (weight, source): (Weight, Source),
        over: Option<&Override>,
        now: Instant,
    ) -> NodeSnapshot {
        let last_probe = health.last().map(|p| ProbeView {
            ok: matches!(p.result, Ok(h) if h > 0),
            health: p.result.as_ref().ok().copied(),
            error: p.result.as_ref().err().map(|e| e.to_string()),
            error_code: p.result.as_ref().err().map(|e| e.code()),
            latency_seconds: p.latency.as_secs_f64(),
            seconds_ago: now.saturating_duration_since(p.at).as_secs_f64(),
        });
        NodeSnapshot {
            cluster: key.cluster.clone(),
            addr: key.addr,
            target: params.target.clone(),
            status: health.status(),
            status_seconds: now.saturating_duration_since(health.since()).as_secs_f64(),
            ok_streak: health.ok_streak(),
            fail_streak: health.fail_streak(),
            rise: params.rise.max(1),
            fall: params.fall.max(1),
            health: health.health(),
            weight,
            source,
            ramp_progress: health.ramp_progress(params, now),
            ramp_up_seconds: params.ramp_up_time.as_secs_f64(),
            max_weight: params.max_weight,
            initial: health.initial(),
            last_probe,
            over: over.map(|o| OverrideView::new(o, now)),
        }
    }
}
