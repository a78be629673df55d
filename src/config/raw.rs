//! The sections of a configuration as written, before defaults are merged: clusters,
//! their settings, `health:`, `nagios:` and the `_big_brother` defaults (node and vip
//! entries are in `nodes.rs`, the `bigbro:` section in `settings.rs`). Each key is read
//! into a [`Slot`] (absent, invalid-and-reported, or a positioned value).
//!
//! The cluster settings, `health:` and `nagios:` are declared here once each, with the
//! `section!` tables described in `declare.rs`: key, type, reader, merge and default in
//! one line. This file checks what can be checked on one value alone (ranges, names,
//! syntax); the health kinds are the prober's own (`health::ProbeKind`). It never compares
//! two values: that is `validate.rs`.

use std::net::IpAddr;
use std::time::Duration;

use super::declare::{nested, nested_or_off, over, section, Section};
use super::diag::{quote, Diags, KeyPath, Pos};
use super::model::{
    BackendMode, Scheduler, SchedulerFlag, TunnelChecksum, VipMode, DEFAULT_CHECK_INTERVAL,
    DEFAULT_DOWNPAGE, DEFAULT_OFFSET, DEFAULT_RAMP_UP_TIME,
};
use super::nodes::{nodes, vips, RawNode, RawVip, NODE_KEYS};
use super::options::{scheduler_flags, RawPersistence};
use super::read::{self, given, At, Entry, Slot};
use super::settings::GLOBAL_KEYS;
use super::yaml::Node;
use crate::health::ProbeKind;
use crate::types::Weight;

/// Keys only a cluster itself can have.
pub const IDENTITY_KEYS: &[&str] = &["cluster_name", "fwmark", "nodes", "vips"];

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

/// The health module's names for its kinds, so a `kind:` the prober does not know cannot
/// be written.
const PROBE_KINDS: [(&str, ProbeKind); 3] = [
    (ProbeKind::Litmus.name(), ProbeKind::Litmus),
    (ProbeKind::Http.name(), ProbeKind::Http),
    (ProbeKind::Tcp.name(), ProbeKind::Tcp),
];

/// The words `backend_mode:` accepts.
const BACKEND_MODES: [(&str, BackendMode); 2] = [
    ("active_active", BackendMode::ActiveActive),
    ("active_passive", BackendMode::ActivePassive),
];

/// The words `forwarding:` accepts.
const FORWARDINGS: [(&str, ForwardKind); 5] = [
    ("ipip", ForwardKind::Ipip),
    ("gue", ForwardKind::Gue),
    ("gre", ForwardKind::Gre),
    ("dr", ForwardKind::Dr),
    ("nat", ForwardKind::Nat),
];

/// The words `vip_mode:` accepts.
const VIP_MODES: [(&str, VipMode); 2] = [("address", VipMode::Address), ("none", VipMode::None)];

/// The words `tunnel_checksum:` accepts.
const TUNNEL_CHECKSUMS: [(&str, TunnelChecksum); 3] = [
    ("none", TunnelChecksum::None),
    ("csum", TunnelChecksum::Csum),
    ("remcsum", TunnelChecksum::Remcsum),
];

/// How a value other than `ipip` is spelt in `forwarding:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardKind {
    Ipip,
    Gue,
    Gre,
    Dr,
    Nat,
}

