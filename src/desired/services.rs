//! The IPVS services a running cluster wants, given its nodes' weights and what the daemon
//! learned about it: its fwmark service with its local nodes (all of them, or only the
//! active node of an active_passive cluster), its remote load balancers, its downpage when
//! its total weight is 0; then its relay service with the local nodes when it is
//! multi-datacenter. And the whole desired IPVS state, of every running cluster.
//!
//! It takes the active node as given (`active.rs` chooses it) and never decides a node's
//! weight; a node without a known weight is at 0.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::objects::{dest, node_dest, relay_service, service};
use super::{Running, Weights};
use crate::config::{Cluster, Model, Node};
use crate::ipvs::Dest;
use crate::reconcile::{Desired, DesiredService};
use crate::types::{ClusterName, Weight};
use crate::weight::NodeKey;

/// The weight of a local node (0 if unknown).
pub fn weight_of(weights: &Weights, c: &Cluster, addr: IpAddr) -> Weight {
    weights
        .get(&NodeKey::new(&c.name, addr))
        .copied()
        .unwrap_or(Weight::ZERO)
}

/// Σ of the local nodes' weights: big_brother's CombinedWeight.
pub fn combined_weight(weights: &Weights, c: &Cluster) -> u64 {
    c.nodes
        .iter()
        .map(|n| u64::from(weight_of(weights, c, n.address).get()))
        .sum()
}

/// Whether a running cluster wants its downpage now: it has one and its local and remote
/// weights add up to 0 (big_brother's `_check_downpage`).
pub fn downpage_wanted(c: &Cluster, run: &Running, weights: &Weights) -> bool {
    let remote: u64 = run.remote.values().map(|r| u64::from(r.weight.get())).sum();
    c.downpage.is_some() && combined_weight(weights, c) + remote == 0
}

/// The services one running cluster wants: main, then relay.
pub fn cluster_services(c: &Cluster, run: &Running, weights: &Weights) -> Vec<DesiredService> {
    let local_dest = |n: &Node| node_dest(c, n, weight_of(weights, c, n.address));
    let (local, remote): (Vec<Dest>, Vec<Dest>) = if c.is_active_passive() {
        match run.active.map(|a| (a, c.node(a), run.remote.get(&a))) {
            Some((_, Some(n), _)) => (vec![local_dest(n)], Vec::new()),
            Some((a, None, Some(r))) => (Vec::new(), vec![dest(c, a, r.weight)]),
            Some((_, None, None)) | None => (Vec::new(), Vec::new()),
        }
    } else {
        (
            c.nodes.iter().map(local_dest).collect(),
            run.remote
                .iter()
                .filter(|(a, _)| c.node(**a).is_none())
                .map(|(a, r)| dest(c, *a, r.weight))
                .collect(),
        )
    };
    let mut main: Vec<Dest> = local.iter().cloned().chain(remote).collect();
    if let Some(addr) = c.downpage.filter(|_| downpage_wanted(c, run, weights)) {
        main.push(dest(c, addr, Weight::clamped(1)));
    }
    let mut out = vec![DesiredService::new(service(c), main)];
    if let Some(relay) = relay_service(c) {
        out.push(DesiredService::new(relay, local));
    }
    out
}

/// The whole desired IPVS state: the services of every running cluster.
pub fn build(
    model: &Model,
    running: &BTreeMap<ClusterName, Running>,
    weights: &Weights,
) -> Desired {
    let mut desired = Desired::default();
    for c in &model.clusters {
        if let Some(run) = running.get(&c.name) {
            for svc in cluster_services(c, run, weights) {
                desired.insert(svc);
            }
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::test_util::{ip, model, running, text, weights, AA};
    use crate::desired::{mark_rules, owned, Remote};

    #[test]
    fn only_running_clusters_are_desired_with_their_weights_relay_and_marks() {
        let m = model(AA);
        let run = running(&["web"]);
        let w = weights("web", &[("10.0.0.1", 30), ("10.0.0.2", 70)]);
        assert_eq!(
            text(&build(&m, &run, &w)),
            "-A -f 7 -s wrr\n\
             -a -f 7 -r 10.0.0.1:0 -i -w 30 --tun-type ipip\n\
             -a -f 7 -r 10.0.0.2:0 -i -w 70 --tun-type ipip\n\
             -A -f 10007 -s wrr\n\
             -a -f 10007 -r 10.0.0.1:0 -i -w 30 --tun-type ipip\n\
             -a -f 10007 -r 10.0.0.2:0 -i -w 70 --tun-type ipip\n"
        );
        let rules = mark_rules(&m, &run);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].mark, 7);
        assert!(build(&m, &running(&[]), &w).services.is_empty());
        assert_eq!(owned(&m).len(), 3, "7, 10007 and 8, running or not");
    }

    #[test]
    fn downpage_when_the_total_reaches_zero_and_only_on_the_main_service() {
        let m = model(AA);
        let mut run = running(&["web"]);
        let zero = weights("web", &[("10.0.0.1", 0), ("10.0.0.2", 0)]);
        let d = text(&build(&m, &run, &zero));
        assert!(d.contains("-a -f 7 -r 169.254.254.254:0 -i -w 1"), "{d}");
        assert!(!d.contains("-a -f 10007 -r 169.254.254.254"), "{d}");
        // Remote weight counts too (big_brother's PR #24).
        run.get_mut(&ClusterName("web".into()))
            .unwrap()
            .remote
            .insert(
                ip("172.16.0.1"),
                Remote {
                    weight: Weight::clamped(5),
                    down_ticks: 0,
                    location: None,
                },
            );
        let d = text(&build(&m, &run, &zero));
        assert!(!d.contains("169.254.254.254"), "{d}");
        assert!(d.contains("-a -f 7 -r 172.16.0.1:0 -i -w 5"), "{d}");
        assert!(
            !d.contains("-a -f 10007 -r 172.16.0.1"),
            "remote never on the relay"
        );
    }
}
