//! The weights the daemon programs: a map the controller owns, kept current by applying
//! the exact changes the weight driver sends (`WeightBatch`, `from -> to`) and the
//! initial weights of the nodes the controller itself gives the driver. The hand-off goes
//! one way: nothing asks the driver for its weights, so a pass costs nothing in
//! proportion to the number of nodes that did not change.
//!
//! It is exact because of an ordering the driver keeps (`src/weight/driver.rs`): a
//! command's own weight changes are sent before its answer, so once `set_cluster` has
//! answered, every change it caused is waiting on the channel, and is applied (after the
//! initial weights it starts from) before the next pass. A change for a node this map does
//! not hold (a node forgotten since the change was sent) is dropped.
//!
//! It also remembers which clusters the batches named since the desired state was last
//! built, so a weight pass builds only those. It never touches the kernel and never
//! changes a weight on its own.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tokio::sync::mpsc;

use super::desired::Weights;
use crate::types::{ClusterName, Weight};
use crate::weight::{ClusterUpdate, NodeKey, WeightBatch};

/// See the module notes.
pub(crate) struct LiveWeights {
    batches: mpsc::UnboundedReceiver<WeightBatch>,
    weights: Weights,
    /// The clusters whose weights changed since the desired state was last built; None:
    /// anything else may have changed too (a command, an interpol update), so the next
    /// pass builds every cluster.
    stale: Option<BTreeSet<ClusterName>>,
}

impl LiveWeights {
    pub fn new(batches: mpsc::UnboundedReceiver<WeightBatch>) -> LiveWeights {
        LiveWeights {
            batches,
            weights: Weights::new(),
            stale: None,
        }
    }

    /// The current weights of every running cluster's probed nodes.
    pub fn get(&self) -> &Weights {
        &self.weights
    }

    /// Waits for the next batch and applies it with every batch already waiting behind
    /// it. False when the driver has stopped.
    pub async fn recv(&mut self) -> bool {
        match self.batches.recv().await {
            Some(batch) => {
                self.apply(&batch);
                self.take_waiting();
                true
            }
            None => false,
        }
    }

    /// Applies every batch waiting on the channel; returns whether there was one.
    pub fn take_waiting(&mut self) -> bool {
        let mut any = false;
        while let Ok(batch) = self.batches.try_recv() {
            self.apply(&batch);
            any = true;
        }
        any
    }

    fn apply(&mut self, batch: &WeightBatch) {
        for change in &batch.changes {
            if let Some(w) = self.weights.get_mut(&change.key) {
                *w = change.to;
            }
            if let Some(stale) = &mut self.stale {
                stale.insert(change.key.cluster.clone());
            }
        }
    }

    /// Takes what the driver's `set_cluster` did: forgotten nodes go, new ones start from
    /// their initial weight (the changes since are on the channel).
    pub fn cluster_set(
        &mut self,
        cluster: &ClusterName,
        initial: &[(IpAddr, Weight)],
        update: &ClusterUpdate,
    ) {
        for key in &update.removed {
            self.weights.remove(key);
        }
        let added: BTreeSet<&NodeKey> = update.added.iter().collect();
        for (addr, weight) in initial {
            let key = NodeKey::new(cluster, *addr);
            if added.contains(&key) {
                self.weights.insert(key, *weight);
            }
        }
    }

    /// Forgets a cluster the driver forgot.
    pub fn cluster_removed(&mut self, cluster: &ClusterName) {
        self.weights.retain(|k, _| k.cluster != *cluster);
    }

    /// Something besides weights changed: the next pass builds every cluster.
    pub fn all_stale(&mut self) {
        self.stale = None;
    }

    /// The clusters a weight pass must build (None: all of them), and a fresh record.
    pub fn take_stale(&mut self, partial: bool) -> Option<BTreeSet<ClusterName>> {
        let stale = self.stale.replace(BTreeSet::new());
        stale.filter(|_| partial)
    }
}
