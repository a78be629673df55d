//! ipvsadm 1.31's listings, byte for byte: the version header, the column titles of every
//! `-L` variant (`--stats`, `--rate`, `--thresholds`, `--persistent-conn`, `--tun-info`),
//! service and destination lines with their fixed-width `printf` columns (trailing spaces
//! included), `print_largenum`'s K/M/G/T scaling and `--exact`, names or numbers (`-n`),
//! `-S` rules, `--timeout` and `--daemon`.
//!
//! Everything is rendered from the typed model into bytes (host names from the resolver are
//! bytes). Nothing here talks to the kernel or decides order; the caller sorts (`sort`).

use std::io::Write;
use std::net::IpAddr;

use super::command::Format;
use super::names::{Resolver, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::ipvs::save::{
    csum_index, dest_rule, has_sched_flags, ntop, sched_flag_names, service_arg_with, service_rule,
};
use crate::ipvs::{
    DestEntry, Family, ForwardMethod, Info, Protocol, ServiceEntry, ServiceFlags, ServiceKey,
    SyncDaemon, Timeouts, Tunnel, TunnelFlags,
};

/// `IP Virtual Server version 1.2.1 (size=4096)`.
pub fn header(info: &Info) -> String {
    format!(
        "IP Virtual Server version {}.{}.{} (size={})\n",
        (info.version >> 16) & 0xff,
        (info.version >> 8) & 0xff,
        info.version & 0xff,
        info.conn_tab_size as i32
    )
}

/// ipvsadm's `print_title`.
pub fn title(format: &Format) -> String {
    if format.stats {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if format.rate {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if format.thresholds {
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if format.persistent_conn {
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if format.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string()
    } else if !format.rule {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string()
    } else {
        String::new()
    }
}

/// `%-Ns` on bytes.
fn pad(out: &mut Vec<u8>, text: &[u8], width: usize) {
    out.extend_from_slice(text);
    out.resize(out.len() + width.saturating_sub(text.len()), b' ');
}

/// ipvsadm's `print_largenum`.
fn largenum(out: &mut Vec<u8>, i: u64, format: &Format) {
    if format.exact {
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>width$}");
        return;
    }
    let _ = if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1_000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

/// ipvsadm's `addrport_to_anyname`: `addr:port`, IPv6 in brackets, names unless `-n`,
/// cut to the 59 bytes of its buffer.
pub fn addrport(
    addr: &IpAddr,
    port: u16,
    proto: u16,
    format: &Format,
    names: &dyn Resolver,
) -> Vec<u8> {
    let (open, close): (&[u8], &[u8]) = if addr.is_ipv4() {
        (b"", b"")
    } else {
        (b"[", b"]")
    };
    let mut out = open.to_vec();
    if format.numeric {
        out.extend_from_slice(ntop(addr).as_bytes());
        out.extend_from_slice(close);
        out.extend_from_slice(format!(":{port}").as_bytes());
    } else {
        let host = names
            .addr_to_host(*addr)
            .unwrap_or_else(|| ntop(addr).into_bytes());
        out.extend_from_slice(&host);
        out.extend_from_slice(close);
        out.push(b':');
        match names.port_to_service(port, proto) {
            Some(name) => out.extend_from_slice(&name),
            None => out.extend_from_slice(port.to_string().as_bytes()),
        }
    }
    out.truncate(59);
    out
}

/// The protocol number libipvs reports for a service (0 for fwmark services).
fn proto_of(key: &ServiceKey) -> u16 {
    match key {
        ServiceKey::Fwmark { .. } => 0,
        ServiceKey::Addr { protocol, .. } => match protocol {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
            Protocol::Sctp => IPPROTO_SCTP,
        },
    }
}

/// The service's name column: `TCP  10.0.0.1:80` / `FWM  7` / `-t 10.0.0.1:80` / `-f 7`.
fn service_name(key: &ServiceKey, format: &Format, names: &dyn Resolver) -> Vec<u8> {
    match key {
        ServiceKey::Fwmark { family, mark } => {
            let mark = mark.get() as i32;
            let text = match (format.rule, family) {
                (true, _) => return service_arg_with(key, "").into_bytes(),
                (false, Family::V4) => format!("FWM  {mark}"),
                (false, Family::V6) => format!("FWM  {mark} IPv6"),
            };
            text.into_bytes()
        }
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let vname = addrport(addr, *port, proto_of(key), format, names);
            if format.rule {
                let endpoint = String::from_utf8_lossy(&vname);
                return service_arg_with(key, &endpoint).into_bytes();
            }
            let mut out = Vec::new();
            pad(&mut out, protocol.label().as_bytes(), 4);
            out.push(b' ');
            out.extend_from_slice(&vname);
            if addr.is_ipv4() {
                out.truncate(33);
            }
            out
        }
    }
}

fn forward_name(fwd: ForwardMethod) -> &'static str {
    match fwd {
        ForwardMethod::Masquerade => "Masq",
        ForwardMethod::LocalNode => "Local",
        ForwardMethod::Tunnel(_) => "Tunnel",
        ForwardMethod::DirectRoute => "Route",
        ForwardMethod::Bypass => "(null)",
    }
}

fn csum_mark(flags: TunnelFlags) -> &'static str {
    ["-c", "+c", "r+c"][csum_index(flags)]
}

/// The TunnelInfo column (`fwd_tun_info`): `ipip`, `gue:6080:-c`, `gre:+c`, or `n/a`.
fn tunnel_info(fwd: ForwardMethod) -> String {
    match fwd {
        ForwardMethod::Tunnel(Tunnel::Ipip) => "ipip".into(),
        ForwardMethod::Tunnel(Tunnel::Gue { port, flags }) => {
            format!("gue:{port}:{}", csum_mark(flags))
        }
        ForwardMethod::Tunnel(Tunnel::Gre { flags }) => format!("gre:{}", csum_mark(flags)),
        _ => "n/a".into(),
    }
}

/// ipvsadm's `print_service_entry`: the service line and its destinations' lines, dests in
/// the order given.
pub fn service_entry(
    entry: &ServiceEntry,
    dests: &[DestEntry],
    format: &Format,
    names: &dyn Resolver,
) -> Vec<u8> {
    let svc = &entry.service;
    let name = service_name(&svc.key, format, names);
    let mut out = Vec::new();
    if format.rule {
        out.extend_from_slice(service_rule(&String::from_utf8_lossy(&name), svc).as_bytes());
    } else if format.stats || format.rate {
        pad(&mut out, &name, 33);
        let s = &entry.stats;
        let values = if format.stats {
            [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]
        } else {
            [s.cps, s.inpps, s.outpps, s.inbps, s.outbps]
        };
        for v in values {
            largenum(&mut out, v, format);
        }
    } else {
        out.extend_from_slice(&name);
        let _ = write!(out, " {}", svc.scheduler);
        if has_sched_flags(svc.flags) {
            let _ = write!(out, " ({})", sched_flag_names(&svc.scheduler, svc.flags));
        }
        if svc.flags.contains(ServiceFlags::PERSISTENT) {
            let _ = write!(out, " persistent {}", svc.timeout);
            match svc.key.family() {
                Family::V4 if svc.netmask != 0xffff_ffff => {
                    let _ = write!(out, " mask {}", std::net::Ipv4Addr::from(svc.netmask));
                }
                Family::V6 if svc.netmask != 128 => {
                    let _ = write!(out, " mask {}", svc.netmask as i32);
                }
                _ => {}
            }
            if let Some(pe) = svc.pe_name.as_deref().filter(|p| !p.is_empty()) {
                let _ = write!(out, " pe {pe}");
            }
        }
        if svc.flags.contains(ServiceFlags::ONEPACKET) {
            out.extend_from_slice(b" ops");
        }
    }
    out.push(b'\n');
    for d in dests {
        dest_line(&mut out, &name, entry, d, format, names);
    }
    out
}

fn dest_line(
    out: &mut Vec<u8>,
    svc_name: &[u8],
    entry: &ServiceEntry,
    e: &DestEntry,
    format: &Format,
    names: &dyn Resolver,
) {
    let d = &e.dest;
    let mut dname = addrport(&d.addr, d.port, proto_of(&entry.service.key), format, names);
    if !format.rule && d.addr.is_ipv4() {
        dname.truncate(28);
    }
    if format.rule {
        let line = dest_rule(
            &String::from_utf8_lossy(svc_name),
            &String::from_utf8_lossy(&dname),
            d,
        );
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        return;
    }
    out.extend_from_slice(b"  -> ");
    let s = &e.stats;
    if format.stats {
        pad(out, &dname, 28);
        for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
            largenum(out, v, format);
        }
        out.push(b'\n');
    } else if format.rate {
        pad(out, &dname, 28);
        let _ = write!(out, " {:>8} {:>8} {:>8}", s.cps, s.inpps, s.outpps);
        largenum(out, s.inbps, format);
        largenum(out, s.outbps, format);
        out.push(b'\n');
    } else if format.thresholds {
        pad(out, &dname, 28);
        let _ = writeln!(
            out,
            " {:<10} {:<10} {:<10} {:<10}",
            d.upper_threshold, d.lower_threshold, e.active_conns, e.inactive_conns
        );
    } else if format.persistent_conn {
        pad(out, &dname, 28);
        let _ = writeln!(
            out,
            " {:<9} {:<11} {:<10} {:<10}",
            d.weight, e.persist_conns, e.active_conns, e.inactive_conns
        );
    } else if format.tun_info {
        pad(out, &dname, 28);
        let _ = writeln!(
            out,
            " {:<7} {:<13} {:<6} {:<10} {:<10}",
            forward_name(d.forward),
            tunnel_info(d.forward),
            d.weight as i32,
            e.active_conns,
            e.inactive_conns
        );
    } else {
        pad(out, &dname, 28);
        let _ = writeln!(
            out,
            " {:<7} {:<6} {:<10} {:<10}",
            forward_name(d.forward),
            d.weight as i32,
            e.active_conns,
            e.inactive_conns
        );
    }
}

/// `--timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp as i32, t.tcp_fin as i32, t.udp as i32
    )
}

/// `--daemon`: one line per running daemon, master first.
pub fn daemons(list: &[SyncDaemon]) -> String {
    let mut out = String::new();
    for d in list {
        out.push_str(&format!(
            "{} sync daemon (mcast={}, syncid={}",
            d.state.label(),
            d.mcast_ifn,
            d.sync_id as i32
        ));
        if d.sync_maxlen != 0 {
            out.push_str(&format!(", maxlen={}", d.sync_maxlen));
        }
        if let Some(g) = &d.mcast_group {
            out.push_str(&format!(", group={}", ntop(g)));
        }
        if d.mcast_port != 0 {
            out.push_str(&format!(", port={}", d.mcast_port));
        }
        if d.mcast_ttl != 0 {
            out.push_str(&format!(", ttl={}", d.mcast_ttl));
        }
        out.push_str(")\n");
    }
    out
}
