//! The weight policy for every (cluster, node): node state machines, overrides and
//! big_brother's override files, turned into weights; a change is reported only when a
//! node's weight actually changes.
//!
//! Samples arrive per probe target and feed every node that uses that target (clusters
//! share probes). Evaluation is incremental: a sample, override or file change marks the
//! nodes it touches, `evaluate` recomputes only those (cheap at 10,000 nodes and thousands
//! of samples a second), `evaluate_all` recomputes everything (called on a timer, for ramps
//! and expiries). A node's "current weight" starts as its initial weight, the weight the
//! caller has put (or will put) in the kernel, so no change is reported for it.
//!
//! Pure: no clock (every method that needs the time takes `now`), no I/O, no kernel. It must
//! never report a change that is not one, nor lose a node's state when its cluster is
//! re-configured with that node still in it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use tokio::time::Instant;

use super::files::OverrideFiles;
use super::node::{Initial, NodeHealth, NodeParams, Source, Transition};
use super::overrides::{resolve, FileOverrides, Override};
use super::snapshot::{ClusterSnapshot, NodeSnapshot, PolicySnapshot};
use crate::health::{ProbeSettings, Sample, Target};
use crate::types::{ClusterName, Weight};

/// One real server of one cluster. IPVS keys fwmark destinations by address, so a node is
/// its address within its cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NodeKey {
    pub cluster: ClusterName,
    pub addr: IpAddr,
}

impl NodeKey {
    pub fn new(cluster: &ClusterName, addr: IpAddr) -> NodeKey {
        NodeKey {
            cluster: cluster.clone(),
            addr,
        }
    }
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} of cluster {}", self.addr, self.cluster)
    }
}

/// A node as configured, for `set_cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub addr: IpAddr,
    pub params: NodeParams,
    /// Used only if the node is new to the policy.
    pub initial: Initial,
}

/// A weight that changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WeightChange {
    pub key: NodeKey,
    pub from: Weight,
    pub to: Weight,
    pub source: Source,
}

/// Where an override applied.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Node(NodeKey),
    Cluster(ClusterName),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Node(key) => key.fmt(f),
            Scope::Cluster(name) => write!(f, "cluster {name}"),
        }
    }
}

/// What one evaluation produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub changes: Vec<WeightChange>,
    /// Overrides that reached their expiry and were removed.
    pub expired: Vec<(Scope, Override)>,
}

/// What `set_cluster` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClusterUpdate {
    pub added: Vec<NodeKey>,
    pub removed: Vec<NodeKey>,
    pub kept: Vec<NodeKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("cluster {0} is not known to the weight policy (is it in the configuration?)")]
    UnknownCluster(ClusterName),
    #[error("{0} is not configured")]
    UnknownNode(NodeKey),
    #[error("cluster {cluster} lists node {addr} twice; each address may appear once per cluster")]
    DuplicateNode { cluster: ClusterName, addr: IpAddr },
}

struct NodeEntry {
    params: NodeParams,
    health: NodeHealth,
    /// The current weight: last reported (or initial).
    weight: Weight,
    source: Source,
}

#[derive(Default)]
struct ClusterEntry {
    files: FileOverrides,
    over: Option<Override>,
    nodes: BTreeSet<IpAddr>,
}

/// Every node's weight state. See the module notes.
#[derive(Default)]
pub struct Policy {
    nodes: BTreeMap<NodeKey, NodeEntry>,
    clusters: BTreeMap<ClusterName, ClusterEntry>,
    node_overrides: BTreeMap<NodeKey, Override>,
    by_target: HashMap<Target, BTreeSet<NodeKey>>,
    dirty: BTreeSet<NodeKey>,
    /// Targets whose users or settings may have changed since `take_probe_changes`.
    probes_touched: BTreeSet<Target>,
}

impl Policy {
    pub fn new() -> Policy {
        Policy::default()
    }

