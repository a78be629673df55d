//! `--json`, bigbro's one addition to ipvsadm: listings as JSON for scripts, so nobody has
//! to scrape fixed-width columns again.
//!
//! Every field is always present (the `--stats`/`--rate`/... switches only shape the text
//! listing), addresses are always numeric, and the order is ipvsadm's listing order (or
//! the kernel's with `--nosort`). The shapes here are a public interface: add fields, never
//! rename or remove them. Nothing here talks to the kernel.

use serde::Serialize;

use super::conn::Conn;
use crate::ipvs::save::{csum_index, ntop, sched_flag_names, service_arg};
use crate::ipvs::{
    DestEntry, Family, ForwardMethod, Info, ServiceEntry, ServiceFlags, ServiceKey, Stats,
    SyncDaemon, Timeouts, Tunnel, TunnelFlags,
};

#[derive(Serialize)]
struct JsonStats {
    conns: u64,
    inpkts: u64,
    outpkts: u64,
    inbytes: u64,
    outbytes: u64,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

impl From<&Stats> for JsonStats {
    fn from(s: &Stats) -> Self {
        JsonStats {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
            cps: s.cps,
            inpps: s.inpps,
            outpps: s.outpps,
            inbps: s.inbps,
            outbps: s.outbps,
        }
    }
}

#[derive(Serialize)]
struct JsonTunnel {
    /// `ipip`, `gue` or `gre`.
    r#type: &'static str,
    /// GUE only.
    port: Option<u16>,
    /// `nocsum`, `csum` or `remcsum` (GUE and GRE).
    checksum: Option<&'static str>,
}

fn checksum(flags: TunnelFlags) -> &'static str {
    ["nocsum", "csum", "remcsum"][csum_index(flags)]
}

#[derive(Serialize)]
struct JsonDest {
    address: String,
    port: u16,
    /// `masq`, `local`, `tunnel`, `route` or `bypass`.
    forward: &'static str,
    tunnel: Option<JsonTunnel>,
    weight: u32,
    upper_threshold: u32,
    lower_threshold: u32,
    active_conns: u32,
    inactive_conns: u32,
    persist_conns: u32,
    stats: JsonStats,
}

fn dest(e: &DestEntry) -> JsonDest {
    let d = &e.dest;
    let (forward, tunnel) = match d.forward {
        ForwardMethod::Masquerade => ("masq", None),
        ForwardMethod::LocalNode => ("local", None),
        ForwardMethod::DirectRoute => ("route", None),
        ForwardMethod::Bypass => ("bypass", None),
        ForwardMethod::Tunnel(t) => (
            "tunnel",
            Some(match t {
                Tunnel::Ipip => JsonTunnel {
                    r#type: "ipip",
                    port: None,
                    checksum: None,
                },
                Tunnel::Gue { port, flags } => JsonTunnel {
                    r#type: "gue",
                    port: Some(port),
                    checksum: Some(checksum(flags)),
                },
                Tunnel::Gre { flags } => JsonTunnel {
                    r#type: "gre",
                    port: None,
                    checksum: Some(checksum(flags)),
                },
            }),
        ),
    };
    JsonDest {
        address: ntop(&d.addr),
        port: d.port,
        forward,
        tunnel,
        weight: d.weight,
        upper_threshold: d.upper_threshold,
        lower_threshold: d.lower_threshold,
        active_conns: e.active_conns,
        inactive_conns: e.inactive_conns,
        persist_conns: e.persist_conns,
        stats: JsonStats::from(&e.stats),
    }
}

