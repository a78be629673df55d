//! What the daemon shows about itself: per cluster (running, combined weight, nodes with
//! the weight bigbro wants, the weight the kernel holds and the policy's view, remote nodes,
//! downpage, active node, last errors) and for the daemon as a whole (kernel access, last
//! pass, mark rules, sync daemon, reloads). These are the answers of [`super::Handle`]'s
//! queries, shaped to serialize to JSON as they are.
//!
//! A cluster's status has two parts, each with one writer, side by side and never merged:
//! [`ClusterState`], which [`cluster_status`] builds from the controller's state and the
//! reconciler's last reading when the controller publishes (`src/daemon/controller.rs`),
//! and the weight policy's [`ClusterSnapshot`], read from the weight driver when a query is
//! answered (`src/weight/driver.rs`). No fact is in both: weights and the kernel come only
//! from the first, probes, streaks, ages and overrides only from the second.
//!
//! Plain data: building or reading a status never changes anything.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{BackendMode, Cluster, Scheduler};
use crate::desired::ClusterKeys;
use crate::desired::{self, Running, Weights};
use crate::ipvs::{self, DestEntry, ServiceKey};
use crate::reconcile::{Observed, VipsReport};
use crate::types::{ClusterName, Fwmark, Weight};
use crate::weight::{ClusterSnapshot, NodeSnapshot};

/// One cluster as a query answers it: the controller's part and the weight policy's part.
///
/// The policy's part is read from the weight driver when the query is answered, not
/// published with the controller's: it changes with every probe and every override
/// (which do not go through the controller), and its ages are relative to the moment it
/// is read. So it is never staler than the query, and a probe costs nothing here.
///
/// Derefs to [`ClusterState`] so the controller's facts read as fields
/// (`status.running`); the policy's are in [`ClusterStatus::policy`] and
/// [`ClusterStatus::nodes`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterStatus {
    #[serde(flatten)]
    pub state: ClusterState,
    /// The weight policy's view (overrides, files, every node's health, streaks, ramp,
    /// last probe); None while the cluster is stopped.
    pub policy: Option<ClusterSnapshot>,
}

impl ClusterStatus {
    /// Puts the controller's `state` and the policy's view of the cluster side by side;
    /// the view is dropped while the cluster is stopped (the driver may not have forgotten
    /// it yet).
    pub fn new(state: ClusterState, policy: Option<ClusterSnapshot>) -> ClusterStatus {
        let policy = policy.filter(|_| state.running);
        ClusterStatus { state, policy }
    }

    /// The policy's view of the node at `address`; None while the cluster is stopped.
    pub fn node_policy(&self, address: IpAddr) -> Option<&NodeSnapshot> {
        let nodes = &self.policy.as_ref()?.nodes;
        // In address order (`ClusterSnapshot::nodes`): a page of n nodes stays O(n log n).
        let i = nodes.binary_search_by_key(&address, |n| n.addr).ok()?;
        nodes.get(i)
    }

    /// The local nodes in configuration order, each with the policy's view of it.
    pub fn nodes(&self) -> impl Iterator<Item = (&NodeStatus, Option<&NodeSnapshot>)> {
        self.state
            .nodes
            .iter()
            .map(|n| (n, self.node_policy(n.address)))
    }
}

impl std::ops::Deref for ClusterStatus {
    type Target = ClusterState;
    fn deref(&self) -> &ClusterState {
        &self.state
    }
}

/// One cluster as the controller publishes it after a pass, command or reload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterState {
    pub name: ClusterName,
    pub fwmark: Fwmark,
    /// The relay service's fwmark (`fwmark + offset`), when the cluster is multi-datacenter.
    pub relay_fwmark: Option<Fwmark>,
    pub scheduler: Scheduler,
    pub backend_mode: BackendMode,
    /// big_brother's `Running:`: whether bigbro runs (monitors) the cluster.
    pub running: bool,
    /// big_brother's `CombinedWeight:`: the sum of the local nodes' weights (0 when the
    /// cluster is stopped). Remote nodes and the downpage are not counted.
    pub combined_weight: u64,
    /// Local nodes, in configuration order.
    pub nodes: Vec<NodeStatus>,
    /// Remote load balancers learned from interpol (main fwmark only).
    pub remote_nodes: Vec<RemoteNodeStatus>,
    /// The downpage real server, when the cluster has one.
    pub downpage: Option<DownpageStatus>,
    /// active_passive: the node that is in IPVS.
    pub active_node: Option<IpAddr>,
    /// The main service as the last dump found it (None: absent, or not dumped yet).
    pub kernel: Option<KernelService>,
    /// The relay service as the last dump found it.
    pub relay_kernel: Option<KernelService>,
    /// What failed in the last reconciliation of this cluster's services (kernel errors,
    /// each naming the operation); empty when it is as wanted.
    pub errors: Vec<String>,
}

