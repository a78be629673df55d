//! Turns each cluster as written (defaults already merged) into a checked
//! [`Cluster`](super::model::Cluster): fills in bigbro's defaults (declared with each key
//! in raw.rs), then checks what needs more than one value (timeout against interval,
//! duplicate nodes, one address family, forwarding options, required keys). Each local
//! node goes through the prober's own `health::Target::new`, as the daemon will, so a node
//! the prober refuses is an error here rather than a node quietly held at weight 0. Rules
//! that compare clusters with each other are in `unique.rs`.
//!
//! Every problem is reported (with the position of the value at fault, or of the map that
//! lacks a key) and checking goes on; a cluster with any error yields no `Cluster`.

use std::net::IpAddr;
use std::time::Duration;

use super::declare::require;
use super::diag::{Diags, KeyPath, Pos};
use super::model::{
    fmt_secs, BackendMode, Cluster, Forwarding, HealthCheck, InterpolNode, Nagios, Node, ProbeKind,
    Vip, VipMode, DEFAULT_HEALTH_TIMEOUT,
};
use super::nodes::{RawNode, RawVip};
use super::options;
use super::raw::{ClusterSettled, ForwardKind, RawCluster, RawHealth, RawSettings};
use super::read::{At, Slot};
use crate::health::{Target, TargetError};
use crate::ipvs::Family;
use crate::types::{ClusterName, Fwmark};

/// Whether a value came from the `_big_brother` defaults rather than the cluster itself.
fn from_defaults<T>(at: &At<T>) -> bool {
    at.path.is_under("_big_brother")
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
    // Defaults filled in, a missing scheduler reported (the table in raw.rs).
    let s = settings.settle(here, "", d);
    let nagios = nagios(settings, raw, d);
    let multi_datacenter = multi_datacenter(settings, &s, d);
    let forwarding = forwarding(settings, &s, d);
    let check_interval = interval(&settings.check_interval, s.check_interval, d);
    let health = check_interval.and_then(|i| health(settings, i, raw, d));

    // The probe kind decides whether nodes need a path, even when other health values
    // are wrong.
    let kind = match settings.health.value().map(|h| &h.kind) {
        Some(Slot::Given(at)) => at.value,
        _ => ProbeKind::Litmus,
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
        if s.vip_mode.is_some_and(VipMode::owns_addresses)
            && !crate::route::model::is_vip_address(&v.address)
        {
            d.at(
                at.pos,
                &at.path.key("address"),
                format!(
                    "{} is not a unicast address an interface can hold (unspecified, multicast, \
                     broadcast, loopback or link-local); with vip_mode: address bigbro puts \
                     every vip on its interface (write vip_mode: none to only mark it)",
                    v.address
                ),
            );
        }
    }
    let downpage = downpage(settings, &s, family, &nodes, d);
    let protocols: Vec<_> = vips.iter().map(|(v, _)| v.protocol).collect();
    let whose = |p: &KeyPath| for_cluster(p, raw);
    let service_options =
        options::service_options(settings, s.scheduler, family, &protocols, &whose, d);

    if d.len() > before {
        return None;
    }
    Some(Cluster {
        name: ClusterName(name?),
        fwmark: Fwmark::new(fwmark?)?,
        scheduler: s.scheduler?,
        check_interval: check_interval?,
        backend_mode: s.backend_mode?,
        ramp_up_time: s.ramp_up_time?,
        downpage: downpage?,
        max_down_ticks: s.max_down_ticks?,
        non_egress_locations: s.non_egress_locations?,
        nagios: nagios?,
        offset: s.offset?,
        multi_datacenter: multi_datacenter?,
        forwarding: forwarding?,
        health: health?,
        vips: vips.into_iter().map(|(v, _)| v).collect(),
        vip_mode: s.vip_mode?,
        nodes: nodes.into_iter().map(|(n, _)| n).collect(),
        interpol: interpol.into_iter().map(|(n, _)| n).collect(),
        family,
        service_options: service_options?,
        start_weight: s.start_weight?,
    })
}

/// The shortest check interval accepted (big_brother's ticker ran every 0.1 s).
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The interval (`settled`, default filled in), unless the one written is too short.
fn interval(slot: &Slot<Duration>, settled: Option<Duration>, d: &mut Diags) -> Option<Duration> {
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
        _ => settled,
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
        Slot::Given(At {
            value: Some(n),
            pos,
            path,
        }) => {
            let n = n.settle((*pos, path), &for_cluster(path, raw), d);
            Some(Some(Nagios {
                server: n.server?,
                host: n.host?,
                check: n.check?,
            }))
        }
    }
}

fn multi_datacenter(s: &RawSettings, settled: &ClusterSettled, d: &mut Diags) -> Option<bool> {
    match (&s.multi_datacenter, settled.backend_mode) {
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
        _ => settled.multi_datacenter,
    }
}

