//! Turns each cluster as written (defaults already merged) into a checked
//! [`Cluster`](super::model::Cluster): fills in bigbro's defaults, then checks what needs
//! more than one value (timeout against interval, duplicate nodes, one address family,
//! forwarding options, required keys). Rules that compare clusters with each other are in
//! `unique.rs`.
//!
//! Every problem is reported (with the position of the value at fault, or of the map that
//! lacks a key) and checking goes on; a cluster with any error yields no `Cluster`.

use std::net::IpAddr;
use std::time::Duration;

use super::diag::{Diags, KeyPath, Pos};
use super::model::{
    fmt_secs, BackendMode, Cluster, Forwarding, HealthCheck, HealthKind, InterpolNode, Nagios,
    Node, TunnelChecksum, Vip, DEFAULT_CHECK_INTERVAL, DEFAULT_DOWNPAGE, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_OFFSET, DEFAULT_RAMP_UP_TIME,
};
use super::raw::{ForwardKind, RawCluster, RawNode, RawSettings, RawVip};
use super::read::{At, Slot};
use crate::ipvs::Family;
use crate::nft::L4Proto;
use crate::types::{ClusterName, Fwmark};

/// The shortest check interval accepted (big_brother's ticker ran every 0.1 s).
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Whether a value came from the `_big_brother` defaults rather than the cluster itself.
fn from_defaults<T>(at: &At<T>) -> bool {
    at.path.is_under("_big_brother")
}

/// A required value, or an error on the map that should hold it.
fn require<T: Clone>(
    slot: &Slot<T>,
    key: &str,
    why: &str,
    map: (Pos, &KeyPath),
    d: &mut Diags,
) -> Option<T> {
    match slot {
        Slot::Given(at) => Some(at.value.clone()),
        Slot::Invalid => None,
        Slot::Absent => {
            d.at(map.0, map.1, format!("missing key {key} ({why})"));
            None
        }
    }
}