/// One local node of a cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeStatus {
    pub address: IpAddr,
    /// Health-check port.
    pub port: u16,
    /// Health-check path.
    pub path: String,
    pub priority: i64,
    /// The weight bigbro wants for it (0 while the cluster is stopped).
    pub weight: Weight,
    /// Whether bigbro wants it in IPVS (false for an active_passive cluster's passive
    /// nodes and while the cluster is stopped).
    pub in_ipvs: bool,
    /// The node's destination in the main service, as the last dump found it.
    pub kernel: Option<KernelDest>,
}

impl NodeStatus {
    /// The weight the kernel holds, from the last dump.
    pub fn kernel_weight(&self) -> Option<u32> {
        self.kernel.as_ref().map(|d| d.weight)
    }
}

/// A remote load balancer (interpol).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemoteNodeStatus {
    pub address: IpAddr,
    /// interpol's `health`, or 0 while it is missing from interpol's answers.
    pub weight: Weight,
    /// Consecutive polls it was missing from (reset when it comes back).
    pub down_ticks: u32,
    /// interpol's `lb_source_location`.
    pub location: Option<String>,
}

/// A cluster's downpage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownpageStatus {
    pub address: IpAddr,
    /// Whether bigbro wants it in IPVS now (the cluster runs with a total weight of 0).
    pub active: bool,
}

/// A service as dumped from the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelService {
    /// `FWM 7`.
    pub service: String,
    pub scheduler: String,
    pub dests: Vec<KernelDest>,
}

/// A destination as dumped from the kernel, with its counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelDest {
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
    /// ipvsadm's forwarding switch (`-i`, `-g`, `-m`).
    pub forward: &'static str,
    pub active_conns: u32,
    pub inactive_conns: u32,
    /// Connections, packets and bytes since the destination was added.
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl KernelService {
    pub fn from_observed(o: &Observed) -> KernelService {
        KernelService {
            service: ipvs::op::service_label(&o.service.service.key),
            scheduler: o.service.service.scheduler.clone(),
            dests: o.dests.iter().map(KernelDest::from_entry).collect(),
        }
    }

    /// The destination at `address`.
    pub fn dest(&self, address: IpAddr) -> Option<&KernelDest> {
        self.dests.iter().find(|d| d.address == address)
    }
}

impl KernelDest {
    pub fn from_entry(d: &DestEntry) -> KernelDest {
        KernelDest {
            address: d.dest.addr,
            port: d.dest.port,
            weight: d.dest.weight,
            forward: ipvs::save::forward_switch(d.dest.forward),
            active_conns: d.active_conns,
            inactive_conns: d.inactive_conns,
            conns: d.stats.conns,
            inpkts: d.stats.inpkts,
            outpkts: d.stats.outpkts,
            inbytes: d.stats.inbytes,
            outbytes: d.stats.outbytes,
        }
    }
}

/// One line of big_brother's `GET /` listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterSummary {
    pub name: ClusterName,
    pub fwmark: Fwmark,
    pub running: bool,
    pub combined_weight: u64,
}

/// The daemon as a whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DaemonStatus {
    /// The configuration file, as given on the command line.
    pub config_path: PathBuf,
    /// Whether the running clusters have been taken over from the kernel yet. Until then
    /// nothing is written to IPVS (a failed first dump must not look like "nothing runs").
    pub adopted: bool,
    /// Why the kernel cannot be read or written, when it cannot (IPVS missing, no
    /// permission...).
    pub kernel_error: Option<String>,
    /// The last reconciliation pass.
    pub last_pass: Option<PassStatus>,
    /// The nf_tables mark rules.
    pub marks: MarksStatus,
    /// The VIP addresses on bigbro's interface.
    pub vips: VipsStatus,
    /// What went wrong with the IPVS sync daemon, if anything.
    pub sync_daemon_error: Option<String>,
    pub reload: ReloadStatus,
}

/// One reconciliation pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PassStatus {
    /// Unix time (seconds) it finished.
    pub at_unix: f64,
    pub duration_seconds: f64,
    /// What caused it.
    pub trigger: Trigger,
    /// Operations applied.
    pub applied: usize,
    /// Every error, each naming the operation.
    pub errors: Vec<String>,
    /// Whether it read every owned service (after a command, for anti-entropy, after a
    /// failed read) or only the services whose desired state had changed.
    pub full: bool,
    /// How many owned services it read and compared.
    pub services: usize,
}

/// What caused a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A start, stop, synchronize or reload.
    #[default]
    Command,
    /// Weights changed.
    Weights,
    /// interpol's answer changed the remote nodes.
    Remote,
    /// The periodic comparison that repairs hand edits.
    AntiEntropy,
    /// A retry after a failed pass.
    Retry,
    /// A draining destination's time is up.
    Drain,
}

