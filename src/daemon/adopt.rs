//! Taking a running cluster over from its kernel service: what the daemon keeps for it
//! (the active_passive node, the remote load balancers) and the weight each node starts
//! from, so that adopting changes nothing in the kernel.
//!
//! Pure: it reads one observed service and never writes anything.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::Cluster;
use crate::desired::{Remote, Running};
use crate::reconcile::Observed;
use crate::types::Weight;
use crate::weight::Initial;

/// A cluster as found in the kernel.
pub struct Adopted {
    pub running: Running,
    /// The kernel's weight of each destination.
    kernel: BTreeMap<IpAddr, u32>,
    /// Whether the service holds any of the configured nodes.
    any_node: bool,
    /// The cluster's weights for a node missing from the kernel: as a start would give
    /// it, and as a reload adding it would (`Cluster::initial_weight`).
    start_weight: Weight,
    added_weight: Weight,
}

impl Adopted {
    /// Reads `c`'s main service: its nodes start from the kernel's weights; a
    /// multi-datacenter cluster keeps its remote nodes until interpol says otherwise; an
    /// active_passive cluster keeps the node it has.
    pub fn new(c: &Cluster, main: &Observed) -> Adopted {
        let kernel: BTreeMap<IpAddr, u32> = main
            .dests
            .iter()
            .map(|d| (d.dest.addr, d.dest.weight))
            .collect();
        let any_node = c.nodes.iter().any(|n| kernel.contains_key(&n.address));
        let mut running = Running::default();
        let foreign = |addr: &IpAddr| c.node(*addr).is_none() && c.downpage != Some(*addr);
        if !c.interpol.is_empty() {
            for d in &main.dests {
                if foreign(&d.dest.addr) {
                    running.remote.insert(
                        d.dest.addr,
                        Remote {
                            weight: Weight::clamped(u64::from(d.dest.weight)),
                            down_ticks: 0,
                            location: None,
                        },
                    );
                }
            }
        }
        if c.is_active_passive() {
            running.active = main
                .dests
                .iter()
                .map(|d| d.dest.addr)
                .find(|a| c.node(*a).is_some() || running.remote.contains_key(a));
        }
        Adopted {
            running,
            kernel,
            any_node,
            start_weight: c.initial_weight(false),
            added_weight: c.initial_weight(true),
        }
    }

    /// The weight a node starts from: the kernel's; a node missing from the kernel starts
    /// as one added by a reload would (0 unless `start_weight` says otherwise), or as a
    /// start would (1 unless `start_weight` says otherwise) when the service holds none
    /// of the nodes.
    pub fn initial(&self, addr: IpAddr) -> Initial {
        match self.kernel.get(&addr) {
            Some(w) => Initial::Adopted(Weight::clamped(u64::from(*w))),
            None if self.any_node => Initial::Fresh(self.added_weight),
            None => Initial::Fresh(self.start_weight),
        }
    }
}
