//! The IPVS service options a cluster can set, and the connection thresholds a node can:
//! `persistence: {timeout, netmask}` (`ipvsadm -p`/`-M`), `scheduler_flags`
//! (`ipvsadm -b`), `one_packet` (`ipvsadm -o`), and a node's `upper_threshold` /
//! `lower_threshold` (`ipvsadm -x`/`-y`). Each key is one line of the `section!` tables
//! in `raw.rs` and `nodes.rs`; this file holds their readers and the rules that compare
//! them with other values (a flag with its scheduler, a netmask with the address family,
//! `one_packet` with the vips' protocols, the two thresholds with each other).
//!
//! A value that `_big_brother` gives every cluster and that does not fit one of them (an
//! `mh-port` flag on a `wrr` cluster, `one_packet` on a cluster whose vips are all TCP)
//! is left out for that cluster, as `multi_datacenter` is for active_passive clusters;
//! written on the cluster itself it is an error. It never builds kernel objects
//! (`src/desired/objects.rs` turns [`ServiceOptions`] into service flags).

use std::net::Ipv4Addr;

use super::declare::{over, section};
use super::diag::{quote, Diags, KeyPath};
use super::model::{Persistence, Scheduler, SchedulerFlag, ServiceOptions};
use super::nodes::RawNode;
use super::raw::RawSettings;
use super::read::{self, given, At, Slot};
use super::yaml::Node;
use crate::ipvs::Family;
use crate::nft::L4Proto;

/// ipvsadm's longest persistence timeout (`-p`): 31 days.
pub const MAX_PERSISTENCE_TIMEOUT: u32 = 86_400 * 31;
/// ipvsadm's persistence timeout when `-p` is given without one.
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 300;

/// The words `scheduler_flags:` accepts.
const FLAGS: [(&str, SchedulerFlag); 4] = {
    let mut out = [("", SchedulerFlag::ShFallback); 4];
    let mut i = 0;
    while i < 4 {
        out[i] = (SchedulerFlag::ALL[i].as_str(), SchedulerFlag::ALL[i]);
        i += 1;
    }
    out
};

/// A persistence netmask as written: a prefix length, or an IPv4 mask in dotted form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Netmask {
    pub prefix_len: u8,
    /// Written as `255.255.255.0`: IPv4 only.
    pub dotted: bool,
}

section! {
    /// `persistence:`, client affinity (`ipvsadm -p TIMEOUT -M NETMASK`).
    RawPersistence, settled PersistenceSettled, keys PERSISTENCE_KEYS;
    timeout: u32 = ["timeout"]
        read |e, _, d| read::integer(e.value, &e.path, 1, i64::from(MAX_PERSISTENCE_TIMEOUT), d)
            .map(|n| n as u32),
        merge over, default DEFAULT_PERSISTENCE_TIMEOUT;
    /// `None`: each client address on its own (/32, /128).
    netmask: Option<Netmask> = ["netmask"]
        read |e, _, d| netmask(e.value, &e.path, d).map(Some), merge over, default None;
}