    /// Makes `cluster`'s nodes exactly `nodes` (creating the cluster if needed). Nodes that
    /// stay keep their state, ramp and override and take the new parameters; new nodes
    /// start from their `initial`; nodes no longer listed are forgotten. Nothing changes if
    /// an address is listed twice.
    pub fn set_cluster(
        &mut self,
        cluster: &ClusterName,
        nodes: Vec<NodeSpec>,
        now: Instant,
    ) -> Result<ClusterUpdate, PolicyError> {
        let mut seen = BTreeSet::new();
        for spec in &nodes {
            if !seen.insert(spec.addr) {
                return Err(PolicyError::DuplicateNode {
                    cluster: cluster.clone(),
                    addr: spec.addr,
                });
            }
        }
        let old: BTreeSet<IpAddr> = self
            .clusters
            .get(cluster)
            .map(|c| c.nodes.clone())
            .unwrap_or_default();
        let mut update = ClusterUpdate::default();
        for addr in old.difference(&seen) {
            let key = NodeKey::new(cluster, *addr);
            self.forget(&key);
            update.removed.push(key);
        }
        for spec in nodes {
            let key = NodeKey::new(cluster, spec.addr);
            match self.nodes.get_mut(&key) {
                Some(entry) => {
                    let old_target = entry.params.target.clone();
                    entry.params = spec.params;
                    let new_target = entry.params.target.clone();
                    if old_target != new_target {
                        self.unindex(&old_target, &key);
                        self.by_target
                            .entry(new_target.clone())
                            .or_default()
                            .insert(key.clone());
                        self.probes_touched.insert(old_target);
                    }
                    // Its probe settings may have changed even if its target did not.
                    self.probes_touched.insert(new_target);
                    update.kept.push(key.clone());
                }
                None => {
                    let health = NodeHealth::new(spec.initial, now);
                    let (_, source) = health.weight(&spec.params, now);
                    self.probes_touched.insert(spec.params.target.clone());
                    self.by_target
                        .entry(spec.params.target.clone())
                        .or_default()
                        .insert(key.clone());
                    self.nodes.insert(
                        key.clone(),
                        NodeEntry {
                            params: spec.params,
                            health,
                            weight: spec.initial.weight(),
                            source,
                        },
                    );
                    update.added.push(key.clone());
                }
            }
            self.dirty.insert(key);
        }
        self.clusters.entry(cluster.clone()).or_default().nodes = seen;
        Ok(update)
    }

    /// Forgets a cluster, its nodes and its overrides; returns the nodes forgotten.
    pub fn remove_cluster(&mut self, cluster: &ClusterName) -> Vec<NodeKey> {
        let Some(entry) = self.clusters.remove(cluster) else {
            return Vec::new();
        };
        let keys: Vec<NodeKey> = entry
            .nodes
            .iter()
            .map(|a| NodeKey::new(cluster, *a))
            .collect();
        for key in &keys {
            self.forget(key);
        }
        keys
    }

    fn forget(&mut self, key: &NodeKey) {
        if let Some(entry) = self.nodes.remove(key) {
            self.unindex(&entry.params.target, key);
            self.probes_touched.insert(entry.params.target);
        }
        self.node_overrides.remove(key);
        self.dirty.remove(key);
    }

