//! From a configured cluster to the weight policy's node specs: what to probe (litmus,
//! http or tcp at the node's port and path), how often and how long, rise/fall, ramp and
//! `max_weight`, and the weight a node starts from.
//!
//! Pure translation; it never decides a weight beyond the initial one it is given.

use std::net::IpAddr;

use crate::config::{Cluster, Node};
use crate::health::{ProbeSettings, Target, TargetError};
use crate::weight::{Initial, NodeParams, NodeSpec};

/// The policy parameters of one node of `c`.
pub fn node_params(c: &Cluster, n: &Node) -> Result<NodeParams, TargetError> {
    let target = Target::new(c.health.kind, n.address, n.port, &n.path)?;
    let probe = ProbeSettings {
        interval: c.check_interval,
        timeout: c.health.timeout,
    };
    Ok(NodeParams {
        rise: c.health.rise,
        fall: c.health.fall,
        ramp_up_time: c.ramp_up_time,
        max_weight: n.max_weight,
        ..NodeParams::new(target, probe)
    })
}

/// The specs of every local node of `c`, each starting from `initial(address)` if it is
/// new to the policy. Nodes whose probe target is invalid are left out and reported.
pub fn node_specs(
    c: &Cluster,
    initial: impl Fn(IpAddr) -> Initial,
) -> (Vec<NodeSpec>, Vec<TargetError>) {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for n in &c.nodes {
        match node_params(c, n) {
            Ok(params) => specs.push(NodeSpec {
                addr: n.address,
                params,
                initial: initial(n.address),
            }),
            Err(e) => errors.push(e),
        }
    }
    (specs, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Weight;
    use std::time::Duration;

    #[test]
    fn maps_health_ramp_and_cap() {
        let m = crate::config::parse(
            "t",
            "clusters:\n  - {cluster_name: a, fwmark: 1, scheduler: rr, check_interval: 0.5, ramp_up_time: 10, \
             health: {kind: http, timeout: 0.2, rise: 2, fall: 3}, \
             nodes: [{address: 10.0.0.1, port: 8080, path: /h, max_weight: 40}]}\n",
        )
        .unwrap();
        let c = &m.clusters[0];
        let (specs, errors) = node_specs(c, |_| Initial::Fresh(Weight::clamped(1)));
        assert!(errors.is_empty());
        let p = &specs[0].params;
        assert_eq!(p.target.to_string(), "http http://10.0.0.1:8080/h");
        assert_eq!(p.probe.interval, Duration::from_millis(500));
        assert_eq!(p.probe.timeout, Duration::from_millis(200));
        assert_eq!((p.rise, p.fall), (2, 3));
        assert_eq!(p.ramp_up_time, Duration::from_secs(10));
        assert_eq!(p.max_weight, Some(Weight::clamped(40)));
        assert_eq!(specs[0].initial, Initial::Fresh(Weight::clamped(1)));
    }

    /// `start_weight` on the paused clock of the policy: what a node of a cluster just
    /// started weighs before, at and after its first probe.
    fn weights_after_start(start_weight: &str, probes: &[(u64, u16)], at: &[u64]) -> Vec<u32> {
        use crate::health::Sample;
        use crate::weight::{NodeKey, Policy};
        use tokio::time::Instant;
        let m = crate::config::parse(
            "t",
            &format!(
                "clusters:\n  - {{cluster_name: a, fwmark: 1, scheduler: rr, ramp_up_time: 60, {start_weight}\
                 health: {{kind: http}}, nodes: [{{address: 10.0.0.1, port: 8080}}]}}\n"
            ),
        )
        .unwrap();
        let c = &m.clusters[0];
        let (specs, _) = node_specs(c, |_| Initial::Fresh(c.initial_weight(false)));
        let target = specs[0].params.target.clone();
        let key = NodeKey::new(&c.name, specs[0].addr);
        let t0 = Instant::now();
        let mut policy = Policy::new();
        policy.set_cluster(&c.name, specs, t0).unwrap();
        let mut probes = probes.iter().peekable();
        at.iter()
            .map(|s| {
                let now = t0 + Duration::from_secs(*s);
                while let Some((probe_s, health)) = probes.next_if(|(p, _)| p <= s) {
                    policy.observe(&Sample {
                        target: target.clone(),
                        result: if *health > 0 {
                            Ok(*health)
                        } else {
                            Err(crate::health::ProbeError::Refused)
                        },
                        started: t0 + Duration::from_secs(*probe_s),
                        latency: Duration::ZERO,
                    });
                }
                policy.evaluate_all(now);
                policy.weight(&key).unwrap().get()
            })
            .collect()
    }

    #[test]
    fn start_weight_zero_waits_for_the_first_good_probe_then_ramps() {
        // Failed probes at 2 and 4 s, the first good one at 6 s, then the 60 s ramp.
        let probes = [(2, 0), (4, 0), (6, 100), (36, 100), (66, 100)];
        let at = [0, 3, 5, 6, 36, 66];
        assert_eq!(
            weights_after_start("start_weight: 0, ", &probes, &at),
            [0, 0, 0, 1, 50, 100]
        );
        // big_brother's default: 1 until health is known, 0 once the node fails.
        assert_eq!(weights_after_start("", &probes, &at), [1, 0, 0, 1, 50, 100]);
        // A start weight above 1 holds until the first probe answers either way.
        assert_eq!(
            weights_after_start("start_weight: 20, ", &[(6, 100)], &[0, 5, 36]),
            [20, 20, 50]
        );
    }
}
