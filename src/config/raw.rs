//! The sections of a configuration as written, before defaults are merged: clusters,
//! nodes, vips, health, nagios, the `_big_brother` defaults and the `bigbro:` settings.
//! Each key is read into a [`Slot`] (absent, invalid-and-reported, or a positioned value).
//!
//! This file knows every key name and what type it holds, and checks what can be checked
//! on one value alone (ranges, address syntax, path syntax). It never applies a default
//! and never compares two values: that is `merge.rs` and `validate.rs`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::diag::{quote, Diags, KeyPath, Pos};
use super::model::{BackendMode, HealthKind, Scheduler, SyncRole, TunnelChecksum};
use super::read::{self, given, Entry, Slot};
use super::yaml::Node;
use crate::nft::{L4Proto, PortRange};
use crate::types::Weight;

/// Keys of a node entry.
pub const NODE_KEYS: &[&str] = &[
    "address",
    "port",
    "path",
    "priority",
    "max_weight",
    "interpol",
];
/// Keys of a vip entry.
pub const VIP_KEYS: &[&str] = &["address", "protocol", "port", "interface"];
/// Keys of the `health:` map.
pub const HEALTH_KEYS: &[&str] = &["kind", "timeout", "rise", "fall"];
/// Keys of the `nagios:` map.
pub const NAGIOS_KEYS: &[&str] = &["server", "host", "check"];
/// Cluster keys that can also be set once in `_big_brother` for every cluster.
pub const SETTING_KEYS: &[&str] = &[
    "scheduler",
    "check_interval",
    "checkInterval",
    "backend_mode",
    "ramp_up_time",
    "has_downpage",
    "downpage_address",
    "max_down_ticks",
    "non_egress_locations",
    "nagios",
    "offset",
    "multi_datacenter",
    "forwarding",
    "gue_port",
    "tunnel_checksum",
    "health",
];
/// Keys only a cluster itself can have.
pub const IDENTITY_KEYS: &[&str] = &["cluster_name", "fwmark", "nodes", "vips"];
/// Keys of the top-level `bigbro:` section.
pub const GLOBAL_KEYS: &[&str] = &[
    "api",
    "data_dir",
    "state_dir",
    "anti_entropy_interval",
    "sync_daemon",
];
pub const API_KEYS: &[&str] = &["listen", "token_file"];
pub const SYNC_KEYS: &[&str] = &["role", "interface", "syncid"];

pub const SCHEDULERS: [(&str, Scheduler); 14] = {
    let mut out = [("", Scheduler::Rr); 14];
    let mut i = 0;
    while i < 14 {
        let s = Scheduler::ALL[i];
        out[i] = (s.as_str(), s);
        i += 1;
    }
    out
};

