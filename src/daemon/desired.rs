//! The desired kernel state, built from the configuration, the running clusters and the
//! current weights: for each running cluster its fwmark service with its local nodes (all
//! of them, or only the active node of an active_passive cluster), its remote load
//! balancers, its downpage when its total weight is 0, and its relay service with the local
//! nodes when it is multi-datacenter; and the mark rules of the running clusters' vips.
//! Also the active_passive choice and the downpage rule themselves.
//!
//! Pure: no I/O, no clock. Clusters that are not running are simply absent, which the diff
//! turns into deleting their services; it never names a service outside the configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Cluster, Model};
use crate::ipvs::{Dest, ServiceKey};
use crate::nft::MarkRule;
use crate::reconcile::{Desired, DesiredService};
use crate::types::{ClusterName, Weight};
use crate::weight::NodeKey;

/// A remote load balancer learned from interpol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// interpol's health (0 while missing).
    pub weight: Weight,
    /// Consecutive polls it was missing from.
    pub down_ticks: u32,
    pub location: Option<String>,
}

/// What the daemon keeps for a running cluster besides its nodes' weights.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Running {
    /// active_passive: the node in IPVS.
    pub active: Option<IpAddr>,
    /// Remote load balancers, by address.
    pub remote: BTreeMap<IpAddr, Remote>,
}

/// Current weights of every running cluster's local nodes.
pub type Weights = BTreeMap<NodeKey, Weight>;

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

/// The services one running cluster wants: main, then relay.
pub fn cluster_services(c: &Cluster, run: &Running, weights: &Weights) -> Vec<DesiredService> {
    let local_dest = |addr: IpAddr| c.dest(addr, weight_of(weights, c, addr));
    let (local, remote): (Vec<Dest>, Vec<Dest>) = if c.is_active_passive() {
        match run.active {
            Some(a) if c.node(a).is_some() => (vec![local_dest(a)], Vec::new()),
            Some(a) => match run.remote.get(&a) {
                Some(r) => (Vec::new(), vec![c.dest(a, r.weight)]),
                None => (Vec::new(), Vec::new()),
            },
            None => (Vec::new(), Vec::new()),
        }
    } else {
        (
            c.nodes.iter().map(|n| local_dest(n.address)).collect(),
            run.remote
                .iter()
                .filter(|(a, _)| c.node(**a).is_none())
                .map(|(a, r)| c.dest(*a, r.weight))
                .collect(),
        )
    };
    let mut main: Vec<Dest> = local.iter().cloned().chain(remote).collect();
    if let Some(addr) = c.downpage.filter(|_| downpage_wanted(c, run, weights)) {
        main.push(c.dest(addr, Weight::clamped(1)));
    }
    let mut out = vec![DesiredService::new(c.service(), main)];
    if let Some(relay) = c.relay_service() {
        out.push(DesiredService::new(relay, local));
    }
    out
}

/// The whole desired IPVS state.
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

/// A destination that left a service that stays: kept at weight 0 until `until`, so the
/// connections it still carries finish (IPVS drops the packets of a deleted real server's
/// connections), then deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    pub until: Instant,
    pub dest: Dest,
}

/// Drains by (service, address, port).
pub type Draining = BTreeMap<(ServiceKey, IpAddr, u16), Drain>;

/// Adds draining destinations to `desired` (a copy of `wanted`): every destination that was
/// in `last` (what the previous pass wanted) but is not in `wanted`, for a service that is
/// still wanted, stays at weight 0 for `period`. A destination wanted again stops
/// draining; services no longer wanted are deleted with their destinations at once (a
/// cluster stop). Returns the earliest time a drain ends, if any.
pub fn drain(
    last: &Desired,
    wanted: &Desired,
    desired: &mut Desired,
    draining: &mut Draining,
    now: Instant,
    period: Duration,
) -> Option<Instant> {
    for (key, before) in &last.services {
        let Some(after) = wanted.services.get(key) else {
            continue;
        };
        for (id, dest) in &before.dests {
            if !after.dests.contains_key(id) && !period.is_zero() {
                draining.entry((*key, id.0, id.1)).or_insert_with(|| Drain {
                    until: now + period,
                    dest: Dest {
                        weight: 0,
                        ..dest.clone()
                    },
                });
            }
        }
    }
    draining.retain(|(key, addr, port), d| {
        d.until > now
            && wanted
                .services
                .get(key)
                .is_some_and(|svc| !svc.dests.contains_key(&(*addr, *port)))
    });
    for ((key, addr, port), d) in draining.iter() {
        if let Some(svc) = desired.services.get_mut(key) {
            svc.dests.insert((*addr, *port), d.dest.clone());
        }
    }
    draining.values().map(|d| d.until).min()
}