    fn unindex(&mut self, target: &Target, key: &NodeKey) {
        if let Some(keys) = self.by_target.get_mut(target) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_target.remove(target);
            }
        }
    }

    /// The known clusters.
    pub fn clusters(&self) -> impl Iterator<Item = &ClusterName> {
        self.clusters.keys()
    }

    /// Every (target, settings) the nodes need probed; a target shared by several nodes is
    /// listed once per node (the scheduler merges them).
    pub fn probe_plan(&self) -> Vec<(Target, ProbeSettings)> {
        self.nodes
            .values()
            .map(|e| (e.params.target.clone(), e.params.probe))
            .collect()
    }

    /// How `target` must be probed for the nodes that use it now (their settings merged,
    /// as the scheduler merges them), or None if no node uses it.
    pub fn probe_settings(&self, target: &Target) -> Option<ProbeSettings> {
        self.by_target
            .get(target)?
            .iter()
            .filter_map(|key| self.nodes.get(key))
            .map(|e| e.params.probe.sanitized())
            .reduce(ProbeSettings::merge)
    }

    /// The targets whose users or settings changed since the last call (through
    /// `set_cluster` and `remove_cluster`), each with how it must be probed now (None: no
    /// longer). Applying these to a scheduler keeps it equal to `probe_plan()` at a cost
    /// proportional to the nodes changed, not to all nodes.
    pub fn take_probe_changes(&mut self) -> Vec<(Target, Option<ProbeSettings>)> {
        std::mem::take(&mut self.probes_touched)
            .into_iter()
            .map(|t| {
                let settings = self.probe_settings(&t);
                (t, settings)
            })
            .collect()
    }

    /// Feeds a sample to every node probed through its target; returns the status changes
    /// (for logging). Samples for targets no node uses any more are ignored.
    pub fn observe(&mut self, sample: &Sample) -> Vec<(NodeKey, Transition)> {
        let Some(keys) = self.by_target.get(&sample.target) else {
            return Vec::new();
        };
        let mut transitions = Vec::new();
        for key in keys {
            if let Some(entry) = self.nodes.get_mut(key) {
                if let Some(t) = entry.health.observe(sample, &entry.params) {
                    transitions.push((key.clone(), t));
                }
                self.dirty.insert(key.clone());
            }
        }
        transitions
    }

    /// Applies the override files found on disk; returns the clusters whose files changed.
    pub fn set_override_files(
        &mut self,
        files: &OverrideFiles,
    ) -> Vec<(ClusterName, FileOverrides)> {
        let mut changed = Vec::new();
        for (name, cluster) in &mut self.clusters {
            let now = files.for_cluster(name);
            if cluster.files != now {
                cluster.files = now;
                changed.push((name.clone(), now));
                self.dirty
                    .extend(cluster.nodes.iter().map(|a| NodeKey::new(name, *a)));
            }
        }
        changed
    }

    /// Sets a node's override, returning the one it replaces.
    pub fn set_node_override(
        &mut self,
        key: &NodeKey,
        o: Override,
    ) -> Result<Option<Override>, PolicyError> {
        if !self.nodes.contains_key(key) {
            return Err(PolicyError::UnknownNode(key.clone()));
        }
        self.dirty.insert(key.clone());
        Ok(self.node_overrides.insert(key.clone(), o))
    }

    /// Clears a node's override, returning it (None if there was none).
    pub fn clear_node_override(&mut self, key: &NodeKey) -> Result<Option<Override>, PolicyError> {
        if !self.nodes.contains_key(key) {
            return Err(PolicyError::UnknownNode(key.clone()));
        }
        self.dirty.insert(key.clone());
        Ok(self.node_overrides.remove(key))
    }

    /// Sets a cluster-wide override, returning the one it replaces.
    pub fn set_cluster_override(
        &mut self,
        cluster: &ClusterName,
        o: Override,
    ) -> Result<Option<Override>, PolicyError> {
        let entry = self.cluster_mut(cluster)?;
        let old = entry.over.replace(o);
        self.mark_cluster(cluster);
        Ok(old)
    }

    /// Clears a cluster-wide override, returning it (None if there was none).
    pub fn clear_cluster_override(
        &mut self,
        cluster: &ClusterName,
    ) -> Result<Option<Override>, PolicyError> {
        let old = self.cluster_mut(cluster)?.over.take();
        self.mark_cluster(cluster);
        Ok(old)
    }

    fn cluster_mut(&mut self, cluster: &ClusterName) -> Result<&mut ClusterEntry, PolicyError> {
        self.clusters
            .get_mut(cluster)
            .ok_or_else(|| PolicyError::UnknownCluster(cluster.clone()))
    }

    fn mark_cluster(&mut self, cluster: &ClusterName) {
        if let Some(c) = self.clusters.get(cluster) {
            self.dirty
                .extend(c.nodes.iter().map(|a| NodeKey::new(cluster, *a)));
        }
    }

    /// Removes expired overrides and recomputes the nodes touched since the last
    /// evaluation.
    pub fn evaluate(&mut self, now: Instant) -> Evaluation {
        let expired = self.expire(now);
        let dirty = std::mem::take(&mut self.dirty);
        let changes = dirty
            .iter()
            .filter_map(|k| self.recompute(k, now))
            .collect();
        Evaluation { changes, expired }
    }

    /// Recomputes every node (ramps move with time alone).
    pub fn evaluate_all(&mut self, now: Instant) -> Evaluation {
        let expired = self.expire(now);
        self.dirty.clear();
        // Every second over every node: walk the nodes in place (no key copied into
        // `dirty`), looking each cluster up once for its run of nodes.
        let mut changes = Vec::new();
        let mut cluster: Option<(&ClusterName, &ClusterEntry)> = None;
        for (key, entry) in &mut self.nodes {
            let c = match cluster {
                Some((name, c)) if *name == key.cluster => c,
                _ => match self.clusters.get_key_value(&key.cluster) {
                    Some(found) => {
                        cluster = Some(found);
                        found.1
                    }
                    None => continue,
                },
            };
            changes.extend(recompute(key, entry, c, self.node_overrides.get(key), now));
        }
        Evaluation { changes, expired }
    }

    fn expire(&mut self, now: Instant) -> Vec<(Scope, Override)> {
        let mut expired = Vec::new();
        let gone: Vec<NodeKey> = self
            .node_overrides
            .iter()
            .filter(|(_, o)| o.expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(o) = self.node_overrides.remove(&key) {
                self.dirty.insert(key.clone());
                expired.push((Scope::Node(key), o));
            }
        }
        let gone: Vec<ClusterName> = self
            .clusters
            .iter()
            .filter(|(_, c)| c.over.as_ref().is_some_and(|o| o.expired(now)))
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            if let Some(o) = self.clusters.get_mut(&name).and_then(|c| c.over.take()) {
                self.mark_cluster(&name);
                expired.push((Scope::Cluster(name), o));
            }
        }
        expired
    }

    fn recompute(&mut self, key: &NodeKey, now: Instant) -> Option<WeightChange> {
        let cluster = self.clusters.get(&key.cluster)?;
        let entry = self.nodes.get_mut(key)?;
        recompute(key, entry, cluster, self.node_overrides.get(key), now)
    }

    /// A node's current weight.
    pub fn weight(&self, key: &NodeKey) -> Option<Weight> {
        self.nodes.get(key).map(|e| e.weight)
    }

    /// Every node's current weight.
    pub fn weights(&self) -> BTreeMap<NodeKey, Weight> {
        self.nodes
            .iter()
            .map(|(k, e)| (k.clone(), e.weight))
            .collect()
    }

    /// The state of every cluster and node, for the API.
    pub fn snapshot(&self, now: Instant) -> PolicySnapshot {
        let clusters = self
            .clusters
            .iter()
            .map(|(name, c)| {
                ClusterSnapshot::new(
                    name,
                    c.files,
                    c.over.as_ref(),
                    self.cluster_nodes(name, c, now),
                    now,
                )
            })
            .collect();
        PolicySnapshot { clusters }
    }

    fn cluster_nodes(
        &self,
        name: &ClusterName,
        c: &ClusterEntry,
        now: Instant,
    ) -> Vec<NodeSnapshot> {
        c.nodes
            .iter()
            .filter_map(|addr| self.node_snapshot(&NodeKey::new(name, *addr), now))
            .collect()
    }

    /// One node's state, for the API.
    pub fn node_snapshot(&self, key: &NodeKey, now: Instant) -> Option<NodeSnapshot> {
        let e = self.nodes.get(key)?;
        Some(NodeSnapshot::new(
            key,
            &e.params,
            &e.health,
            (e.weight, e.source),
            self.node_overrides.get(key),
            now,
        ))
    }
}

/// A node's weight now, from its health and the overrides; the change if it moved.
fn recompute(
    key: &NodeKey,
    entry: &mut NodeEntry,
    cluster: &ClusterEntry,
    node_override: Option<&Override>,
    now: Instant,
) -> Option<WeightChange> {
    let base = entry.health.weight(&entry.params, now);
    let (weight, source) = resolve(node_override, cluster.over.as_ref(), cluster.files, base);
    entry.source = source;
    if weight == entry.weight {
        return None;
    }
    let from = std::mem::replace(&mut entry.weight, weight);
    Some(WeightChange {
        key: key.clone(),
        from,
        to: weight,
        source,
    })
}