#[derive(Serialize)]
struct JsonService {
    /// The service in ipvsadm's own words: `-f 7`, `-t 10.0.0.1:80`.
    service: String,
    /// `inet` or `inet6`.
    family: &'static str,
    /// `tcp`, `udp`, `sctp`, or null for fwmark services.
    protocol: Option<&'static str>,
    fwmark: Option<u32>,
    address: Option<String>,
    port: Option<u16>,
    scheduler: String,
    persistent: bool,
    /// Persistence timeout in seconds (meaningful when persistent).
    timeout: u32,
    /// IPv4 dotted mask or IPv6 prefix length, as text.
    netmask: String,
    pe: Option<String>,
    one_packet: bool,
    sched_flags: Vec<String>,
    stats: JsonStats,
    dests: Vec<JsonDest>,
}

fn service(entry: &ServiceEntry, dests: &[DestEntry]) -> JsonService {
    let s = &entry.service;
    let (protocol, fwmark, address, port) = match &s.key {
        ServiceKey::Fwmark { mark, .. } => (None, Some(mark.get()), None, None),
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => (
            Some(match protocol.ipproto() {
                6 => "tcp",
                17 => "udp",
                _ => "sctp",
            }),
            None,
            Some(ntop(addr)),
            Some(*port),
        ),
    };
    let netmask = match s.key.family() {
        Family::V4 => std::net::Ipv4Addr::from(s.netmask).to_string(),
        Family::V6 => s.netmask.to_string(),
    };
    let names = sched_flag_names(&s.scheduler, s.flags);
    JsonService {
        service: service_arg(&s.key),
        family: match s.key.family() {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        },
        protocol,
        fwmark,
        address,
        port,
        scheduler: s.scheduler.clone(),
        persistent: s.flags.contains(ServiceFlags::PERSISTENT),
        timeout: s.timeout,
        netmask,
        pe: s.pe_name.clone(),
        one_packet: s.flags.contains(ServiceFlags::ONEPACKET),
        sched_flags: names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
        stats: JsonStats::from(&entry.stats),
        dests: dests.iter().map(dest).collect(),
    }
}

#[derive(Serialize)]
struct JsonTable {
    version: String,
    conn_tab_size: u32,
    services: Vec<JsonService>,
}

fn finish<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode JSON: {e}\"}}").into_bytes());
    out.push(b'\n');
    out
}

/// `-L --json`: the whole table.
pub fn table(info: &Info, services: &[(ServiceEntry, Vec<DestEntry>)]) -> Vec<u8> {
    finish(&JsonTable {
        version: info.version_text(),
        conn_tab_size: info.conn_tab_size,
        services: services.iter().map(|(s, d)| service(s, d)).collect(),
    })
}

/// `-L -t ... --json`: one service object.
pub fn one_service(entry: &ServiceEntry, dests: &[DestEntry]) -> Vec<u8> {
    finish(&service(entry, dests))
}

#[derive(Serialize)]
struct JsonTimeouts {
    tcp: u32,
    tcp_fin: u32,
    udp: u32,
}

/// `-L --timeout --json`.
pub fn timeouts(t: &Timeouts) -> Vec<u8> {
    finish(&JsonTimeouts {
        tcp: t.tcp,
        tcp_fin: t.tcp_fin,
        udp: t.udp,
    })
}

#[derive(Serialize)]
struct JsonDaemon {
    /// `master` or `backup`.
    state: &'static str,
    mcast_interface: String,
    syncid: u32,
    sync_maxlen: u16,
    mcast_group: Option<String>,
    mcast_port: u16,
    mcast_ttl: u8,
}

/// `-L --daemon --json`.
pub fn daemons(list: &[SyncDaemon]) -> Vec<u8> {
    let list: Vec<JsonDaemon> = list
        .iter()
        .map(|d| JsonDaemon {
            state: d.state.label(),
            mcast_interface: d.mcast_ifn.clone(),
            syncid: d.sync_id,
            sync_maxlen: d.sync_maxlen,
            mcast_group: d.mcast_group.as_ref().map(ntop),
            mcast_port: d.mcast_port,
            mcast_ttl: d.mcast_ttl,
        })
        .collect();
    finish(&list)
}

/// `-L -c --json`.
pub fn connections(list: &[Conn]) -> Vec<u8> {
    finish(&list)
}
