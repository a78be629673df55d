//! The entries of a cluster's `nodes:` and `vips:` lists, each key declared once in a
//! `section!` table (see `declare.rs`), and the readers that check one value alone: a
//! node address that can receive packets, a health path by the prober's own rule
//! (`health::path_problem`), a vip interface by the mark-rule writer's own rule
//! (`nft::iifname_problem`), a port range. So a node or vip the runtime would refuse is
//! refused where it is written. Rules across values (duplicate nodes, one address family,
//! the probe target as a whole) are in `validate.rs`.
//!
//! Never applies a default (that is `validate.rs`, from the tables here) and never
//! compares two entries.

use std::net::IpAddr;

use super::declare::{over, section};
use super::diag::{quote, Diags, KeyPath};
use super::raw::{entry_map, port, IDENTITY_KEYS, SETTING_KEYS};
use super::read::{self, given, At, Slot};
use super::yaml::Node;
use crate::health::{path_problem, PathProblem};
use crate::nft::{iifname_problem, L4Proto, PortRange};
use crate::types::Weight;

/// The words `protocol:` accepts.
const PROTOCOLS: [(&str, L4Proto); 3] = [
    ("tcp", L4Proto::Tcp),
    ("udp", L4Proto::Udp),
    ("sctp", L4Proto::Sctp),
];

section! {
    /// A node entry: a local real server, or with `interpol: true` an interpol endpoint
    /// (which validate.rs reads with its own "missing key" reasons).
    RawNode, settled NodeSettled, keys NODE_KEYS;
    address: IpAddr = ["address"]
        read |e, _, d| unicast(e.value, &e.path, "a node address", d),
        merge over, required "the real server's IP address";
    port: u16 = ["port"]
        read |e, _, d| port(e.value, &e.path, d), merge over, required "the health-check port";
    /// Required for litmus (validate.rs); `/` for http and tcp.
    url_path: String = ["path"]
        read |e, _, d| url_path(e.value, &e.path, d), merge over, default "/".to_string();
    priority: i64 = ["priority"]
        read |e, _, d| read::integer(e.value, &e.path, i64::from(i32::MIN), i64::from(i32::MAX), d),
        merge over, default 0;
    /// `Given(None)`: written empty (no cap).
    max_weight: Option<Weight> = ["max_weight"]
        read |e, _, d| if e.value.is_null() {
            given(None, e.value, &e.path)
        } else {
            read::integer(e.value, &e.path, 0, i64::from(Weight::MAX.get()), d)
                .map(|w| (w > 0).then(|| Weight::clamped(w as u64)))
        },
        merge over, default None;
    interpol: bool = ["interpol"]
        read |e, _, d| read::boolean(e.value, &e.path, d), merge over, default false;
    /// 0: no limit. Compared with `lower_threshold` in options.rs.
    upper_threshold: u32 = ["upper_threshold"]
        read |e, _, d| read::integer(e.value, &e.path, 0, i64::from(u32::MAX), d).map(|n| n as u32),
        merge over, default 0;
    lower_threshold: u32 = ["lower_threshold"]
        read |e, _, d| read::integer(e.value, &e.path, 0, i64::from(u32::MAX), d).map(|n| n as u32),
        merge over, default 0;
}

section! {
    /// A vip entry: traffic bigbro marks with the cluster's fwmark.
    RawVip, settled VipSettled, keys VIP_KEYS;
    address: IpAddr = ["address"]
        read |e, _, d| unicast(e.value, &e.path, "a vip address", d),
        merge over, required "the virtual IP address";
    protocol: L4Proto = ["protocol"]
        read |e, _, d| read::choice(e.value, &e.path, "a protocol", &PROTOCOLS, d),
        merge over, default L4Proto::Tcp;
    ports: PortRange = ["port"]
        read |e, _, d| port_range(e.value, &e.path, d),
        merge over, required "a port such as 443 or a range such as 8000-8080";
    /// Only packets arriving on this interface, when set.
    interface: Option<String> = ["interface"]
        read |e, _, d| vip_interface(e.value, &e.path, d), merge over, default None;
}