/// How a value other than `ipip` is spelt in `forwarding:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardKind {
    Ipip,
    Gue,
    Gre,
    Dr,
    Nat,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawHealth {
    pub kind: Slot<HealthKind>,
    pub timeout: Slot<Duration>,
    pub rise: Slot<u32>,
    pub fall: Slot<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawNagios {
    pub pos: Pos,
    pub path: KeyPath,
    pub server: Slot<String>,
    pub host: Slot<String>,
    pub check: Slot<String>,
}

/// The cluster keys `_big_brother` can default.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawSettings {
    pub scheduler: Slot<Scheduler>,
    pub check_interval: Slot<Duration>,
    pub backend_mode: Slot<BackendMode>,
    pub ramp_up_time: Slot<Duration>,
    pub has_downpage: Slot<bool>,
    pub downpage_address: Slot<IpAddr>,
    pub max_down_ticks: Slot<u32>,
    pub non_egress_locations: Slot<Vec<String>>,
    /// `Given(None)` is an explicit `nagios: ~`, which turns a defaulted nagios off.
    pub nagios: Slot<Option<RawNagios>>,
    pub offset: Slot<u32>,
    pub multi_datacenter: Slot<bool>,
    pub forwarding: Slot<ForwardKind>,
    pub gue_port: Slot<u16>,
    pub tunnel_checksum: Slot<TunnelChecksum>,
    pub health: Slot<RawHealth>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawNode {
    pub pos: Pos,
    pub path: KeyPath,
    pub address: Slot<IpAddr>,
    pub port: Slot<u16>,
    pub url_path: Slot<String>,
    pub priority: Slot<i64>,
    /// `Given(None)`: written empty (no cap).
    pub max_weight: Slot<Option<Weight>>,
    pub interpol: Slot<bool>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawVip {
    pub pos: Pos,
    pub path: KeyPath,
    pub address: Slot<IpAddr>,
    pub protocol: Slot<L4Proto>,
    pub ports: Slot<PortRange>,
    pub interface: Slot<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawCluster {
    pub pos: Pos,
    pub path: KeyPath,
    pub name: Slot<String>,
    pub fwmark: Slot<u32>,
    pub settings: RawSettings,
    pub nodes: Slot<Vec<RawNode>>,
    pub vips: Slot<Vec<RawVip>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawSync {
    pub pos: Pos,
    pub path: KeyPath,
    pub role: Slot<SyncRole>,
    pub interface: Slot<String>,
    pub syncid: Slot<u8>,
}

/// The `bigbro:` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawGlobal {
    pub listen: Slot<SocketAddr>,
    pub token_file: Slot<Option<PathBuf>>,
    pub data_dir: Slot<PathBuf>,
    pub state_dir: Slot<PathBuf>,
    pub anti_entropy_interval: Slot<Duration>,
    pub sync_daemon: Slot<Option<RawSync>>,
}

/// Which map a cluster is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClusterForm {
    /// An entry of `clusters:`; named by `cluster_name`.
    ListEntry,
    /// A value of the top-level cluster map; named by its key.
    MapValue,
}

fn hint_for_cluster_context(key: &str) -> Option<String> {
    if NODE_KEYS.contains(&key) {
        Some(format!(
            "{key} is a node key (it goes in each entry of nodes)"
        ))
    } else if GLOBAL_KEYS.contains(&key) {
        Some(format!("{key} belongs in the top-level bigbro: section"))
    } else {
        None
    }
}

/// Reads a cluster (an entry of `clusters:` or a value of the cluster map).
pub(crate) fn cluster(
    node: &Node,
    path: &KeyPath,
    form: ClusterForm,
    d: &mut Diags,
) -> Option<RawCluster> {
    let mut known: Vec<&str> = SETTING_KEYS.to_vec();
    known.extend(
        IDENTITY_KEYS
            .iter()
            .filter(|k| form == ClusterForm::ListEntry || **k != "cluster_name"),
    );
    let hint = |key: &str| {
        if key == "cluster_name" && form == ClusterForm::MapValue {
            Some("in this format a cluster is named by its key in the top-level map".to_string())
        } else {
            hint_for_cluster_context(key)
        }
    };
    let entries = read::entries(node, path, "a cluster", &known, &hint, d)?;
    let mut c = RawCluster {
        pos: node.pos,
        path: path.clone(),
        ..Default::default()
    };
    for e in &entries {
        match e.key {
            "cluster_name" => c.name = cluster_name(e.value, &e.path, d),
            "fwmark" => c.fwmark = fwmark(e.value, &e.path, d),
            "nodes" => c.nodes = nodes(e.value, &e.path, d),
            "vips" => c.vips = vips(e.value, &e.path, d),
            _ => setting(e, &mut c.settings, d),
        }
    }
    Some(c)
}

/// Reads `_big_brother:`, the defaults merged under every cluster.
pub(crate) fn defaults(node: &Node, path: &KeyPath, d: &mut Diags) -> RawSettings {
    let mut s = RawSettings::default();
    if node.is_null() {
        return s;
    }
    let hint = |key: &str| {
        if IDENTITY_KEYS.contains(&key) {
            Some(format!(
                "{key} cannot be a default: each cluster sets its own"
            ))
        } else if NODE_KEYS.contains(&key) {
            Some(format!(
                "{key} is a node key; _big_brother holds defaults for cluster keys"
            ))
        } else if GLOBAL_KEYS.contains(&key) {
            Some(format!("{key} belongs in the top-level bigbro: section"))
        } else {
            None
        }
    };
    if let Some(entries) = read::entries(node, path, "cluster defaults", SETTING_KEYS, &hint, d) {
        for e in &entries {
            setting(e, &mut s, d);
        }
    }
    s
}

fn u32_slot(node: &Node, path: &KeyPath, lo: i64, d: &mut Diags) -> Slot<u32> {
    read::integer(node, path, lo, i64::from(u32::MAX), d).map(|v| v as u32)
}

/// One of the mergeable cluster settings.
fn setting(e: &Entry<'_>, s: &mut RawSettings, d: &mut Diags) {
    let (v, p) = (e.value, &e.path);
    match e.key {
        "scheduler" => {
            s.scheduler = read::choice(v, p, "an IPVS scheduler", &SCHEDULERS, d);
        }
        "check_interval" | "checkInterval" => {
            if !s.check_interval.is_absent() {
                d.at(
                    e.key_pos,
                    p,
                    "both check_interval (seconds) and checkInterval (milliseconds) are set; keep one",
                );
                return;
            }
            s.check_interval = if e.key == "checkInterval" {
                read::millis(v, p, d)
            } else {
                read::seconds(v, p, d)
            };
        }
        "backend_mode" => {
            s.backend_mode = read::choice(
                v,
                p,
                "a backend mode",
                &[
                    ("active_active", BackendMode::ActiveActive),
                    ("active_passive", BackendMode::ActivePassive),
                ],
                d,
            )
        }
        "ramp_up_time" => s.ramp_up_time = read::seconds(v, p, d),
        "has_downpage" => s.has_downpage = read::boolean(v, p, d),
        "downpage_address" => s.downpage_address = read::ip(v, p, d),
        "max_down_ticks" => s.max_down_ticks = u32_slot(v, p, 0, d),
        "non_egress_locations" => s.non_egress_locations = string_list(v, p, d),
        "nagios" => s.nagios = nagios(v, p, d),
        "offset" => s.offset = u32_slot(v, p, 1, d),
        "multi_datacenter" => s.multi_datacenter = read::boolean(v, p, d),
        "forwarding" => {
            s.forwarding = read::choice(
                v,
                p,
                "a forwarding method",
                &[
                    ("ipip", ForwardKind::Ipip),
                    ("gue", ForwardKind::Gue),
                    ("gre", ForwardKind::Gre),
                    ("dr", ForwardKind::Dr),
                    ("nat", ForwardKind::Nat),
                ],
                d,
            )
        }
        "gue_port" => s.gue_port = port(v, p, d),
        "tunnel_checksum" => {
            s.tunnel_checksum = read::choice(
                v,
                p,
                "a tunnel checksum mode",
                &[
                    ("none", TunnelChecksum::None),
                    ("csum", TunnelChecksum::Csum),
                    ("remcsum", TunnelChecksum::Remcsum),
                ],
                d,
            )
        }
        "health" => s.health = health(v, p, d),
        _ => {}
    }
}

/// A cluster name: it appears in API paths and override-file names, so it is kept to
/// letters, digits, `.`, `_` and `-`.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() {
        Some("a cluster name cannot be empty".to_string())
    } else if !ok_chars || name == "." || name == ".." || name.len() > 64 {
        Some(format!(
            "{} is not a usable cluster name (1 to 64 letters, digits, '.', '_' or '-': it names an API path and a file)",
            quote(name)
        ))
    } else {
        None
    }
}

