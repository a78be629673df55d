//! The active_passive choice: which one node of an active_passive cluster is in IPVS. The
//! controller makes it before every build of the desired state, and `bigbro check` makes
//! it for every cluster just started (`plan.rs`), with this same function.
//!
//! Pure: it reads weights and the current choice, and never writes either.

use std::net::IpAddr;

use super::services::weight_of;
use super::{Running, Weights};
use crate::config::Cluster;

/// The active_passive choice: the healthy (weight > 0) candidate with the lowest
/// priority, ties broken by numeric address; remote load balancers take part with
/// priority 0, as in big_brother. With no healthy candidate the current active node stays
/// (at weight 0, as big_brother left it); with none at all, the local node that comes
/// first by priority. Failback is pre-emptive, as in big_brother.
pub fn choose_active(
    c: &Cluster,
    current: Option<IpAddr>,
    run: &Running,
    weights: &Weights,
) -> Option<IpAddr> {
    let local = c
        .nodes
        .iter()
        .map(|n| (n.priority, n.address, weight_of(weights, c, n.address)));
    let remote = run.remote.iter().map(|(a, r)| (0, *a, r.weight));
    let healthy = local
        .chain(remote)
        .filter(|(_, _, w)| w.get() > 0)
        .min_by_key(|(p, a, _)| (*p, *a))
        .map(|(_, a, _)| a);
    let still_there = current.filter(|a| c.node(*a).is_some() || run.remote.contains_key(a));
    healthy
        .or(still_there)
        .or_else(|| c.nodes_by_priority().first().map(|n| n.address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::build;
    use crate::desired::test_util::{ip, model, running, text, weights, AP};
    use crate::types::ClusterName;

    #[test]
    fn active_passive_prefers_healthy_low_priority_numeric_address() {
        let m = model(AP);
        let c = &m.clusters[0];
        let run = Running::default();
        let all = weights("db", &[("10.0.0.10", 1), ("10.0.0.9", 1), ("10.0.0.2", 1)]);
        assert_eq!(choose_active(c, None, &run, &all), Some(ip("10.0.0.9")));
        let nine_down = weights(
            "db",
            &[("10.0.0.10", 50), ("10.0.0.9", 0), ("10.0.0.2", 90)],
        );
        assert_eq!(
            choose_active(c, Some(ip("10.0.0.9")), &run, &nine_down),
            Some(ip("10.0.0.10"))
        );
        let none = weights("db", &[]);
        assert_eq!(
            choose_active(c, Some(ip("10.0.0.2")), &run, &none),
            Some(ip("10.0.0.2")),
            "with nobody healthy the active node stays"
        );
        assert_eq!(
            choose_active(c, Some(ip("10.9.9.9")), &run, &none),
            Some(ip("10.0.0.9")),
            "a node no longer configured is not kept"
        );
        let mut r = running(&["db"]);
        r.get_mut(&ClusterName("db".into())).unwrap().active = Some(ip("10.0.0.10"));
        assert_eq!(
            text(&build(&m, &r, &nine_down)),
            "-A -f 5 -s wrr\n-a -f 5 -r 10.0.0.10:0 -i -w 50 --tun-type ipip\n"
        );
    }
}