/// The desired state as the last pass left it: what it wanted before drains (to see which
/// destinations leave) and what it asked the kernel for (with the drains).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Built {
    pub wanted: Desired,
    pub desired: Desired,
}

/// Builds the desired state again, in place: of every running cluster (`only` None), or
/// of the clusters in `only` when nothing but their inputs (weights, active node) changed
/// since `built` was built. Then the drains (see [`drain`]). A partial build gives what a
/// full one would, except that ended drains of services outside it stay until the next
/// full build, which the returned time (the earliest end of any drain) asks for at once.
/// Also returns the keys of the services a partial build built (its clusters' keys,
/// running or not).
#[allow(clippy::too_many_arguments)]
pub fn rebuild(
    built: &mut Built,
    only: Option<&BTreeSet<ClusterName>>,
    model: &Model,
    running: &BTreeMap<ClusterName, Running>,
    weights: &Weights,
    draining: &mut Draining,
    now: Instant,
    period: Duration,
) -> (Option<Instant>, Option<BTreeSet<ServiceKey>>) {
    let Some(only) = only else {
        let wanted = build(model, running, weights);
        let mut desired = wanted.clone();
        let drained = drain(&built.wanted, &wanted, &mut desired, draining, now, period);
        *built = Built { wanted, desired };
        return (drained, None);
    };
    let clusters: Vec<&Cluster> = model
        .clusters
        .iter()
        .filter(|c| only.contains(&c.name))
        .collect();
    let keys: BTreeSet<ServiceKey> = clusters
        .iter()
        .flat_map(|c| std::iter::once(c.service_key()).chain(c.relay_service_key()))
        .collect();
    let mut wanted = Desired::default();
    for c in clusters {
        if let Some(run) = running.get(&c.name) {
            for svc in cluster_services(c, run, weights) {
                wanted.insert(svc);
            }
        }
    }
    let take = |d: &mut Desired| Desired {
        services: keys
            .iter()
            .filter_map(|k| d.services.remove_entry(k))
            .collect(),
    };
    let last = take(&mut built.wanted);
    take(&mut built.desired);
    let mut part = Draining::new();
    draining.retain(|id, d| match keys.contains(&id.0) {
        true => {
            part.insert(*id, d.clone());
            false
        }
        false => true,
    });
    let mut desired = wanted.clone();
    drain(&last, &wanted, &mut desired, &mut part, now, period);
    draining.append(&mut part);
    built.wanted.services.append(&mut wanted.services);
    built.desired.services.append(&mut desired.services);
    (draining.values().map(|d| d.until).min(), Some(keys))
}

/// Every service key the configuration owns (main and relay fwmarks, running or not).
pub fn owned(model: &Model) -> BTreeSet<ServiceKey> {
    model.owned_services().into_iter().collect()
}