fn forwarding(s: &RawSettings, settled: &ClusterSettled, d: &mut Diags) -> Option<Forwarding> {
    let kind = settled.forwarding?;
    let checksum = settled.tunnel_checksum;
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
            Slot::Given(At {
                value: Some(port), ..
            }) => Forwarding::Gue {
                port: *port,
                checksum: checksum?,
            },
            Slot::Invalid => return None,
            Slot::Absent | Slot::Given(At { value: None, .. }) => {
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
    let h = match &s.health {
        Slot::Invalid => return None,
        Slot::Absent => RawHealth::default(),
        Slot::Given(at) => at.value.clone(),
    };
    let default_timeout = DEFAULT_HEALTH_TIMEOUT.min(interval / 2);
    if let Slot::Given(at) = &h.timeout {
        if let Some(timeout) = at.value.filter(|t| *t >= interval) {
            let whose = for_cluster(&at.path, raw);
            d.at(
                at.pos,
                &at.path,
                format!(
                    "timeout {} is not shorter than the check interval {}{whose}",
                    fmt_secs(timeout),
                    fmt_secs(interval)
                ),
            );
            return None;
        }
    }
    let h = h.settle((raw.pos, &raw.path), "", d);
    Some(HealthCheck {
        kind: h.kind?,
        timeout: h.timeout?.unwrap_or(default_timeout),
        rise: h.rise?,
        fall: h.fall?,
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
    kind: ProbeKind,
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
        let is_interpol = n.value.interpol.value().copied().unwrap_or(false);
        let at = place(n.value.address.given().map_or(n.pos, |a| a.pos), &n.path);
        if is_interpol {
            if let Some(node) = interpol_node(n, d) {
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

fn local_node(n: &At<RawNode>, kind: ProbeKind, d: &mut Diags) -> Option<Node> {
    let here = (n.pos, &n.path);
    let raw = &n.value;
    // Defaults filled in, missing address and port reported (the table in raw.rs).
    let s = raw.settle(here, "", d);
    let path = match kind {
        ProbeKind::Litmus => require(
            &raw.url_path,
            "path",
            "the litmus health URL path, e.g. /myapp/status",
            here,
            d,
        ),
        ProbeKind::Http | ProbeKind::Tcp => s.url_path,
    };
    let node = Node {
        address: s.address?,
        port: s.port?,
        path: path?,
        priority: s.priority?,
        max_weight: s.max_weight?,
        upper_threshold: s.upper_threshold?,
        lower_threshold: s.lower_threshold?,
    };
    options::thresholds(raw, node.upper_threshold, node.lower_threshold, d)?;
    // The prober's own constructor, as the daemon calls it: a node it would refuse (and
    // leave at weight 0) is refused here, at the value at fault.
    if let Err(e) = Target::new(kind, node.address, node.port, &node.path) {
        let at = |slot: Option<(Pos, &KeyPath)>, key: &str| {
            slot.map_or((n.pos, n.path.key(key)), |(p, k)| (p, k.clone()))
        };
        let (pos, path) = match e {
            TargetError::PortZero { .. } => at(raw.port.given().map(|a| (a.pos, &a.path)), "port"),
            _ => at(raw.url_path.given().map(|a| (a.pos, &a.path)), "path"),
        };
        d.at(pos, &path, e.to_string());
        return None;
    }
    Some(node)
}

/// An interpol endpoint: the node keys address and port, for another purpose.
fn interpol_node(n: &At<RawNode>, d: &mut Diags) -> Option<InterpolNode> {
    let here = (n.pos, &n.path);
    let address = require(
        &n.value.address,
        "address",
        "the interpol endpoint's IP address",
        here,
        d,
    );
    let port = require(
        &n.value.port,
        "port",
        "the interpol endpoint's port",
        here,
        d,
    );
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

fn vip(v: &At<RawVip>, d: &mut Diags) -> Option<Placed<Vip>> {
    // Defaults filled in, missing address and port reported (the table in raw.rs).
    let s = v.value.settle((v.pos, &v.path), "", d);
    Some((
        Vip {
            address: s.address?,
            protocol: s.protocol?,
            ports: s.ports?,
            interface: s.interface?,
        },
        place(v.value.address.given().map_or(v.pos, |a| a.pos), &v.path),
    ))
}

/// The downpage real server, when `has_downpage` is on.
fn downpage(
    s: &RawSettings,
    settled: &ClusterSettled,
    family: Family,
    nodes: &[Placed<Node>],
    d: &mut Diags,
) -> Option<Option<IpAddr>> {
    let on = settled.has_downpage?;
    let address = settled.downpage_address?;
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
