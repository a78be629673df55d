//! The diff: from what bigbro wants and what the kernel holds, the smallest list of IPVS
//! operations that turns one into the other, for the services bigbro owns and no others.
//!
//! Pure and total: no I/O, no clock, any input gives a valid answer. Ownership is
//! explicit: a service key outside `owned` is never read, edited or deleted, however it
//! looks. Within a service, additions and raised weights come before lowered weights, and
//! those before deletions, so that a replacement (an active/passive failover, a node
//! swapped on reload) never leaves a moment without a destination taking connections.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::ipvs::{Dest, DestEntry, Op, Service, ServiceEntry, ServiceKey};

/// The IPVS state bigbro wants: for each service that should exist, its settings and its
/// destinations. Services bigbro owns but that should not exist are simply absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub services: BTreeMap<ServiceKey, DesiredService>,
}

/// One wanted service and its destinations, keyed by (address, port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    pub service: Service,
    pub dests: BTreeMap<(IpAddr, u16), Dest>,
}

impl DesiredService {
    pub fn new(service: Service, dests: impl IntoIterator<Item = Dest>) -> DesiredService {
        DesiredService {
            service,
            dests: dests.into_iter().map(|d| ((d.addr, d.port), d)).collect(),
        }
    }
}

impl Desired {
    pub fn insert(&mut self, svc: DesiredService) {
        self.services.insert(svc.service.key, svc);
    }
}

/// What the kernel holds for one owned service, as read by a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub service: ServiceEntry,
    pub dests: Vec<DestEntry>,
}

/// The operations that make the owned part of the kernel equal `desired`.
///
/// `owned` is every service key bigbro is responsible for (configured fwmarks and relay
/// fwmarks, running or not). `observed` may contain anything; entries whose key is not
/// owned are ignored. Keys in `desired` that are not in `owned` are ignored too (the
/// caller's bug, never a reason to touch a foreign service).
pub fn diff(owned: &BTreeSet<ServiceKey>, desired: &Desired, observed: &[Observed]) -> Vec<Op> {
    let observed: BTreeMap<ServiceKey, &Observed> = observed
        .iter()
        .filter(|o| owned.contains(&o.service.service.key))
        .map(|o| (o.service.service.key, o))
        .collect();
    let mut ops = Vec::new();
    for key in owned {
        match (desired.services.get(key), observed.get(key)) {
            (None, None) => {}
            (None, Some(_)) => ops.push(Op::DelService(*key)),
            (Some(want), None) => {
                ops.push(Op::AddService(want.service.clone()));
                ops.extend(want.dests.values().map(|d| Op::AddDest {
                    service: *key,
                    dest: d.clone(),
                }));
            }
            (Some(want), Some(have)) => diff_service(want, have, &mut ops),
        }
    }
    ops
}

/// Whether [`diff`] has anything to do for one owned service: `want` (`None`: it should
/// not exist) against `have` (`None`: the kernel does not hold it). Allocates nothing, so
/// a caller can ask it of every service to find the few that changed. Like the kernel,
/// it takes a service's destinations to be distinct by (address, port).
pub fn differs(want: Option<&DesiredService>, have: Option<&Observed>) -> bool {
    match (want, have) {
        (None, None) => false,
        (Some(_), None) | (None, Some(_)) => true,
        (Some(want), Some(have)) => {
            want.service != have.service.service
                || want.dests.len() != have.dests.len()
                || have
                    .dests
                    .iter()
                    .any(|d| want.dests.get(&(d.dest.addr, d.dest.port)) != Some(&d.dest))
        }
    }
}