/// The mark rules of the running clusters, in configuration order.
pub fn mark_rules(model: &Model, running: &BTreeMap<ClusterName, Running>) -> Vec<MarkRule> {
    model
        .clusters
        .iter()
        .filter(|c| running.contains_key(&c.name))
        .flat_map(Cluster::mark_rules)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::ipvs::save::save_text;

    fn model(text: &str) -> Model {
        parse("t.yml", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn weights(c: &str, list: &[(&str, u64)]) -> Weights {
        list.iter()
            .map(|(a, w)| {
                (
                    NodeKey::new(&ClusterName(c.into()), ip(a)),
                    Weight::clamped(*w),
                )
            })
            .collect()
    }

    fn text(d: &Desired) -> String {
        let state: Vec<_> = d
            .services
            .values()
            .map(|s| (s.service.clone(), s.dests.values().cloned().collect()))
            .collect();
        save_text(&state)
    }

    fn running(names: &[&str]) -> BTreeMap<ClusterName, Running> {
        names
            .iter()
            .map(|n| (ClusterName((*n).into()), Running::default()))
            .collect()
    }

    const AA: &str = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wrr
    has_downpage: true
    multi_datacenter: true
    vips: [{address: 192.0.2.10, port: 80}]
    nodes:
      - {address: 10.0.0.1, port: 9, path: /s}
      - {address: 10.0.0.2, port: 9, path: /s}
  - cluster_name: db
    fwmark: 8
    scheduler: wlc
    vips: [{address: 192.0.2.11, port: 5432}]
    nodes: [{address: 10.0.1.1, port: 9, path: /s}]
";

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

    const AP: &str = "\
clusters:
  - cluster_name: db
    fwmark: 5
    scheduler: wrr
    backend_mode: active_passive
    nodes:
      - {address: 10.0.0.10, port: 1, path: /, priority: 1}
      - {address: 10.0.0.9, port: 1, path: /, priority: 1}
      - {address: 10.0.0.2, port: 1, path: /, priority: 2}
";

    #[test]
    fn a_destination_leaving_a_service_drains_at_zero_then_goes() {
        let m = model(AP);
        let mut run = running(&["db"]);
        let both = weights("db", &[("10.0.0.9", 80), ("10.0.0.10", 60)]);
        run.get_mut(&ClusterName("db".into())).unwrap().active = Some(ip("10.0.0.9"));
        let last = build(&m, &run, &both);
        run.get_mut(&ClusterName("db".into())).unwrap().active = Some(ip("10.0.0.10"));
        let wanted = build(&m, &run, &both);
        let mut draining = Draining::new();
        let t0 = Instant::now();
        let period = Duration::from_secs(5);
        let mut d = wanted.clone();
        let end = drain(&last, &wanted, &mut d, &mut draining, t0, period);
        assert_eq!(end, Some(t0 + period));
        assert_eq!(
            text(&d),
            "-A -f 5 -s wrr\n-a -f 5 -r 10.0.0.9:0 -i -w 0 --tun-type ipip\n-a -f 5 -r 10.0.0.10:0 -i -w 60 --tun-type ipip\n",
            "the new active node in, the old one at 0"
        );
        // Later passes keep it draining (the last pass wanted it out already) until the end.
        let mut d = wanted.clone();
        drain(
            &wanted,
            &wanted,
            &mut d,
            &mut draining,
            t0 + Duration::from_secs(4),
            period,
        );
        assert!(text(&d).contains("10.0.0.9:0 -i -w 0"));
        let mut d = wanted.clone();
        assert_eq!(
            drain(&wanted, &wanted, &mut d, &mut draining, t0 + period, period),
            None
        );
        assert_eq!(d, wanted);
        // A stopped cluster's service goes at once, drains and all.
        let mut d = Desired::default();
        drain(
            &last,
            &Desired::default(),
            &mut d,
            &mut draining,
            t0,
            period,
        );
        assert!(d.services.is_empty() && draining.is_empty());
    }

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

    /// A partial build and a full build from the same state, with the full build's state.
    struct Twin {
        partial: (Built, Draining),
        full: (Built, Draining),
    }

    impl Twin {
        /// Builds `names` in the partial state and everything in the full one; returns
        /// (partial's earliest drain end, full's).
        fn step(
            &mut self,
            names: &[&str],
            m: &Model,
            run: &BTreeMap<ClusterName, Running>,
            w: &Weights,
            now: Instant,
        ) -> (Option<Instant>, Option<Instant>) {
            let period = Duration::from_secs(5);
            let names: BTreeSet<ClusterName> =
                names.iter().map(|n| ClusterName((*n).into())).collect();
            let (b, d) = &mut self.partial;
            let (p, keys) = rebuild(b, Some(&names), m, run, w, d, now, period);
            let want: BTreeSet<ServiceKey> = m
                .clusters
                .iter()
                .filter(|c| names.contains(&c.name))
                .flat_map(|c| std::iter::once(c.service_key()).chain(c.relay_service_key()))
                .collect();
            assert_eq!(keys, Some(want));
            let (b, d) = &mut self.full;
            let (f, keys) = rebuild(b, None, m, run, w, d, now, period);
            assert_eq!(keys, None);
            (p, f)
        }
    }

    #[test]
    fn building_only_the_changed_clusters_gives_what_a_full_build_gives() {
        let m = model(&format!(
            "{AA}{}",
            AP.replace("clusters:\n", "").replace("db", "ap")
        ));
        let name = |n: &str| ClusterName(n.into());
        let mut run = running(&["web", "db", "ap"]);
        run.get_mut(&name("ap")).unwrap().active = Some(ip("10.0.0.9"));
        let mut w = weights("web", &[("10.0.0.1", 30), ("10.0.0.2", 70)]);
        w.extend(weights("db", &[("10.0.1.1", 100)]));
        w.extend(weights("ap", &[("10.0.0.9", 80), ("10.0.0.10", 60)]));
        let t0 = Instant::now();
        let mut start = (Built::default(), Draining::new());
        let five = Duration::from_secs(5);
        let built = rebuild(&mut start.0, None, &m, &run, &w, &mut start.1, t0, five);
        assert_eq!(built, (None, None));
        let mut twin = Twin {
            partial: start.clone(),
            full: start,
        };
        // web drops to 0 (its downpage comes in), ap fails over (its old node drains).
        w.extend(weights("web", &[("10.0.0.1", 0), ("10.0.0.2", 0)]));
        w.extend(weights("ap", &[("10.0.0.9", 0)]));
        run.get_mut(&name("ap")).unwrap().active = Some(ip("10.0.0.10"));
        let t1 = t0 + Duration::from_secs(1);
        let (p, f) = twin.step(&["web", "ap"], &m, &run, &w, t1);
        assert_eq!((p, f), (Some(t1 + Duration::from_secs(5)), p));
        assert_eq!(twin.partial, twin.full);
        let d = text(&twin.partial.0.desired);
        assert!(d.contains("-a -f 5 -r 10.0.0.9:0 -i -w 0"), "{d}");
        assert!(d.contains("-a -f 7 -r 169.254.254.254:0 -i -w 1"), "{d}");
        // db changes while ap's old node drains: the drain goes on in both.
        w.extend(weights("db", &[("10.0.1.1", 40)]));
        let (p, f) = twin.step(&["db"], &m, &run, &w, t1 + Duration::from_secs(2));
        assert_eq!((p, f), (Some(t1 + Duration::from_secs(5)), p));
        assert_eq!(twin.partial, twin.full);
        // Past the drain's end a partial build of db leaves ap's ended drain for the full
        // build it asks for at once; that full build agrees.
        w.extend(weights("db", &[("10.0.1.1", 50)]));
        let t2 = t1 + Duration::from_secs(6);
        let (p, f) = twin.step(&["db"], &m, &run, &w, t2);
        assert_eq!(f, None);
        assert!(p.is_some_and(|p| p <= t2), "{p:?}");
        let (b, d) = &mut twin.partial;
        assert_eq!(rebuild(b, None, &m, &run, &w, d, t2, five), (None, None));
        assert_eq!(twin.partial, twin.full);
        assert!(!text(&twin.full.0.desired).contains("10.0.0.9"));
        // A cluster named but not running (stopped since) has no services in either.
        run.remove(&name("db"));
        twin.step(&["db"], &m, &run, &w, t2);
        assert_eq!(twin.partial, twin.full);
        assert!(!text(&twin.full.0.desired).contains("-f 8 "));
    }
}