pub(crate) fn nodes(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Vec<At<RawNode>>> {
    let Some(items) = read::list(node, path, "a list of nodes", d) else {
        return Slot::Invalid;
    };
    if items.is_empty() {
        d.at(
            node.pos,
            path,
            "no nodes: a cluster needs at least one node",
        );
        return Slot::Invalid;
    }
    let out = items
        .into_iter()
        .filter_map(|(p, item)| one_node(item, &p, d))
        .collect();
    given(out, node, path)
}

fn one_node(node: &Node, path: &KeyPath, d: &mut Diags) -> Option<At<RawNode>> {
    let hint = |key: &str| {
        (SETTING_KEYS.contains(&key) || IDENTITY_KEYS.contains(&key))
            .then(|| format!("{key} is a cluster key, not a node key"))
    };
    let entries = read::entries(node, path, "a node", NODE_KEYS, &hint, d)?;
    Some(entry_map(node, path, &entries, d))
}

/// An address a packet can be sent to: not 0.0.0.0/::, multicast or broadcast.
fn unicast(node: &Node, path: &KeyPath, what: &str, d: &mut Diags) -> Slot<IpAddr> {
    let slot = read::ip(node, path, d);
    if let Some(a) = slot.value() {
        let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
        if a.is_unspecified() || a.is_multicast() || broadcast {
            d.at(
                node.pos,
                path,
                format!("{a} cannot be {what} (unspecified, multicast or broadcast)"),
            );
            return Slot::Invalid;
        }
    }
    slot
}

/// A health-check URL path: starts with `/`, visible ASCII only (the prober's rule).
fn url_path(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<String> {
    let Some(text) = read::scalar(node, path, "a URL path", d) else {
        return Slot::Invalid;
    };
    // The prober's own rule decides; this only words it.
    let problem = match path_problem(text) {
        None => return given(text.to_string(), node, path),
        Some(PathProblem::NotAbsolute) => format!("{} does not start with /", quote(text)),
        Some(PathProblem::BadChar(_))
            if text.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            format!("{} contains spaces or control characters", quote(text))
        }
        Some(PathProblem::BadChar(c)) => {
            let mut utf8 = [0; 4];
            let encoded: String = c
                .encode_utf8(&mut utf8)
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect();
            format!(
                "{} contains {c:?}, which a probe cannot send (a request path is visible ASCII); percent-encode it: {encoded}",
                quote(text)
            )
        }
    };
    d.at(node.pos, path, problem);
    Slot::Invalid
}

pub(crate) fn vips(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Vec<At<RawVip>>> {
    if node.is_null() {
        return given(Vec::new(), node, path);
    }
    let Some(items) = read::list(node, path, "a list of vips", d) else {
        return Slot::Invalid;
    };
    let out = items
        .into_iter()
        .filter_map(|(p, item)| one_vip(item, &p, d))
        .collect();
    given(out, node, path)
}

fn one_vip(node: &Node, path: &KeyPath, d: &mut Diags) -> Option<At<RawVip>> {
    let no_hint = |_: &str| None;
    let entries = read::entries(node, path, "a vip", VIP_KEYS, &no_hint, d)?;
    Some(entry_map(node, path, &entries, d))
}

/// A vip's interface: a Linux interface name, and one the mark-rule writer accepts (by
/// its own rule, `nft::iifname_problem`: no `*`, `"` or `\`).
fn vip_interface(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Option<String>> {
    match read::interface(node, path, d) {
        Slot::Given(at) => match iifname_problem(&at.value) {
            Some(reason) => {
                d.at(at.pos, &at.path, reason);
                Slot::Invalid
            }
            None => Slot::Given(at).map(Some),
        },
        other => other.map(Some),
    }
}

/// `443` or `"8000-8080"`.
fn port_range(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<PortRange> {
    let Some(text) = read::scalar(node, path, "a port or port range", d) else {
        return Slot::Invalid;
    };
    let parse = |s: &str| s.trim().parse::<u32>().ok();
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (parse(a), parse(b)),
        None => (parse(text), parse(text)),
    };
    let (Some(first), Some(last)) = (first, last) else {
        d.at(
            node.pos,
            path,
            format!(
                "{} is not a port or port range (write e.g. 443 or 8000-8080)",
                quote(text)
            ),
        );
        return Slot::Invalid;
    };
    for p in [first, last] {
        if !(1..=65535).contains(&p) {
            d.at(node.pos, path, format!("{p} is outside 1..65535"));
            return Slot::Invalid;
        }
    }
    if first > last {
        d.at(
            node.pos,
            path,
            format!(
                "{} is not a port range: {first} is above {last}",
                quote(text)
            ),
        );
        return Slot::Invalid;
    }
    given(
        PortRange {
            first: first as u16,
            last: last as u16,
        },
        node,
        path,
    )
}