impl Trigger {
    pub const ALL: [Trigger; 6] = [
        Trigger::Command,
        Trigger::Weights,
        Trigger::Remote,
        Trigger::AntiEntropy,
        Trigger::Retry,
        Trigger::Drain,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Command => "command",
            Trigger::Weights => "weights",
            Trigger::Remote => "remote",
            Trigger::AntiEntropy => "anti_entropy",
            Trigger::Retry => "retry",
            Trigger::Drain => "drain",
        }
    }
}

/// bigbro's nf_tables mark rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MarksStatus {
    /// How many rules the running clusters want.
    pub wanted: usize,
    /// Whether the kernel held exactly them at the last check.
    pub in_sync: bool,
    /// How the kernel differed at the last check, before repair.
    pub differences: Vec<String>,
    /// The last error reading or writing them.
    pub error: Option<String>,
}

/// The VIP addresses on bigbro's interface, as the last VIP pass left them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VipsStatus {
    /// Whether bigbro manages VIP addresses (some cluster has vips with `vip_mode:
    /// address`); when not, the rest is empty and no interface was touched.
    pub managed: bool,
    /// The interface (`bigbro.vip_interface`).
    pub interface: Option<String>,
    /// The addresses the running clusters want there.
    pub wanted: Vec<IpAddr>,
    /// The VIPs on the interface after the last pass (empty when it could not be read).
    pub present: Vec<IpAddr>,
    /// Whether the interface held exactly the wanted addresses (conflicts aside) and the
    /// pass had no error.
    pub in_sync: bool,
    /// Wanted VIPs bigbro left alone, each saying why (already a local address elsewhere).
    pub conflicts: Vec<String>,
    /// The last pass's route netlink errors, each naming the operation and the object.
    pub errors: Vec<String>,
}

impl VipsStatus {
    pub fn of(report: &VipsReport) -> VipsStatus {
        VipsStatus {
            managed: true,
            interface: Some(report.interface.clone()),
            wanted: report.wanted.iter().copied().collect(),
            present: report.present.iter().flatten().copied().collect(),
            in_sync: report.in_sync(),
            conflicts: report.conflicts.iter().map(ToString::to_string).collect(),
            errors: report.failures.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Configuration reloads.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReloadStatus {
    /// Unix time of the last successful load (the first load counts).
    pub last_success_unix: Option<f64>,
    /// Unix time of the last refused reload.
    pub last_failure_unix: Option<f64>,
    /// Why the last reload was refused: every configuration error, one per line. Empty
    /// once a reload succeeds.
    pub last_errors: Vec<String>,
}

/// The status of `c`: running when `run` is given, with the weights the daemon programs,
/// and its services as the reconciler last read them (`observed`) with the errors of its
/// last pass (`errors`, by service; those under no key concern every cluster).
pub fn cluster_status(
    c: &Cluster,
    run: Option<&Running>,
    weights: &Weights,
    observed: &BTreeMap<ServiceKey, Observed>,
    errors: &BTreeMap<Option<ServiceKey>, Vec<String>>,
) -> ClusterState {
    let kernel = observed
        .get(&c.service_key())
        .map(KernelService::from_observed);
    let relay_kernel = c
        .relay_service_key()
        .and_then(|k| observed.get(&k))
        .map(KernelService::from_observed);
    let weight = |addr| match run {
        Some(_) => desired::weight_of(weights, c, addr),
        None => Weight::ZERO,
    };
    let nodes = c
        .nodes
        .iter()
        .map(|n| NodeStatus {
            address: n.address,
            port: n.port,
            path: n.path.clone(),
            priority: n.priority,
            weight: weight(n.address),
            in_ipvs: run.is_some_and(|r| !c.is_active_passive() || r.active == Some(n.address)),
            kernel: kernel.as_ref().and_then(|k| k.dest(n.address)).cloned(),
        })
        .collect();
    let remote_nodes = run
        .map(|r| {
            r.remote
                .iter()
                .map(|(a, rem)| RemoteNodeStatus {
                    address: *a,
                    weight: rem.weight,
                    down_ticks: rem.down_ticks,
                    location: rem.location.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut own_errors: Vec<String> = Vec::new();
    if run.is_some() {
        for key in std::iter::once(Some(c.service_key()))
            .chain(std::iter::once(c.relay_service_key()).filter(Option::is_some))
            .chain(std::iter::once(None))
        {
            own_errors.extend(errors.get(&key).into_iter().flatten().cloned());
        }
    }
    ClusterState {
        name: c.name.clone(),
        fwmark: c.fwmark,
        relay_fwmark: c.relay_fwmark(),
        scheduler: c.scheduler,
        backend_mode: c.backend_mode,
        running: run.is_some(),
        combined_weight: run.map_or(0, |_| desired::combined_weight(weights, c)),
        nodes,
        remote_nodes,
        downpage: c.downpage.map(|address| DownpageStatus {
            address,
            active: run.is_some_and(|r| desired::downpage_wanted(c, r, weights)),
        }),
        active_node: run.and_then(|r| r.active).filter(|_| c.is_active_passive()),
        kernel,
        relay_kernel,
        errors: own_errors,
    }
}
