//! Drains and partial rebuilds. A destination that leaves a service that stays (an
//! active_passive failover, a node removed by a reload) is kept at weight 0 for the drain
//! period so the connections it carries finish, then deleted; a service that goes (a
//! cluster stopped) goes at once with its destinations. And the rebuild of only the
//! clusters whose inputs changed, which must give what a full build gives.
//!
//! Pure: `now` is passed in. It never adds a destination that no pass wanted, and never
//! keeps a drain past its end or once its destination is wanted again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::objects::ClusterKeys;
use super::services::{build, cluster_services};
use super::{Running, Weights};
use crate::config::{Cluster, Model};
use crate::ipvs::{Dest, ServiceKey};
use crate::reconcile::Desired;
use crate::types::ClusterName;

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
/// since `built` was built. Then the drains (see `drain`). A partial build gives what a
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::test_util::{ip, model, running, text, weights, AA, AP};

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
