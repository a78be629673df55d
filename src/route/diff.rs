//! The pure half of the route layer: from the VIPs wanted on the owned interface and the
//! addresses the kernel listed, the smallest list of [`AddrOp`]s, and the VIPs bigbro must
//! refuse ([`Conflict`]).
//!
//! The ownership rule lives here: every address on the owned interface is bigbro's (it
//! removes what it does not want, whatever the prefix length, except the IPv6 link-local
//! address the kernel puts there itself); no address on any other interface is, so a VIP
//! that is already a local address elsewhere is reported and left alone, never added a
//! second time and never removed. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use super::model::{host_prefix, is_vip_address, AddrOp, Interface, LocalAddr};

/// The kernel's addresses, split by owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// (address, prefix length) on the owned interface, the kernel's link-local aside.
    pub owned: BTreeSet<(IpAddr, u8)>,
    /// Every address on another interface, with the names of the interfaces holding it.
    pub foreign: BTreeMap<IpAddr, Vec<String>>,
}

impl Observed {
    /// Splits an address dump of the whole namespace by owner.
    pub fn split(owned: &Interface, addrs: &[LocalAddr]) -> Observed {
        let mut observed = Observed::default();
        for a in addrs {
            if a.index == owned.index {
                if !a.is_kernel_link_local() {
                    observed.owned.insert((a.addr, a.prefix_len));
                }
            } else {
                let names = observed.foreign.entry(a.addr).or_default();
                if !names.contains(&a.interface) {
                    names.push(a.interface.clone());
                }
            }
        }
        observed
    }

    /// The VIPs on the owned interface as bigbro puts them (/32, /128).
    pub fn vips(&self) -> BTreeSet<IpAddr> {
        self.owned
            .iter()
            .filter(|(addr, len)| *len == host_prefix(addr))
            .map(|(addr, _)| *addr)
            .collect()
    }
}

/// A wanted VIP that bigbro does not put on its interface.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Conflict {
    /// Already a local address on another interface (a foreign address: bigbro never
    /// takes it over, and never removes it).
    Foreign {
        vip: IpAddr,
        interfaces: Vec<String>,
    },
    /// Not an address a VIP can be: unspecified, multicast, broadcast, loopback or IPv6
    /// link-local.
    NotUnicast { vip: IpAddr },
}

impl Conflict {
    pub fn vip(&self) -> IpAddr {
        match self {
            Conflict::Foreign { vip, .. } | Conflict::NotUnicast { vip } => *vip,
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Foreign { vip, interfaces } => write!(
                f,
                "VIP {vip} is already a local address on {}: bigbro leaves it there and does \
                 not add it to its own interface",
                interfaces.join(", ")
            ),
            Conflict::NotUnicast { vip } => write!(
                f,
                "VIP {vip} is not a unicast address an interface can hold for it \
                 (unspecified, multicast, broadcast, loopback or link-local)"
            ),
        }
    }
}

/// What one pass changes on the owned interface, and what it refuses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Removals first (so an address with the wrong prefix length is gone before its
    /// /32 or /128 comes back), then additions; each in address order.
    pub ops: Vec<AddrOp>,
    pub conflicts: Vec<Conflict>,
}