/// A value, its default when absent, `None` when invalid (already reported).
fn or_default<T: Clone>(slot: &Slot<T>, default: T) -> Option<T> {
    match slot {
        Slot::Given(at) => Some(at.value.clone()),
        Slot::Absent => Some(default),
        Slot::Invalid => None,
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// Builds one cluster from its merged settings. `settings` is the cluster's own settings
/// already merged with `_big_brother`.
pub(crate) fn cluster(raw: &RawCluster, settings: &RawSettings, d: &mut Diags) -> Option<Cluster> {
    let before = d.len();
    let here = (raw.pos, &raw.path);
    let name = require(
        &raw.name,
        "cluster_name",
        "the name the API and logs use",
        here,
        d,
    );
    let fwmark = require(
        &raw.fwmark,
        "fwmark",
        "the IPVS fwmark service number",
        here,
        d,
    );
    let scheduler = require(
        &settings.scheduler,
        "scheduler",
        "an IPVS scheduler such as wrr or wlc; set it here or in _big_brother",
        here,
        d,
    );
    let check_interval = interval(&settings.check_interval, d);
    let backend_mode = or_default(&settings.backend_mode, BackendMode::ActiveActive);
    let ramp_up_time = or_default(&settings.ramp_up_time, DEFAULT_RAMP_UP_TIME);
    let max_down_ticks = or_default(&settings.max_down_ticks, 0);
    let non_egress_locations = or_default(&settings.non_egress_locations, Vec::new());
    let offset = or_default(&settings.offset, DEFAULT_OFFSET);
    let nagios = nagios(settings, raw, d);
    let multi_datacenter = multi_datacenter(settings, backend_mode, d);
    let forwarding = forwarding(settings, d);
    let health = check_interval.and_then(|i| health(settings, i, raw, d));

    // The probe kind decides whether nodes need a path, even when other health values
    // are wrong.
    let kind = match settings.health.value().map(|h| &h.kind) {
        Some(Slot::Given(at)) => at.value,
        _ => HealthKind::Litmus,
    };
    let (nodes, interpol) = nodes(raw, kind, d);
    let vips = vips(raw, d);

    // One address family for the whole cluster: the first local node's (else the first
    // interpol node's, else the first vip's).
    let family = nodes
        .first()
        .map(|(n, _)| Family::of(&n.address))
        .or_else(|| interpol.first().map(|(n, _)| Family::of(&n.address)))
        .or_else(|| vips.first().map(|(v, _)| Family::of(&v.address)))
        .unwrap_or(Family::V4);
    let first = nodes.first().map(|(_, at)| at.path.to_string());
    let family_check = |addr: &IpAddr, pos: Pos, path: &KeyPath, d: &mut Diags| {
        if Family::of(addr) != family {
            let basis = match &first {
                Some(p) => format!("{p} is {}", family_name(family)),
                None => format!("the cluster is {}", family_name(family)),
            };
            d.at(
                pos,
                path,
                format!(
                    "{addr} is {} but {basis}; a cluster serves one address family",
                    family_name(Family::of(addr))
                ),
            );
        }
    };
    for (n, at) in nodes.iter().skip(1) {
        family_check(&n.address, at.pos, &at.path.key("address"), d);
    }
    for (v, at) in &vips {
        family_check(&v.address, at.pos, &at.path.key("address"), d);
    }
    let downpage = downpage(settings, family, &nodes, d);

    if d.len() > before {
        return None;
    }
    Some(Cluster {
        name: ClusterName(name?),
        fwmark: Fwmark::new(fwmark?)?,
        scheduler: scheduler?,
        check_interval: check_interval?,
        backend_mode: backend_mode?,
        ramp_up_time: ramp_up_time?,
        downpage: downpage?,
        max_down_ticks: max_down_ticks?,
        non_egress_locations: non_egress_locations?,
        nagios: nagios?,
        offset: offset?,
        multi_datacenter: multi_datacenter?,
        forwarding: forwarding?,
        health: health?,
        vips: vips.into_iter().map(|(v, _)| v).collect(),
        nodes: nodes.into_iter().map(|(n, _)| n).collect(),
        interpol: interpol.into_iter().map(|(n, _)| n).collect(),
        family,
    })
}

fn interval(slot: &Slot<Duration>, d: &mut Diags) -> Option<Duration> {
    match slot {
        Slot::Given(at) if at.value < MIN_CHECK_INTERVAL => {
            d.at(
                at.pos,
                &at.path,
                format!(
                    "{} is shorter than the shortest check interval, {}",
                    fmt_secs(at.value),
                    fmt_secs(MIN_CHECK_INTERVAL)
                ),
            );
            None
        }
        other => or_default(other, DEFAULT_CHECK_INTERVAL),
    }
}

/// ` for cluster "web"` when a value came from `_big_brother` (so the error says which
/// cluster it is wrong for), else nothing.
fn for_cluster(path: &KeyPath, raw: &RawCluster) -> String {
    if !path.is_under("_big_brother") {
        return String::new();
    }
    match raw.name.value() {
        Some(name) => format!(" for cluster \"{name}\""),
        None => format!(" for {}", raw.path),
    }
}

fn nagios(s: &RawSettings, raw: &RawCluster, d: &mut Diags) -> Option<Option<Nagios>> {
    match &s.nagios {
        Slot::Absent => Some(None),
        Slot::Invalid => None,
        Slot::Given(At { value: None, .. }) => Some(None),
        Slot::Given(At { value: Some(n), .. }) => {
            let here = (n.pos, &n.path);
            let whose = for_cluster(&n.path, raw);
            let server = require(
                &n.server,
                "server",
                &format!("the NSCA server send_nsca sends to{whose}"),
                here,
                d,
            );
            let host = require(
                &n.host,
                "host",
                &format!("the Nagios host the check belongs to{whose}"),
                here,
                d,
            );
            let check = require(
                &n.check,
                "check",
                &format!("the Nagios service name{whose}"),
                here,
                d,
            );
            Some(Some(Nagios {
                server: server?,
                host: host?,
                check: check?,
            }))
        }
    }
}

fn multi_datacenter(s: &RawSettings, mode: Option<BackendMode>, d: &mut Diags) -> Option<bool> {
    match (&s.multi_datacenter, mode) {
        (Slot::Given(at), Some(BackendMode::ActivePassive)) if at.value => {
            if from_defaults(at) {
                // A default for every cluster; active_passive clusters have no relay.
                Some(false)
            } else {
                d.at(
                    at.pos,
                    &at.path,
                    "multi_datacenter needs backend_mode active_active (an active_passive cluster has no relay service)",
                );
                None
            }
        }
        (slot, _) => or_default(slot, false),
    }
}

fn forwarding(s: &RawSettings, d: &mut Diags) -> Option<Forwarding> {
    let kind = or_default(&s.forwarding, ForwardKind::Ipip)?;
    let checksum = or_default(&s.tunnel_checksum, TunnelChecksum::None);
    if let Some(at) = s.gue_port.given() {
        if kind != ForwardKind::Gue && !from_defaults(at) {
            d.at(at.pos, &at.path, "gue_port only applies to forwarding: gue");
            return None;
        }
    }
    if let Some(at) = s.tunnel_checksum.given() {
        let tunnel = matches!(kind, ForwardKind::Gue | ForwardKind::Gre);
        if !tunnel && !from_defaults(at) {
            d.at(
                at.pos,
                &at.path,
                "tunnel_checksum only applies to forwarding: gue or gre",
            );
            return None;
        }
    }
    Some(match kind {
        ForwardKind::Ipip => Forwarding::Ipip,
        ForwardKind::Dr => Forwarding::Dr,
        ForwardKind::Nat => Forwarding::Nat,
        ForwardKind::Gre => Forwarding::Gre {
            checksum: checksum?,
        },
        ForwardKind::Gue => match &s.gue_port {
            Slot::Given(at) => Forwarding::Gue {
                port: at.value,
                checksum: checksum?,
            },
            Slot::Invalid => return None,
            Slot::Absent => {
                let at = s.forwarding.given()?;
                d.at(
                    at.pos,
                    &at.path,
                    "forwarding gue needs gue_port (the UDP port the real servers decapsulate on)",
                );
                return None;
            }
        },
    })
}

fn health(
    s: &RawSettings,
    interval: Duration,
    raw: &RawCluster,
    d: &mut Diags,
) -> Option<HealthCheck> {
    let (kind, timeout, rise, fall) = match &s.health {
        Slot::Invalid => return None,
        Slot::Absent => (Slot::Absent, Slot::Absent, Slot::Absent, Slot::Absent),
        Slot::Given(at) => (
            at.value.kind.clone(),
            at.value.timeout.clone(),
            at.value.rise.clone(),
            at.value.fall.clone(),
        ),
    };
    let default_timeout = DEFAULT_HEALTH_TIMEOUT.min(interval / 2);
    if let Some(at) = timeout.given() {
        if at.value >= interval {
            let whose = for_cluster(&at.path, raw);
            d.at(
                at.pos,
                &at.path,
                format!(
                    "timeout {} is not shorter than the check interval {}{whose}",
                    fmt_secs(at.value),
                    fmt_secs(interval)
                ),
            );
            return None;
        }
    }
    Some(HealthCheck {
        kind: or_default(&kind, HealthKind::Litmus)?,
        timeout: or_default(&timeout, default_timeout)?,
        rise: or_default(&rise, 1)?,
        fall: or_default(&fall, 1)?,
    })
}

type Placed<T> = (T, At<()>);

fn place(pos: Pos, path: &KeyPath) -> At<()> {
    At {
        value: (),
        pos,
        path: path.clone(),
    }
}

/// Local nodes and interpol nodes, each with the position of its address.
fn nodes(
    raw: &RawCluster,
    kind: HealthKind,
    d: &mut Diags,
) -> (Vec<Placed<Node>>, Vec<Placed<InterpolNode>>) {
    let mut local: Vec<Placed<Node>> = Vec::new();
    let mut interpol: Vec<Placed<InterpolNode>> = Vec::new();
    let list = match &raw.nodes {
        Slot::Given(at) => &at.value,
        Slot::Invalid => return (local, interpol),
        Slot::Absent => {
            d.at(
                raw.pos,
                &raw.path,
                "missing key nodes (the list of real servers)",
            );
            return (local, interpol);
        }
    };
    for n in list {
        let is_interpol = n.interpol.value().copied().unwrap_or(false);
        if is_interpol {
            if let Some(node) = interpol_node(n, d) {
                let at = place(n.address.given().map_or(n.pos, |a| a.pos), &n.path);
                if let Some((_, first)) = interpol
                    .iter()
                    .find(|(o, _)| o.address == node.address && o.port == node.port)
                {
                    d.at(
                        at.pos,
                        &at.path.key("address"),
                        format!(
                            "interpol endpoint {}:{} is listed twice (first at {})",
                            node.address, node.port, first.pos
                        ),
                    );
                    continue;
                }
                interpol.push((node, at));
            }
        } else if let Some(node) = local_node(n, kind, d) {
            let at = place(n.address.given().map_or(n.pos, |a| a.pos), &n.path);
            if let Some((_, first)) = local.iter().find(|(o, _)| o.address == node.address) {
                d.at(
                    at.pos,
                    &at.path.key("address"),
                    format!(
                        "{} is listed twice in this cluster (first at {}); IPVS holds one real server per address (big_brother silently merged such nodes)",
                        node.address, first.pos
                    ),
                );
                continue;
            }
            local.push((node, at));
        }
    }
    (local, interpol)
}

fn local_node(n: &RawNode, kind: HealthKind, d: &mut Diags) -> Option<Node> {
    let here = (n.pos, &n.path);
    let address = require(
        &n.address,
        "address",
        "the real server's IP address",
        here,
        d,
    );
    let port = require(&n.port, "port", "the health-check port", here, d);
    let path = match kind {
        HealthKind::Litmus => require(
            &n.url_path,
            "path",
            "the litmus health URL path, e.g. /myapp/status",
            here,
            d,
        ),
        HealthKind::Http | HealthKind::Tcp => or_default(&n.url_path, "/".to_string()),
    };
    let priority = or_default(&n.priority, 0);
    let max_weight = or_default(&n.max_weight, None);
    Some(Node {
        address: address?,
        port: port?,
        path: path?,
        priority: priority?,
        max_weight: max_weight?,
    })
}

fn interpol_node(n: &RawNode, d: &mut Diags) -> Option<InterpolNode> {
    let here = (n.pos, &n.path);
    let address = require(
        &n.address,
        "address",
        "the interpol endpoint's IP address",
        here,
        d,
    );
    let port = require(&n.port, "port", "the interpol endpoint's port", here, d);
    Some(InterpolNode {
        address: address?,
        port: port?,
    })
}

fn vips(raw: &RawCluster, d: &mut Diags) -> Vec<Placed<Vip>> {
    let Slot::Given(list) = &raw.vips else {
        return Vec::new();
    };
    list.value.iter().filter_map(|v| vip(v, d)).collect()
}

fn vip(v: &RawVip, d: &mut Diags) -> Option<Placed<Vip>> {
    let here = (v.pos, &v.path);
    let address = require(&v.address, "address", "the virtual IP address", here, d);
    let protocol = or_default(&v.protocol, L4Proto::Tcp);
    let ports = require(
        &v.ports,
        "port",
        "a port such as 443 or a range such as 8000-8080",
        here,
        d,
    );
    let interface = match &v.interface {
        Slot::Given(at) => Some(Some(at.value.clone())),
        Slot::Absent => Some(None),
        Slot::Invalid => None,
    };
    Some((
        Vip {
            address: address?,
            protocol: protocol?,
            ports: ports?,
            interface: interface?,
        },
        place(v.address.given().map_or(v.pos, |a| a.pos), &v.path),
    ))
}

/// The downpage real server, when `has_downpage` is on.
fn downpage(
    s: &RawSettings,
    family: Family,
    nodes: &[Placed<Node>],
    d: &mut Diags,
) -> Option<Option<IpAddr>> {
    let on = or_default(&s.has_downpage, false)?;
    let address = or_default(&s.downpage_address, DEFAULT_DOWNPAGE)?;
    if !on {
        return Some(None);
    }
    let (pos, path, default_note) = match (s.downpage_address.given(), s.has_downpage.given()) {
        (Some(at), _) => (at.pos, at.path.clone(), ""),
        (None, Some(at)) => (at.pos, at.path.clone(), " (the default downpage_address)"),
        (None, None) => return Some(Some(address)),
    };
    if Family::of(&address) != family {
        d.at(
            pos,
            &path,
            format!(
                "the downpage {address}{default_note} is {} but the cluster is {}; set downpage_address",
                family_name(Family::of(&address)),
                family_name(family)
            ),
        );
        return None;
    }
    if let Some((_, at)) = nodes.iter().find(|(n, _)| n.address == address) {
        d.at(
            pos,
            &path,
            format!(
                "the downpage {address}{default_note} is also a node ({}); it must be a separate address",
                at.path
            ),
        );
        return None;
    }
    Some(Some(address))
}