fn diff_service(want: &DesiredService, have: &Observed, ops: &mut Vec<Op>) {
    let key = want.service.key;
    if want.service != have.service.service {
        ops.push(Op::EditService(want.service.clone()));
    }
    let have_dests: BTreeMap<(IpAddr, u16), &Dest> = have
        .dests
        .iter()
        .map(|d| ((d.dest.addr, d.dest.port), &d.dest))
        .collect();
    // Additions and raised weights first, then lowered weights, then deletions: a
    // replacement never leaves a moment without a destination that takes connections.
    let mut lowered = Vec::new();
    let mut deletions = Vec::new();
    for (id, dest) in &want.dests {
        match have_dests.get(id) {
            None => ops.push(Op::AddDest {
                service: key,
                dest: dest.clone(),
            }),
            Some(current) if *current != dest => {
                let edit = Op::EditDest {
                    service: key,
                    dest: dest.clone(),
                };
                if dest.weight < current.weight {
                    lowered.push(edit);
                } else {
                    ops.push(edit);
                }
            }
            Some(_) => {}
        }
    }
    ops.extend(lowered);
    for (addr, port) in have_dests.keys() {
        if !want.dests.contains_key(&(*addr, *port)) {
            deletions.push(Op::DelDest {
                service: key,
                addr: *addr,
                port: *port,
            });
        }
    }
    ops.extend(deletions);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ipvs::{Dest, Service, ServiceKey, Stats};
    use crate::types::Fwmark;

    /// The IPv4 fwmark service key `mark` (test shorthand, shared with the pass tests).
    pub(crate) fn key(mark: u32) -> ServiceKey {
        ServiceKey::fwmark_v4(Fwmark::new(mark).unwrap())
    }
    pub(crate) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn observed(svc: Service, dests: &[Dest]) -> Observed {
        Observed {
            service: ServiceEntry {
                service: svc,
                stats: Stats::default(),
            },
            dests: dests
                .iter()
                .map(|d| DestEntry {
                    dest: d.clone(),
                    active_conns: 3,
                    inactive_conns: 0,
                    persist_conns: 0,
                    stats: Stats::default(),
                })
                .collect(),
        }
    }
    fn owned(keys: &[u32]) -> BTreeSet<ServiceKey> {
        keys.iter().map(|k| key(*k)).collect()
    }

    #[test]
    fn creates_a_missing_service_with_its_dests() {
        let mut want = Desired::default();
        want.insert(DesiredService::new(
            Service::new(key(7), "wrr"),
            [Dest::ipip(ip("10.0.0.1"), 1), Dest::ipip(ip("10.0.0.2"), 1)],
        ));
        let ops = diff(&owned(&[7]), &want, &[]);
        assert_eq!(
            ops,
            vec![
                Op::AddService(Service::new(key(7), "wrr")),
                Op::AddDest {
                    service: key(7),
                    dest: Dest::ipip(ip("10.0.0.1"), 1)
                },
                Op::AddDest {
                    service: key(7),
                    dest: Dest::ipip(ip("10.0.0.2"), 1)
                },
            ]
        );
    }

    #[test]
    fn equal_state_needs_no_operation() {
        let svc = Service::new(key(7), "wrr");
        let dests = [
            Dest::ipip(ip("10.0.0.1"), 30),
            Dest::ipip(ip("10.0.0.2"), 70),
        ];
        let mut want = Desired::default();
        want.insert(DesiredService::new(svc.clone(), dests.clone()));
        assert!(diff(&owned(&[7]), &want, &[observed(svc, &dests)]).is_empty());
    }

    #[test]
    fn weight_scheduler_and_membership_changes() {
        let mut want = Desired::default();
        want.insert(DesiredService::new(
            Service::new(key(7), "wlc"),
            [
                Dest::ipip(ip("10.0.0.1"), 50),
                Dest::ipip(ip("10.0.0.3"), 1),
            ],
        ));
        let have = observed(
            Service::new(key(7), "wrr"),
            &[
                Dest::ipip(ip("10.0.0.1"), 100),
                Dest::ipip(ip("10.0.0.2"), 100),
            ],
        );
        let ops = diff(&owned(&[7]), &want, &[have]);
        assert_eq!(
            ops,
            vec![
                Op::EditService(Service::new(key(7), "wlc")),
                Op::AddDest {
                    service: key(7),
                    dest: Dest::ipip(ip("10.0.0.3"), 1)
                },
                Op::EditDest {
                    service: key(7),
                    dest: Dest::ipip(ip("10.0.0.1"), 50)
                },
                Op::DelDest {
                    service: key(7),
                    addr: ip("10.0.0.2"),
                    port: 0
                },
            ],
            "additions, then lowered weights, then deletions"
        );
    }

    #[test]
    fn owned_but_unwanted_service_is_deleted_and_foreign_ones_are_never_touched() {
        let foreign = observed(
            Service::new(key(99), "rr"),
            &[Dest::ipip(ip("10.9.9.9"), 5)],
        );
        let stopped = observed(Service::new(key(7), "wrr"), &[]);
        let mut want = Desired::default();
        // Even a desired entry for a key bigbro does not own is ignored.
        want.insert(DesiredService::new(Service::new(key(99), "wlc"), []));
        let ops = diff(&owned(&[7]), &want, &[foreign, stopped]);
        assert_eq!(ops, vec![Op::DelService(key(7))]);
    }

    #[test]
    fn forwarding_and_threshold_changes_are_edits() {
        let svc = Service::new(key(7), "wrr");
        let mut dr = Dest::ipip(ip("10.0.0.1"), 10);
        dr.forward = crate::ipvs::ForwardMethod::DirectRoute;
        dr.upper_threshold = 100;
        let mut want = Desired::default();
        want.insert(DesiredService::new(svc.clone(), [dr.clone()]));
        let ops = diff(
            &owned(&[7]),
            &want,
            &[observed(svc, &[Dest::ipip(ip("10.0.0.1"), 10)])],
        );
        assert_eq!(
            ops,
            vec![Op::EditDest {
                service: key(7),
                dest: dr
            }]
        );
    }

    #[test]
    fn differs_agrees_with_the_diff() {
        let svc = Service::new(key(7), "wrr");
        let d = |a: &str, w: u32| Dest::ipip(ip(a), w);
        let base = [d("10.0.0.1", 30), d("10.0.0.2", 70)];
        let mut dr = d("10.0.0.1", 30);
        dr.forward = crate::ipvs::ForwardMethod::DirectRoute;
        let wants: Vec<Option<DesiredService>> = vec![
            None,
            Some(DesiredService::new(svc.clone(), base.clone())),
            Some(DesiredService::new(svc.clone(), [])),
            Some(DesiredService::new(
                Service::new(key(7), "wlc"),
                base.clone(),
            )),
            Some(DesiredService::new(
                svc.clone(),
                [d("10.0.0.1", 31), d("10.0.0.2", 70)],
            )),
            Some(DesiredService::new(svc.clone(), [d("10.0.0.1", 30)])),
            Some(DesiredService::new(
                svc.clone(),
                [d("10.0.0.1", 30), d("10.0.0.3", 70)],
            )),
            Some(DesiredService::new(svc.clone(), [dr, d("10.0.0.2", 70)])),
        ];
        let haves: Vec<Option<Observed>> = vec![
            None,
            Some(observed(svc.clone(), &base)),
            Some(observed(svc.clone(), &[])),
            Some(observed(svc.clone(), &base[..1])),
        ];
        let mut checked = 0;
        for want in &wants {
            for have in &haves {
                let mut desired = Desired::default();
                desired.services.extend(want.clone().map(|w| (key(7), w)));
                let ops = diff(&owned(&[7]), &desired, have.as_slice());
                assert_eq!(
                    differs(want.as_ref(), have.as_ref()),
                    !ops.is_empty(),
                    "want {want:?}, have {have:?}: {ops:?}"
                );
                checked += usize::from(!ops.is_empty());
            }
        }
        assert!(checked > 20, "most pairs differ: {checked}");
    }
}