/// The changes that make the owned interface hold exactly `desired` (as /32 and /128).
pub fn diff(desired: &BTreeSet<IpAddr>, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    let mut refused = BTreeSet::new();
    for vip in desired {
        if !is_vip_address(vip) {
            plan.conflicts.push(Conflict::NotUnicast { vip: *vip });
            refused.insert(*vip);
        } else if let Some(interfaces) = observed.foreign.get(vip) {
            plan.conflicts.push(Conflict::Foreign {
                vip: *vip,
                interfaces: interfaces.clone(),
            });
            refused.insert(*vip);
        }
    }
    for &(addr, prefix_len) in &observed.owned {
        let host = prefix_len == host_prefix(&addr);
        // A refused VIP already on the owned interface stays: it is bigbro's copy, and
        // taking it away would change nothing about the foreign one.
        let keep = host && (desired.contains(&addr) || refused.contains(&addr));
        if !keep {
            plan.ops.push(AddrOp::Remove { addr, prefix_len });
        }
    }
    let present = observed.vips();
    for vip in desired {
        if !refused.contains(vip) && !present.contains(vip) {
            plan.ops.push(AddrOp::Add(*vip));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::model::testing::{ip, set};

    fn bigbro0() -> Interface {
        Interface {
            index: 7,
            name: "bigbro0".into(),
        }
    }

    fn on(index: u32, interface: &str, addr: &str, prefix_len: u8) -> LocalAddr {
        LocalAddr {
            index,
            interface: interface.into(),
            addr: ip(addr),
            prefix_len,
        }
    }

    #[test]
    fn an_empty_interface_gets_every_vip() {
        let plan = diff(&set(&["192.0.2.10", "2001:db8::10"]), &Observed::default());
        assert_eq!(
            plan.ops,
            vec![
                AddrOp::Add(ip("192.0.2.10")),
                AddrOp::Add(ip("2001:db8::10"))
            ]
        );
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn what_is_there_is_adopted_and_nothing_more_is_sent() {
        let addrs = [
            on(7, "bigbro0", "192.0.2.10", 32),
            on(7, "bigbro0", "2001:db8::10", 128),
            on(7, "bigbro0", "fe80::1", 64),
        ];
        let observed = Observed::split(&bigbro0(), &addrs);
        let plan = diff(&set(&["192.0.2.10", "2001:db8::10"]), &observed);
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn unwanted_addresses_on_the_owned_interface_go_and_the_kernels_link_local_stays() {
        let addrs = [
            on(7, "bigbro0", "192.0.2.10", 32),
            on(7, "bigbro0", "192.0.2.11", 32),
            on(7, "bigbro0", "fe80::1", 64),
        ];
        let plan = diff(&set(&["192.0.2.10"]), &Observed::split(&bigbro0(), &addrs));
        assert_eq!(
            plan.ops,
            vec![AddrOp::Remove {
                addr: ip("192.0.2.11"),
                prefix_len: 32
            }]
        );
    }

    #[test]
    fn a_vip_with_the_wrong_prefix_is_removed_before_it_is_added_back() {
        let addrs = [on(7, "bigbro0", "192.0.2.10", 24)];
        let plan = diff(&set(&["192.0.2.10"]), &Observed::split(&bigbro0(), &addrs));
        assert_eq!(
            plan.ops,
            vec![
                AddrOp::Remove {
                    addr: ip("192.0.2.10"),
                    prefix_len: 24
                },
                AddrOp::Add(ip("192.0.2.10")),
            ]
        );
    }

    #[test]
    fn foreign_addresses_are_conflicts_never_ops() {
        let addrs = [
            on(1, "lo", "127.0.0.1", 8),
            on(1, "lo", "192.0.2.20", 32),
            on(3, "other0", "192.0.2.21", 32),
            on(4, "eth0", "192.0.2.21", 24),
            on(3, "other0", "2001:db8::21", 128),
        ];
        let observed = Observed::split(&bigbro0(), &addrs);
        let plan = diff(
            &set(&["192.0.2.10", "192.0.2.20", "192.0.2.21", "2001:db8::21"]),
            &observed,
        );
        assert_eq!(plan.ops, vec![AddrOp::Add(ip("192.0.2.10"))]);
        assert_eq!(
            plan.conflicts,
            vec![
                Conflict::Foreign {
                    vip: ip("192.0.2.20"),
                    interfaces: vec!["lo".into()]
                },
                Conflict::Foreign {
                    vip: ip("192.0.2.21"),
                    interfaces: vec!["other0".into(), "eth0".into()]
                },
                Conflict::Foreign {
                    vip: ip("2001:db8::21"),
                    interfaces: vec!["other0".into()]
                },
            ]
        );
        assert_eq!(
            plan.conflicts[1].to_string(),
            "VIP 192.0.2.21 is already a local address on other0, eth0: bigbro leaves it \
             there and does not add it to its own interface"
        );
        // Nothing wanted: still no op touches another interface's address.
        assert_eq!(diff(&BTreeSet::new(), &observed), Plan::default());
    }

    #[test]
    fn a_vip_that_became_foreign_keeps_bigbros_copy() {
        let addrs = [
            on(7, "bigbro0", "192.0.2.10", 32),
            on(1, "lo", "192.0.2.10", 32),
        ];
        let plan = diff(&set(&["192.0.2.10"]), &Observed::split(&bigbro0(), &addrs));
        assert!(plan.ops.is_empty());
        assert_eq!(plan.conflicts.len(), 1);
        // Once no longer wanted, bigbro's copy goes; the foreign one is not named.
        let plan = diff(&BTreeSet::new(), &Observed::split(&bigbro0(), &addrs));
        assert_eq!(
            plan.ops,
            vec![AddrOp::Remove {
                addr: ip("192.0.2.10"),
                prefix_len: 32
            }]
        );
    }

    #[test]
    fn addresses_that_cannot_be_vips_are_refused() {
        let plan = diff(
            &set(&["0.0.0.0", "fe80::1", "ff02::1", "127.0.0.2"]),
            &Observed::default(),
        );
        assert!(plan.ops.is_empty());
        assert_eq!(plan.conflicts.len(), 4);
        assert!(plan
            .conflicts
            .iter()
            .all(|c| matches!(c, Conflict::NotUnicast { .. })));
    }
}