section! {
    /// The cluster keys, each of which `_big_brother` can default for every cluster.
    RawSettings, settled ClusterSettled, keys SETTING_KEYS;
    scheduler: Scheduler = ["scheduler"]
        read |e, _, d| read::choice(e.value, &e.path, "an IPVS scheduler", &SCHEDULERS, d),
        merge over,
        required "an IPVS scheduler such as wrr or wlc; set it here or in _big_brother";
    /// `check_interval` in seconds, or the cluster-map format's `checkInterval` in
    /// milliseconds (not both).
    check_interval: Duration = ["check_interval" | "checkInterval"]
        read check_interval, merge over, default DEFAULT_CHECK_INTERVAL;
    backend_mode: BackendMode = ["backend_mode"]
        read |e, _, d| read::choice(e.value, &e.path, "a backend mode", &BACKEND_MODES, d),
        merge over, default BackendMode::ActiveActive;
    ramp_up_time: Duration = ["ramp_up_time"]
        read |e, _, d| read::seconds(e.value, &e.path, d), merge over, default DEFAULT_RAMP_UP_TIME;
    has_downpage: bool = ["has_downpage"]
        read |e, _, d| read::boolean(e.value, &e.path, d), merge over, default false;
    downpage_address: IpAddr = ["downpage_address"]
        read |e, _, d| read::ip(e.value, &e.path, d), merge over, default DEFAULT_DOWNPAGE;
    max_down_ticks: u32 = ["max_down_ticks"]
        read |e, _, d| u32_slot(e.value, &e.path, 0, d), merge over, default 0;
    non_egress_locations: Vec<String> = ["non_egress_locations"]
        read |e, _, d| string_list(e.value, &e.path, d), merge over, default Vec::new();
    /// `Given(None)` is an explicit `nagios: ~`, which turns a defaulted nagios off.
    nagios: Option<RawNagios> = ["nagios"]
        read |e, _, d| optional_section(e.value, &e.path, "nagios settings", d),
        merge nested_or_off, default None;
    offset: u32 = ["offset"]
        read |e, _, d| u32_slot(e.value, &e.path, 1, d), merge over, default DEFAULT_OFFSET;
    multi_datacenter: bool = ["multi_datacenter"]
        read |e, _, d| read::boolean(e.value, &e.path, d), merge over, default false;
    forwarding: ForwardKind = ["forwarding"]
        read |e, _, d| read::choice(e.value, &e.path, "a forwarding method", &FORWARDINGS, d),
        merge over, default ForwardKind::Ipip;
    /// No default: `forwarding: gue` requires it (validate.rs).
    gue_port: Option<u16> = ["gue_port"]
        read |e, _, d| port(e.value, &e.path, d).map(Some), merge over, default None;
    tunnel_checksum: TunnelChecksum = ["tunnel_checksum"]
        read |e, _, d| read::choice(e.value, &e.path, "a tunnel checksum mode", &TUNNEL_CHECKSUMS, d),
        merge over, default TunnelChecksum::None;
    vip_mode: VipMode = ["vip_mode"]
        read |e, _, d| read::choice(e.value, &e.path, "a vip mode", &VIP_MODES, d),
        merge over, default VipMode::Address;
    /// `health: ~` means "all defaults".
    health: RawHealth = ["health"]
        read |e, _, d| health(e.value, &e.path, d), merge nested, default RawHealth::default();
    /// `Given(None)` is an explicit `persistence: ~`, which turns a defaulted one off.
    persistence: Option<RawPersistence> = ["persistence"]
        read |e, _, d| optional_section(e.value, &e.path, "persistence settings", d),
        merge nested_or_off, default None;
    /// Checked against the scheduler in options.rs.
    scheduler_flags: Vec<At<SchedulerFlag>> = ["scheduler_flags"]
        read |e, _, d| scheduler_flags(e.value, &e.path, d), merge over, default Vec::new();
    one_packet: bool = ["one_packet"]
        read |e, _, d| read::boolean(e.value, &e.path, d), merge over, default false;
    /// No default: big_brother's depends on when the node is added (`Cluster::initial_weight`).
    start_weight: Option<Weight> = ["start_weight"]
        read |e, _, d| read::integer(e.value, &e.path, 0, i64::from(Weight::MAX.get()), d)
            .map(|w| Some(Weight::clamped(w as u64))),
        merge over, default None;
}