/// `netmask: 24`, `netmask: 255.255.255.0` or (IPv6) `netmask: 64`.
fn netmask(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Netmask> {
    let Some(text) = read::scalar(node, path, "a netmask", d) else {
        return Slot::Invalid;
    };
    let text = text.trim();
    let parsed = match (text.parse::<u8>(), text.parse::<Ipv4Addr>()) {
        (Ok(len), _) if len <= 128 => Some(Netmask {
            prefix_len: len,
            dotted: false,
        }),
        (_, Ok(mask)) => {
            let bits = u32::from(mask);
            // Contiguous: the ones, then only zeros.
            (bits.leading_ones() + bits.trailing_zeros() == 32).then(|| Netmask {
                prefix_len: bits.leading_ones() as u8,
                dotted: true,
            })
        }
        _ => None,
    };
    match parsed {
        Some(m) => given(m, node, path),
        None => {
            d.at(
                node.pos,
                path,
                format!(
                    "{} is not a netmask (a prefix length such as 24, or an IPv4 mask such as 255.255.255.0)",
                    quote(text)
                ),
            );
            Slot::Invalid
        }
    }
}

/// `scheduler_flags: [mh-fallback, mh-port]`, each flag with where it is written.
pub(crate) fn scheduler_flags(
    node: &Node,
    path: &KeyPath,
    d: &mut Diags,
) -> Slot<Vec<At<SchedulerFlag>>> {
    if node.is_null() {
        return given(Vec::new(), node, path);
    }
    let Some(items) = read::list(node, path, "a list of scheduler flags", d) else {
        return Slot::Invalid;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (p, item) in items {
        match read::choice(item, &p, "a scheduler flag", &FLAGS, d) {
            Slot::Given(at) => out.push(at),
            _ => ok = false,
        }
    }
    if ok {
        given(out, node, path)
    } else {
        Slot::Invalid
    }
}

/// The cluster's service options, checked against its scheduler, address family and vips
/// (`None` when one is wrong, reported). `whose` ends an error about a `_big_brother`
/// value with the cluster it is wrong for.
pub(crate) fn service_options(
    s: &RawSettings,
    scheduler: Option<Scheduler>,
    family: Family,
    vip_protocols: &[L4Proto],
    whose: &dyn Fn(&KeyPath) -> String,
    d: &mut Diags,
) -> Option<ServiceOptions> {
    let persistence = persistence(s, family, whose, d);
    let flags = flags(s, scheduler?, d);
    let one_packet = one_packet(s, vip_protocols, d);
    Some(ServiceOptions {
        persistence: persistence?,
        scheduler_flags: flags?,
        one_packet: one_packet?,
    })
}

fn persistence(
    s: &RawSettings,
    family: Family,
    whose: &dyn Fn(&KeyPath) -> String,
    d: &mut Diags,
) -> Option<Option<Persistence>> {
    let (raw, pos, path) = match &s.persistence {
        Slot::Absent | Slot::Given(At { value: None, .. }) => return Some(None),
        Slot::Invalid => return None,
        Slot::Given(At {
            value: Some(p),
            pos,
            path,
        }) => (p, *pos, path),
    };
    let settled = raw.settle((pos, path), &whose(path), d);
    let full = match family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let prefix_len = match (settled.netmask?, raw.netmask.given()) {
        (Some(m), Some(at)) => {
            let problem = match family {
                Family::V4 if m.prefix_len > 32 => Some("an IPv4 netmask is at most 32 bits"),
                Family::V6 if m.dotted => {
                    Some("an IPv6 cluster takes a prefix length (1 to 128), not a dotted mask")
                }
                Family::V6 if m.prefix_len == 0 => Some("an IPv6 netmask is 1 to 128 bits"),
                _ => None,
            };
            if let Some(problem) = problem {
                d.at(at.pos, &at.path, format!("{problem}{}", whose(&at.path)));
                return None;
            }
            m.prefix_len
        }
        _ => full,
    };
    Some(Some(Persistence {
        timeout: settled.timeout?,
        prefix_len,
    }))
}

fn flags(s: &RawSettings, scheduler: Scheduler, d: &mut Diags) -> Option<Vec<SchedulerFlag>> {
    let list = match &s.scheduler_flags {
        Slot::Absent => return Some(Vec::new()),
        Slot::Invalid => return None,
        Slot::Given(at) => &at.value,
    };
    let mut out = Vec::new();
    let mut ok = true;
    for at in list {
        let flag = at.value;
        if flag.scheduler() == scheduler {
            if !out.contains(&flag) {
                out.push(flag);
            }
        } else if !at.path.is_under("_big_brother") {
            d.at(
                at.pos,
                &at.path,
                format!(
                    "{} is a flag of the {} scheduler, but this cluster's scheduler is {}",
                    flag.as_str(),
                    flag.scheduler().as_str(),
                    scheduler.as_str()
                ),
            );
            ok = false;
        }
    }
    out.sort();
    ok.then_some(out)
}

fn one_packet(s: &RawSettings, vip_protocols: &[L4Proto], d: &mut Diags) -> Option<bool> {
    match &s.one_packet {
        Slot::Absent => Some(false),
        Slot::Invalid => None,
        Slot::Given(at) if !at.value => Some(false),
        Slot::Given(at) => {
            // No vips: the marking is done elsewhere, and the kernel applies one-packet
            // scheduling to the UDP packets of the mark only.
            let udp = vip_protocols.is_empty() || vip_protocols.contains(&L4Proto::Udp);
            if udp {
                Some(true)
            } else if at.path.is_under("_big_brother") {
                Some(false)
            } else {
                d.at(
                    at.pos,
                    &at.path,
                    "one_packet only applies to UDP, and none of this cluster's vips is udp",
                );
                None
            }
        }
    }
}

/// A node's `upper_threshold` and `lower_threshold` (0 = unset), if they agree.
pub(crate) fn thresholds(raw: &RawNode, upper: u32, lower: u32, d: &mut Diags) -> Option<()> {
    let Some(at) = raw.lower_threshold.given().filter(|_| lower > 0) else {
        return Some(());
    };
    let problem = if upper == 0 {
        "lower_threshold needs an upper_threshold (it is where a node held at its upper threshold takes new connections again)".to_string()
    } else if lower > upper {
        format!("lower_threshold {lower} is above upper_threshold {upper}")
    } else {
        return Some(());
    };
    d.at(at.pos, &at.path, problem);
    None
}
