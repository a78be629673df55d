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

use crate::desired::Weights;
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
    /// it. False when the driver has stopped. Cancel-safe (for `select!`): a batch is
    /// applied as soon as it is taken from the channel, with no wait in between.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weight::{Source, WeightChange};
    use tokio::time::Instant;

    fn key(cluster: &str, last: u8) -> NodeKey {
        NodeKey::new(&ClusterName(cluster.into()), IpAddr::from([10, 0, 0, last]))
    }

    fn batch(changes: &[(&str, u8, u32)]) -> WeightBatch {
        WeightBatch {
            at: Instant::now(),
            changes: changes
                .iter()
                .map(|(c, last, to)| WeightChange {
                    key: key(c, *last),
                    from: Weight::ZERO,
                    to: Weight::clamped(u64::from(*to)),
                    source: Source::Health,
                })
                .collect(),
        }
    }

    fn names(list: &[&str]) -> BTreeSet<ClusterName> {
        list.iter().map(|n| ClusterName((*n).into())).collect()
    }

    #[tokio::test]
    async fn changes_apply_after_the_initial_weights_and_forgotten_nodes_stay_forgotten() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut w = LiveWeights::new(rx);
        let web = ClusterName("web".into());
        let update = ClusterUpdate {
            added: vec![key("web", 1), key("web", 2)],
            ..ClusterUpdate::default()
        };
        let initial = [
            (key("web", 1).addr, Weight::clamped(1)),
            (key("web", 2).addr, Weight::clamped(1)),
        ];
        w.cluster_set(&web, &initial, &update);
        // The batch the driver sent before answering set_cluster, and one for a node
        // nobody gave it.
        tx.send(batch(&[("web", 1, 50), ("db", 9, 70)])).unwrap();
        assert!(w.take_waiting());
        assert!(!w.take_waiting(), "nothing else waits");
        assert_eq!(w.get()[&key("web", 1)], Weight::clamped(50));
        assert_eq!(w.get()[&key("web", 2)], Weight::clamped(1));
        assert!(!w.get().contains_key(&key("db", 9)));
        // A node removed by a reload goes; a change for it sent before is dropped.
        let update = ClusterUpdate {
            removed: vec![key("web", 2)],
            kept: vec![key("web", 1)],
            ..ClusterUpdate::default()
        };
        w.cluster_set(&web, &initial[..1], &update);
        tx.send(batch(&[("web", 2, 80)])).unwrap();
        w.take_waiting();
        assert_eq!(w.get().len(), 1);
        assert_eq!(
            w.get()[&key("web", 1)],
            Weight::clamped(50),
            "kept nodes keep theirs"
        );
        w.cluster_removed(&web);
        assert!(w.get().is_empty());
    }

    #[tokio::test]
    async fn the_clusters_named_since_the_last_build_are_what_a_weight_pass_builds() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut w = LiveWeights::new(rx);
        assert_eq!(w.take_stale(true), None, "nothing built yet: everything");
        tx.send(batch(&[("web", 1, 5)])).unwrap();
        tx.send(batch(&[("db", 1, 5)])).unwrap();
        assert!(w.recv().await, "one wait takes every batch waiting");
        assert_eq!(w.take_stale(true), Some(names(&["db", "web"])));
        tx.send(batch(&[("web", 1, 6)])).unwrap();
        w.take_waiting();
        assert_eq!(w.take_stale(false), None, "a pass that builds everything");
        assert_eq!(w.take_stale(true), Some(names(&[])));
        tx.send(batch(&[("web", 1, 7)])).unwrap();
        w.take_waiting();
        w.all_stale();
        assert_eq!(w.take_stale(true), None, "a command since: everything");
        drop(tx);
        assert!(!w.recv().await, "the driver stopped");
    }
}