section! {
    /// `health:`, how a node's health is measured.
    RawHealth, settled HealthSettled, keys HEALTH_KEYS;
    kind: ProbeKind = ["kind"]
        read |e, _, d| read::choice(e.value, &e.path, "a health-check kind", &PROBE_KINDS, d),
        merge over, default ProbeKind::Litmus;
    /// No default here: 1 s, or half the check interval when that is shorter
    /// (validate.rs).
    timeout: Option<Duration> = ["timeout"]
        read |e, _, d| match read::seconds(e.value, &e.path, d) {
            Slot::Given(at) if at.value.is_zero() => {
                d.at(e.value.pos, &e.path, "a timeout must be longer than 0 s");
                Slot::Invalid
            }
            other => other.map(Some),
        },
        merge over, default None;
    rise: u32 = ["rise"]
        read |e, _, d| read::integer(e.value, &e.path, 1, 100, d).map(|n| n as u32),
        merge over, default 1;
    fall: u32 = ["fall"]
        read |e, _, d| read::integer(e.value, &e.path, 1, 100, d).map(|n| n as u32),
        merge over, default 1;
}

section! {
    /// `nagios:`, the passive check sent through send_nsca.
    RawNagios, settled NagiosSettled, keys NAGIOS_KEYS;
    server: String = ["server"]
        read |e, _, d| nsca_field(e.value, &e.path, false, d),
        merge over, required "the NSCA server send_nsca sends to";
    host: String = ["host"]
        read |e, _, d| nsca_field(e.value, &e.path, true, d),
        merge over, required "the Nagios host the check belongs to";
    check: String = ["check"]
        read |e, _, d| nsca_field(e.value, &e.path, true, d),
        merge over, required "the Nagios service name";
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawCluster {
    pub pos: Pos,
    pub path: KeyPath,
    pub name: Slot<String>,
    pub fwmark: Slot<u32>,
    pub settings: RawSettings,
    pub nodes: Slot<Vec<At<RawNode>>>,
    pub vips: Slot<Vec<At<RawVip>>>,
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
            _ => c.settings.read_entry(e, d),
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
            s.read_entry(e, d);
        }
    }
    s
}

fn u32_slot(node: &Node, path: &KeyPath, lo: i64, d: &mut Diags) -> Slot<u32> {
    read::integer(node, path, lo, i64::from(u32::MAX), d).map(|v| v as u32)
}

/// `check_interval` (seconds) or `checkInterval` (milliseconds), once. The shortest
/// interval is checked per cluster (validate.rs), so a `_big_brother` value every cluster
/// overrides is never an error.
fn check_interval(e: &Entry<'_>, earlier: &Slot<Duration>, d: &mut Diags) -> Slot<Duration> {
    if !earlier.is_absent() {
        d.at(
            e.key_pos,
            &e.path,
            "both check_interval (seconds) and checkInterval (milliseconds) are set; keep one",
        );
        return earlier.clone();
    }
    if e.key == "checkInterval" {
        read::millis(e.value, &e.path, d)
    } else {
        read::seconds(e.value, &e.path, d)
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

pub(crate) fn port(node: &Node, path: &KeyPath, d: &mut Diags) -> Slot<u16> {
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

/// A map section that `~` turns off (`Given(None)`), read key by key.
pub(crate) fn optional_section<T: Section>(
    node: &Node,
    path: &KeyPath,
    what: &str,
    d: &mut Diags,
) -> Slot<Option<T>> {
    if node.is_null() {
        return given(None, node, path);
    }
    let no_hint = |_: &str| None;
    let Some(entries) = read::entries(node, path, what, T::KEYS, &no_hint, d) else {
        return Slot::Invalid;
    };
    given(
        Some(entry_map::<T>(node, path, &entries, d).value),
        node,
        path,
    )
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
    match optional_section::<RawHealth>(node, path, "health-check settings", d) {
        Slot::Given(at) => at.value.map_or(Slot::Absent, |h| given(h, node, path)),
        Slot::Absent => Slot::Absent,
        Slot::Invalid => Slot::Invalid,
    }
}

/// A map's known entries read into a section, with where the map was written.
pub(crate) fn entry_map<T: Section>(
    node: &Node,
    path: &KeyPath,
    entries: &[Entry<'_>],
    d: &mut Diags,
) -> At<T> {
    let mut value = T::default();
    for e in entries {
        value.read_entry(e, d);
    }
    At {
        value,
        pos: node.pos,
        path: path.clone(),
    }
}
