//! What the HTTP API needs from the daemon, as one trait (`Backend`) and the plain views it
//! answers with. The daemon's handle implements it (`daemon_backend.rs`); route tests use a
//! test double. Keeping the seam this narrow lets every route be tested over a real socket
//! without a kernel, and keeps the API's wire formats independent of the daemon's internals.
//!
//! Nothing here does I/O or holds state; a view is a copy taken at one moment, so rendering
//! it can never change the daemon.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Model;
use crate::ipvs::Stats;
use crate::types::{ClusterName, Fwmark, Weight};
use crate::weight::{FileOverrides, Force, NodeSnapshot, OverrideView};

use super::prom::Histogram;

/// The daemon as the API sees it. Every method is a query or one command; none may block
/// the caller for long (the API bounds each call with a timeout anyway).
pub trait Backend: Clone + Send + Sync + 'static {
    /// Every configured cluster, in configuration order.
    fn clusters(&self) -> impl Future<Output = Result<Vec<ClusterView>, BackendError>> + Send;

    /// One cluster, or `None` when no cluster has that name. With `synchronize`, a stopped
    /// cluster whose service is in the kernel is adopted first (big_brother's
    /// `GET /cluster/NAME`).
    fn cluster(
        &self,
        name: ClusterName,
        synchronize: bool,
    ) -> impl Future<Output = Result<Option<ClusterView>, BackendError>> + Send;

    /// Starts a cluster (big_brother's `PUT /cluster/NAME`): adopt it if the kernel has it,
    /// else create it.
    fn start(
        &self,
        name: ClusterName,
    ) -> impl Future<Output = Result<StartOutcome, BackendError>> + Send;

    /// Stops a cluster (big_brother's `DELETE /cluster/NAME`): delete its services.
    fn stop(
        &self,
        name: ClusterName,
    ) -> impl Future<Output = Result<StopOutcome, BackendError>> + Send;

    /// Sets (`Some`) or clears (`None`) an override of a node or of a whole cluster.
    fn set_override(
        &self,
        scope: OverrideScope,
        request: Option<OverrideRequest>,
    ) -> impl Future<Output = Result<OverrideChange, OverrideError>> + Send;

    /// Reads the configuration file again and applies it, or refuses it with its errors
    /// and keeps running the old one.
    fn reload(&self) -> impl Future<Output = Result<ReloadOutcome, BackendError>> + Send;

    /// The configuration being run.
    fn config(&self) -> impl Future<Output = Result<Arc<Model>, BackendError>> + Send;

    /// Everything `/metrics` shows beyond the cluster views.
    fn counters(&self) -> impl Future<Output = Result<Counters, BackendError>> + Send;
}

/// The daemon could not answer: shown as big_brother's 500 `Application error` on the
/// legacy routes and as a JSON 500 (or 503 when it is only busy) under `/api/v1`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    pub message: String,
}

impl BackendError {
    pub fn new(message: impl Into<String>) -> BackendError {
        BackendError {
            message: message.into(),
        }
    }
}

/// One cluster at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterView {
    pub name: ClusterName,
    pub fwmark: Fwmark,
    /// big_brother's "monitored": bigbro keeps the cluster's service in the kernel.
    pub running: bool,
    /// The IPVS scheduler (`wrr`, `wlc`...).
    pub scheduler: String,
    /// `active_active` or `active_passive`.
    pub backend_mode: String,
    /// big_brother's up/down override files.
    pub files: FileOverrides,
    /// The cluster-wide override, if any.
    pub over: Option<OverrideView>,
    /// Local nodes in configuration order (remote interpol nodes are not listed, as in
    /// big_brother's `status_detail`).
    pub nodes: Vec<NodeView>,
    /// Kernel operations for this cluster that failed in the last reconcile pass.
    pub errors: Vec<String>,
}

impl ClusterView {
    /// big_brother's CombinedWeight: the sum of the local nodes' weights while the cluster
    /// runs, 0 while it is stopped (big_brother zeroed them on stop).
    pub fn combined_weight(&self) -> u64 {
        if !self.running {
            return 0;
        }
        self.nodes
            .iter()
            .map(|n| u64::from(n.snapshot.weight.get()))
            .sum()
    }

    pub fn node(&self, addr: IpAddr) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.snapshot.addr == addr)
    }
}

/// One node: the weight policy's view plus what the kernel has.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    pub snapshot: NodeSnapshot,
    /// The weight in the kernel at the last reconcile pass; `None` when the node is not
    /// in IPVS (cluster stopped, passive node, not yet added).
    pub kernel_weight: Option<Weight>,
}

/// big_brother's outcomes of `PUT /cluster/NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// 200 `OK`.
    Started,
    /// 304: running already (or adopted from the kernel just now).
    AlreadyRunning,
    /// 404 `Cluster NAME not found`.
    NotFound,
}

/// big_brother's outcomes of `DELETE /cluster/NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// 200 `OK`.
    Stopped,
    /// 304: not running.
    NotRunning,
    /// 404.
    NotFound,
}

/// What an override applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverrideScope {
    Cluster(ClusterName),
    Node(ClusterName, IpAddr),
}

/// An override as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideRequest {
    pub force: Force,
    /// Why, for the people who will wonder (required, shown in the API and logs).
    pub reason: String,
    /// When to lift it by itself; `None`: until cleared.
    pub ttl: Option<Duration>,
}

/// The override before and after a change.
#[derive(Clone, Debug, PartialEq)]
pub struct OverrideChange {
    /// The override it replaced or cleared, if there was one.
    pub previous: Option<OverrideView>,
    /// The override now in force (`None` after a clear).
    pub current: Option<OverrideView>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("no cluster is named {0:?}")]
    UnknownCluster(String),
    #[error("cluster {cluster:?} has no node {node}")]
    UnknownNode { cluster: String, node: IpAddr },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The result of a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new configuration runs now.
    Applied { clusters: usize },
    /// The file was refused; the old configuration keeps running. Each error names the
    /// file, line and key.
    Refused { errors: Vec<String> },
}

/// Counters and measurements for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub reconcile: ReconcileCounters,
    pub reload: ReloadCounters,
    /// One entry per probe target.
    pub probes: Vec<ProbeCounters>,
    /// Per IPVS destination of the owned services, from the last dump.
    pub dests: Vec<DestCounters>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReconcileCounters {
    /// Passes run (each: dump, diff, apply).
    pub passes: u64,
    /// Passes that ended with operations still failing or an unreadable kernel.
    pub failed_passes: u64,
    /// Duration of each pass.
    pub duration: Histogram,
    /// Operations the kernel accepted, by kind (`add_service`, `edit_dest`...).
    pub operations: BTreeMap<String, u64>,
    /// Kernel errors, by kind (`exists`, `permission`, `not_available`...).
    pub kernel_errors: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReloadCounters {
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused (invalid file; the old configuration kept running).
    pub refused: u64,
    /// Whether the last reload was applied; `None` before the first reload.
    pub last_ok: Option<bool>,
    /// When the last reload was attempted, in seconds since the Unix epoch.
    pub last_unix: Option<f64>,
    /// When the configuration now running was loaded (start or reload), Unix seconds.
    pub loaded_unix: Option<f64>,
}

/// Probes of one target.
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

/// One IPVS destination's kernel counters.
#[derive(Clone, Debug, PartialEq)]
pub struct DestCounters {
    /// The cluster whose service holds it (`None` for a relay service).
    pub cluster: Option<ClusterName>,
    pub fwmark: Fwmark,
    pub address: IpAddr,
    pub port: u16,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub stats: Stats,
}