fn cluster_name(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<String> {
    let Some(text) = read::scalar(node, path, "a cluster name", d) else {
        return Slot::Invalid;
    };
    if let Some(problem) = name_problem(text) {
        d.at(node.pos, path, problem);
        return Slot::Invalid;
    }
    given(text.to_string(), node, path)
}

fn fwmark(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<u32> {
    if let Some(t) = node.text() {
        if t.trim().parse::<i64>() == Ok(0) {
            d.at(
                node.pos,
                path,
                "0 is not a valid fwmark (IPVS fwmark services are numbered from 1)",
            );
            return Slot::Invalid;
        }
    }
    u32_slot(node, path, 1, d)
}

fn port(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<u16> {
    read::integer(node, path, 1, 65535, d).map(|v| v as u16)
}

fn string_list(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Vec<String>> {
    if node.is_null() {
        return given(Vec::new(), node, path);
    }
    let Some(items) = read::list(node, path, "a list of names", d) else {
        return Slot::Invalid;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (p, item) in items {
        match read::string(item, &p, d) {
            Slot::Given(at) => out.push(at.value),
            _ => ok = false,
        }
    }
    if ok {
        given(out, node, path)
    } else {
        Slot::Invalid
    }
}

fn nagios(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Option<RawNagios>> {
    let empty = RawNagios {
        pos: node.pos,
        path: path.clone(),
        ..Default::default()
    };
    section(
        node,
        path,
        "nagios settings",
        NAGIOS_KEYS,
        empty,
        d,
        |n, e, d| {
            let slot = nsca_field(e.value, &e.path, e.key != "server", d);
            match e.key {
                "server" => n.server = slot,
                "host" => n.host = slot,
                _ => n.check = slot,
            }
        },
    )
}

/// A map section that `~` turns off (`Given(None)`): reads each known key with
/// `read_key` into `value`.
fn section<T>(
    node: &Node,
    path: &KeyPath,
    what: &str,
    keys: &[&str],
    mut value: T,
    d: &mut Diags,
    mut read_key: impl FnMut(&mut T, &Entry<'_>, &mut Diags),
) -> Slot<Option<T>> {
    if node.is_null() {
        return given(None, node, path);
    }
    let no_hint = |_: &str| None;
    let Some(entries) = read::entries(node, path, what, keys, &no_hint, d) else {
        return Slot::Invalid;
    };
    for e in &entries {
        read_key(&mut value, e, d);
    }
    given(Some(value), node, path)
}

/// A non-empty NSCA field. `host` and `check` travel in a comma-separated line, so they
/// cannot contain commas or line breaks.
fn nsca_field(node: &Node, path: &KeyPath, in_line: bool, d: &mut Diags) -> Slot<String> {
    let Slot::Given(at) = read::string(node, path, d) else {
        return Slot::Invalid;
    };
    let text = at.value.as_str();
    if text.trim().is_empty() {
        d.at(node.pos, path, "cannot be empty");
        return Slot::Invalid;
    }
    if in_line && text.chars().any(|c| c == ',' || c.is_control()) {
        d.at(
            node.pos,
            path,
            format!(
                "{} cannot contain ',' or control characters (send_nsca splits its line on ',')",
                quote(text)
            ),
        );
        return Slot::Invalid;
    }
    if !in_line && text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        d.at(
            node.pos,
            path,
            format!("{} is not a host name or address", quote(text)),
        );
        return Slot::Invalid;
    }
    Slot::Given(at)
}

/// `health:`; an explicit `health: ~` means "all defaults".
fn health(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<RawHealth> {
    let read = section(
        node,
        path,
        "health-check settings",
        HEALTH_KEYS,
        RawHealth::default(),
        d,
        |h, e, d| {
            let (v, p) = (e.value, &e.path);
            match e.key {
                "kind" => {
                    h.kind = read::choice(
                        v,
                        p,
                        "a health-check kind",
                        &[
                            ("litmus", HealthKind::Litmus),
                            ("http", HealthKind::Http),
                            ("tcp", HealthKind::Tcp),
                        ],
                        d,
                    )
                }
                "timeout" => {
                    h.timeout = match read::seconds(v, p, d) {
                        Slot::Given(at) if at.value.is_zero() => {
                            d.at(v.pos, p, "a timeout must be longer than 0 s");
                            Slot::Invalid
                        }
                        other => other,
                    }
                }
                "rise" => h.rise = read::integer(v, p, 1, 100, d).map(|n| n as u32),
                _ => h.fall = read::integer(v, p, 1, 100, d).map(|n| n as u32),
            }
        },
    );
    match read {
        Slot::Given(at) => at.value.map_or(Slot::Absent, |h| given(h, node, path)),
        Slot::Absent => Slot::Absent,
        Slot::Invalid => Slot::Invalid,
    }
}

fn nodes(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Vec<RawNode>> {
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

fn one_node(node: &Node, path: &KeyPath, d: &mut Diags) -> Option<RawNode> {
    let hint = |key: &str| {
        (SETTING_KEYS.contains(&key) || IDENTITY_KEYS.contains(&key))
            .then(|| format!("{key} is a cluster key, not a node key"))
    };
    let entries = read::entries(node, path, "a node", NODE_KEYS, &hint, d)?;
    let mut n = RawNode {
        pos: node.pos,
        path: path.clone(),
        ..Default::default()
    };
    for e in &entries {
        let (v, p) = (e.value, &e.path);
        match e.key {
            "address" => n.address = unicast(v, p, "a node address", d),
            "port" => n.port = port(v, p, d),
            "path" => n.url_path = url_path(v, p, d),
            "priority" => {
                n.priority = read::integer(v, p, i64::from(i32::MIN), i64::from(i32::MAX), d)
            }
            "max_weight" => {
                n.max_weight = if v.is_null() {
                    given(None, v, p)
                } else {
                    read::integer(v, p, 0, i64::from(Weight::MAX.get()), d)
                        .map(|w| (w > 0).then(|| Weight::clamped(w as u64)))
                }
            }
            _ => n.interpol = read::boolean(v, p, d),
        }
    }
    Some(n)
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

/// A health-check URL path: starts with `/`, no spaces or control characters.
fn url_path(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<String> {
    let Some(text) = read::scalar(node, path, "a URL path", d) else {
        return Slot::Invalid;
    };
    if !text.starts_with('/') {
        d.at(
            node.pos,
            path,
            format!("{} does not start with /", quote(text)),
        );
        return Slot::Invalid;
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        d.at(
            node.pos,
            path,
            format!("{} contains spaces or control characters", quote(text)),
        );
        return Slot::Invalid;
    }
    given(text.to_string(), node, path)
}

fn vips(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Vec<RawVip>> {
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

fn one_vip(node: &Node, path: &KeyPath, d: &mut Diags) -> Option<RawVip> {
    let no_hint = |_: &str| None;
    let entries = read::entries(node, path, "a vip", VIP_KEYS, &no_hint, d)?;
    let mut v = RawVip {
        pos: node.pos,
        path: path.clone(),
        ..Default::default()
    };
    for e in &entries {
        let (n, p) = (e.value, &e.path);
        match e.key {
            "address" => v.address = unicast(n, p, "a vip address", d),
            "protocol" => {
                v.protocol = read::choice(
                    n,
                    p,
                    "a protocol",
                    &[
                        ("tcp", L4Proto::Tcp),
                        ("udp", L4Proto::Udp),
                        ("sctp", L4Proto::Sctp),
                    ],
                    d,
                )
            }
            "port" => v.ports = port_range(n, p, d),
            _ => v.interface = read::interface(n, p, d),
        }
    }
    Some(v)
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

/// Reads the top-level `bigbro:` section.
pub(crate) fn global(node: &Node, path: &KeyPath, d: &mut Diags) -> RawGlobal {
    let mut g = RawGlobal::default();
    if node.is_null() {
        return g;
    }
    let hint = |key: &str| {
        (SETTING_KEYS.contains(&key) || IDENTITY_KEYS.contains(&key)).then(|| {
            format!("{key} is a cluster key (set it on a cluster, or in _big_brother for all)")
        })
    };
    let Some(entries) = read::entries(node, path, "bigbro settings", GLOBAL_KEYS, &hint, d) else {
        return g;
    };
    for e in &entries {
        let (v, p) = (e.value, &e.path);
        match e.key {
            "api" => api(v, p, &mut g, d),
            "data_dir" => g.data_dir = read::abs_path(v, p, d),
            "state_dir" => g.state_dir = read::abs_path(v, p, d),
            "anti_entropy_interval" => {
                g.anti_entropy_interval = match read::seconds(v, p, d) {
                    Slot::Given(at) if at.value < Duration::from_secs(1) => {
                        d.at(v.pos, p, "must be at least 1 s");
                        Slot::Invalid
                    }
                    other => other,
                }
            }
            _ => g.sync_daemon = sync_daemon(v, p, d),
        }
    }
    g
}

fn api(node: &Node, path: &KeyPath, g: &mut RawGlobal, d: &mut Diags) {
    let no_hint = |_: &str| None;
    let Some(entries) = read::entries(node, path, "API settings", API_KEYS, &no_hint, d) else {
        return;
    };
    for e in &entries {
        let (v, p) = (e.value, &e.path);
        if e.key == "listen" {
            g.listen = listen(v, p, d);
        } else if v.is_null() {
            g.token_file = given(None, v, p);
        } else {
            g.token_file = read::abs_path(v, p, d).map(Some);
        }
    }
}

fn listen(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<SocketAddr> {
    let Some(text) = read::scalar(node, path, "an address:port", d) else {
        return Slot::Invalid;
    };
    match text.trim().parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => given(a, node, path),
        Ok(_) => {
            d.at(node.pos, path, "port 0 is outside 1..65535");
            Slot::Invalid
        }
        Err(_) => {
            d.at(
                node.pos,
                path,
                format!(
                    "{} is not an address:port (write e.g. 127.0.0.1:9292 or [::1]:9292; host names are not resolved)",
                    quote(text)
                ),
            );
            Slot::Invalid
        }
    }
}

fn sync_daemon(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<Option<RawSync>> {
    let empty = RawSync {
        pos: node.pos,
        path: path.clone(),
        ..Default::default()
    };
    let what = "sync daemon settings";
    section(node, path, what, SYNC_KEYS, empty, d, |s, e, d| {
        let (v, p) = (e.value, &e.path);
        match e.key {
            "role" => {
                s.role = read::choice(
                    v,
                    p,
                    "a sync daemon role",
                    &[
                        ("master", SyncRole::Master),
                        ("backup", SyncRole::Backup),
                        ("both", SyncRole::Both),
                    ],
                    d,
                )
            }
            "interface" => s.interface = read::interface(v, p, d),
            _ => s.syncid = read::integer(v, p, 0, 255, d).map(|n| n as u8),
        }
    })
}
