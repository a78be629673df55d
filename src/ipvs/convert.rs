//! Conversion between the typed model (`model`) and the IPVS attribute sets (`nla`):
//! the one place where wire values are normalised (HASHED masked, addresses read by the
//! AF attribute, netmask read by family, stats widened) and where requests get the exact
//! attribute order ipvsadm uses, so that bigbro's requests match ipvsadm's byte for byte.
//!
//! Pure functions only; a reply missing a required attribute is a `DecodeError` naming
//! it, never a panic or a silently invented value.

use std::net::IpAddr;

use netlink_packet_core::DecodeError;

use super::model::*;
use super::nla::{CmdAttr, DaemonAttr, DestAttr, InetAddr, IpVsFlags, StatsAttr, SvcAttr};
use super::uapi::*;
use crate::types::Fwmark;

// ---------------------------------------------------------------------------------------
// Requests

fn netmask_raw(family: Family, netmask: u32) -> [u8; 4] {
    match family {
        Family::V4 => netmask.to_be_bytes(),
        Family::V6 => netmask.to_ne_bytes(),
    }
}

/// AF plus the identifying attributes (FWMARK, or PROTOCOL + ADDR + PORT).
pub fn service_ident(key: &ServiceKey) -> Vec<SvcAttr> {
    let mut attrs = vec![SvcAttr::Af(key.family().af())];
    match key {
        ServiceKey::Fwmark { mark, .. } => attrs.push(SvcAttr::Fwmark(mark.get())),
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            attrs.push(SvcAttr::Protocol(protocol.ipproto()));
            attrs.push(SvcAttr::Addr(InetAddr::from_ip(*addr)));
            attrs.push(SvcAttr::Port(*port));
        }
    }
    attrs
}

/// A full service (NEW/SET_SERVICE), in libipvs order: identity, SCHED_NAME, PE_NAME,
/// FLAGS (mask ~0: the flags replace the kernel's), TIMEOUT, NETMASK.
pub fn service_attrs(svc: &Service) -> Vec<SvcAttr> {
    let mut attrs = service_ident(&svc.key);
    attrs.push(SvcAttr::SchedName(svc.scheduler.clone()));
    if let Some(pe) = &svc.pe_name {
        attrs.push(SvcAttr::PeName(pe.clone()));
    }
    attrs.push(SvcAttr::Flags(IpVsFlags {
        flags: svc.flags.bits(),
        mask: !0,
    }));
    attrs.push(SvcAttr::Timeout(svc.timeout));
    attrs.push(SvcAttr::Netmask(netmask_raw(svc.key.family(), svc.netmask)));
    attrs
}

/// The service nest ipvsadm sends with destination, delete and zero commands: the
/// identity plus an empty scheduler, no flags, no timeout and the default netmask. The
/// kernel reads only the identity; the rest is there to match ipvsadm on the wire.
pub fn service_ident_as_ipvsadm(key: &ServiceKey) -> Vec<SvcAttr> {
    let mut blank = Service::new(*key, "");
    blank.flags = ServiceFlags::default();
    service_attrs(&blank)
}

fn tunnel_fields(fwd: ForwardMethod) -> (u8, u16, u16) {
    match fwd {
        ForwardMethod::Tunnel(Tunnel::Ipip) => (IP_VS_CONN_F_TUNNEL_TYPE_IPIP, 0, 0),
        ForwardMethod::Tunnel(Tunnel::Gue { port, flags }) => {
            (IP_VS_CONN_F_TUNNEL_TYPE_GUE, port, flags.0)
        }
        ForwardMethod::Tunnel(Tunnel::Gre { flags }) => (IP_VS_CONN_F_TUNNEL_TYPE_GRE, 0, flags.0),
        _ => (IP_VS_CONN_F_TUNNEL_TYPE_IPIP, 0, 0),
    }
}

/// A full destination (NEW/SET/DEL_DEST), in ipvsadm 1.31 order: ADDR_FAMILY, ADDR,
/// PORT, FWD_METHOD, WEIGHT, TUN_TYPE, TUN_PORT, TUN_FLAGS, U_THRESH, L_THRESH.
pub fn dest_attrs(dest: &Dest) -> Vec<DestAttr> {
    let (tun_type, tun_port, tun_flags) = tunnel_fields(dest.forward);
    vec![
        DestAttr::AddrFamily(Family::of(&dest.addr).af()),
        DestAttr::Addr(InetAddr::from_ip(dest.addr)),
        DestAttr::Port(dest.port),
        DestAttr::FwdMethod(dest.forward.code()),
        DestAttr::Weight(dest.weight),
        DestAttr::TunType(tun_type),
        DestAttr::TunPort(tun_port),
        DestAttr::TunFlags(tun_flags),
        DestAttr::UThresh(dest.upper_threshold),
        DestAttr::LThresh(dest.lower_threshold),
    ]
}

/// The destination ipvsadm sends for `-d`: the address and port with its defaults
/// (direct routing, weight 1) for everything the kernel ignores on delete.
pub fn dest_ident_as_ipvsadm(addr: IpAddr, port: u16) -> Vec<DestAttr> {
    dest_attrs(&Dest {
        addr,
        port,
        forward: ForwardMethod::DirectRoute,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
    })
}

/// A NEW_DAEMON nest: the required STATE, MCAST_IFN, SYNC_ID, then the optional ones
/// that differ from the kernel's defaults.
pub fn daemon_attrs(d: &SyncDaemon) -> Vec<DaemonAttr> {
    let mut attrs = vec![
        DaemonAttr::State(d.state.code()),
        DaemonAttr::McastIfn(d.mcast_ifn.clone()),
        DaemonAttr::SyncId(d.sync_id),
    ];
    if d.sync_maxlen != 0 {
        attrs.push(DaemonAttr::SyncMaxlen(d.sync_maxlen));
    }
    match d.mcast_group {
        Some(IpAddr::V4(a)) => attrs.push(DaemonAttr::McastGroup(a)),
        Some(IpAddr::V6(a)) => attrs.push(DaemonAttr::McastGroup6(a)),
        None => {}
    }
    if d.mcast_port != 0 {
        attrs.push(DaemonAttr::McastPort(d.mcast_port));
    }
    if d.mcast_ttl != 0 {
        attrs.push(DaemonAttr::McastTtl(d.mcast_ttl));
    }
    attrs
}

/// SET_CONFIG attributes (0 leaves a timeout unchanged).
pub fn timeout_attrs(t: &Timeouts) -> Vec<CmdAttr> {
    vec![
        CmdAttr::TimeoutTcp(t.tcp),
        CmdAttr::TimeoutTcpFin(t.tcp_fin),
        CmdAttr::TimeoutUdp(t.udp),
    ]
}

// ---------------------------------------------------------------------------------------
// Replies

fn missing(what: &str, attr: &str) -> DecodeError {
    DecodeError::from(format!("{what} without {attr}"))
}

fn family_of(af: u16, what: &str) -> Result<Family, DecodeError> {
    Family::from_af(af)
        .ok_or_else(|| DecodeError::from(format!("{what} has unknown address family {af}")))
}

/// Counters of a STATS or STATS64 nest, widened to u64.
pub fn stats_from_attrs(attrs: &[StatsAttr]) -> Stats {
    let mut s = Stats::default();
    for a in attrs {
        match a {
            StatsAttr::Conns(c) => s.conns = c.get(),
            StatsAttr::InPkts(c) => s.inpkts = c.get(),
            StatsAttr::OutPkts(c) => s.outpkts = c.get(),
            StatsAttr::InBytes(c) => s.inbytes = c.get(),
            StatsAttr::OutBytes(c) => s.outbytes = c.get(),
            StatsAttr::Cps(c) => s.cps = c.get(),
            StatsAttr::InPps(c) => s.inpps = c.get(),
            StatsAttr::OutPps(c) => s.outpps = c.get(),
            StatsAttr::InBps(c) => s.inbps = c.get(),
            StatsAttr::OutBps(c) => s.outbps = c.get(),
            StatsAttr::Pad(_) | StatsAttr::Other(_) => {}
        }
    }
    s
}

/// The 64-bit stats if present (kernel ≥ 4.1), else the 32-bit ones, else zeros.
fn pick_stats(stats64: Option<&Vec<StatsAttr>>, stats: Option<&Vec<StatsAttr>>) -> Stats {
    stats64
        .or(stats)
        .map(|a| stats_from_attrs(a))
        .unwrap_or_default()
}

/// A service as the kernel reports it (reply to GET_SERVICE), normalised.
pub fn service_from_attrs(attrs: &[SvcAttr]) -> Result<ServiceEntry, DecodeError> {
    const WHAT: &str = "IPVS service";
    let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let (mut sched, mut flags, mut timeout, mut netmask, mut pe) = (None, None, None, None, None);
    let (mut stats, mut stats64) = (None, None);
    for a in attrs {
        match a {
            SvcAttr::Af(v) => af = Some(*v),
            SvcAttr::Protocol(v) => protocol = Some(*v),
            SvcAttr::Addr(v) => addr = Some(*v),
            SvcAttr::Port(v) => port = Some(*v),
            SvcAttr::Fwmark(v) => fwmark = Some(*v),
            SvcAttr::SchedName(v) => sched = Some(v.clone()),
            SvcAttr::Flags(v) => flags = Some(*v),
            SvcAttr::Timeout(v) => timeout = Some(*v),
            SvcAttr::Netmask(v) => netmask = Some(*v),
            SvcAttr::Stats(v) => stats = Some(v),
            SvcAttr::PeName(v) => pe = Some(v.clone()),
            SvcAttr::Stats64(v) => stats64 = Some(v),
            SvcAttr::Other(_) => {}
        }
    }
    let family = family_of(af.ok_or_else(|| missing(WHAT, "IPVS_SVC_ATTR_AF"))?, WHAT)?;
    let key = match fwmark.and_then(Fwmark::new) {
        Some(mark) => ServiceKey::Fwmark { family, mark },
        None => {
            let p = protocol.ok_or_else(|| missing(WHAT, "IPVS_SVC_ATTR_FWMARK or _PROTOCOL"))?;
            let protocol = Protocol::from_ipproto(p)
                .ok_or_else(|| DecodeError::from(format!("{WHAT} has unknown protocol {p}")))?;
            ServiceKey::Addr {
                protocol,
                addr: addr
                    .ok_or_else(|| missing(WHAT, "IPVS_SVC_ATTR_ADDR"))?
                    .to_ip(family),
                port: port.ok_or_else(|| missing(WHAT, "IPVS_SVC_ATTR_PORT"))?,
            }
        }
    };
    let raw_mask = netmask.ok_or_else(|| missing(WHAT, "IPVS_SVC_ATTR_NETMASK"))?;
    let service = Service {
        key,
        scheduler: sched.ok_or_else(|| missing(WHAT, "IPVS_SVC_ATTR_SCHED_NAME"))?,
        flags: ServiceFlags::from_bits(
            flags
                .ok_or_else(|| missing(WHAT, "IPVS_SVC_ATTR_FLAGS"))?
                .flags,
        ),
        timeout: timeout.ok_or_else(|| missing(WHAT, "IPVS_SVC_ATTR_TIMEOUT"))?,
        netmask: match family {
            Family::V4 => u32::from_be_bytes(raw_mask),
            Family::V6 => u32::from_ne_bytes(raw_mask),
        },
        pe_name: pe,
    };
    Ok(ServiceEntry {
        service,
        stats: pick_stats(stats64, stats),
    })
}

fn forward_from(code: u32, tun: (Option<u8>, u16, u16)) -> Result<ForwardMethod, DecodeError> {
    Ok(match code & IP_VS_CONN_F_FWD_MASK {
        IP_VS_CONN_F_MASQ => ForwardMethod::Masquerade,
        IP_VS_CONN_F_LOCALNODE => ForwardMethod::LocalNode,
        IP_VS_CONN_F_DROUTE => ForwardMethod::DirectRoute,
        IP_VS_CONN_F_BYPASS => ForwardMethod::Bypass,
        IP_VS_CONN_F_TUNNEL => ForwardMethod::Tunnel(match tun {
            (None | Some(IP_VS_CONN_F_TUNNEL_TYPE_IPIP), _, _) => Tunnel::Ipip,
            (Some(IP_VS_CONN_F_TUNNEL_TYPE_GUE), port, flags) => Tunnel::Gue {
                port,
                flags: TunnelFlags(flags),
            },
            (Some(IP_VS_CONN_F_TUNNEL_TYPE_GRE), _, flags) => Tunnel::Gre {
                flags: TunnelFlags(flags),
            },
            (Some(t), _, _) => {
                return Err(DecodeError::from(format!(
                    "IPVS destination has unknown tunnel type {t}"
                )))
            }
        }),
        other => {
            return Err(DecodeError::from(format!(
                "IPVS destination has unknown forwarding method {other}"
            )))
        }
    })
}

/// A destination as the kernel reports it (reply to GET_DEST), normalised. Old kernels
/// omit ADDR_FAMILY: the destination then has the service's family.
pub fn dest_from_attrs(
    attrs: &[DestAttr],
    service_family: Family,
) -> Result<DestEntry, DecodeError> {
    const WHAT: &str = "IPVS destination";
    let (mut addr, mut port, mut fwd, mut weight, mut af) = (None, None, None, None, None);
    let (mut u, mut l, mut active, mut inact, mut persist) = (0, 0, 0, 0, 0);
    let (mut tun_type, mut tun_port, mut tun_flags) = (None, 0, 0);
    let (mut stats, mut stats64) = (None, None);
    for a in attrs {
        match a {
            DestAttr::Addr(v) => addr = Some(*v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::FwdMethod(v) => fwd = Some(*v),
            DestAttr::Weight(v) => weight = Some(*v),
            DestAttr::UThresh(v) => u = *v,
            DestAttr::LThresh(v) => l = *v,
            DestAttr::ActiveConns(v) => active = *v,
            DestAttr::InactConns(v) => inact = *v,
            DestAttr::PersistConns(v) => persist = *v,
            DestAttr::Stats(v) => stats = Some(v),
            DestAttr::AddrFamily(v) => af = Some(*v),
            DestAttr::Stats64(v) => stats64 = Some(v),
            DestAttr::TunType(v) => tun_type = Some(*v),
            DestAttr::TunPort(v) => tun_port = *v,
            DestAttr::TunFlags(v) => tun_flags = *v,
            DestAttr::Other(_) => {}
        }
    }
    let family = match af {
        Some(af) => family_of(af, WHAT)?,
        None => service_family,
    };
    let dest = Dest {
        addr: addr
            .ok_or_else(|| missing(WHAT, "IPVS_DEST_ATTR_ADDR"))?
            .to_ip(family),
        port: port.ok_or_else(|| missing(WHAT, "IPVS_DEST_ATTR_PORT"))?,
        forward: forward_from(
            fwd.ok_or_else(|| missing(WHAT, "IPVS_DEST_ATTR_FWD_METHOD"))?,
            (tun_type, tun_port, tun_flags),
        )?,
        weight: weight.ok_or_else(|| missing(WHAT, "IPVS_DEST_ATTR_WEIGHT"))?,
        upper_threshold: u,
        lower_threshold: l,
    };
    Ok(DestEntry {
        dest,
        active_conns: active,
        inactive_conns: inact,
        persist_conns: persist,
        stats: pick_stats(stats64, stats),
    })
}

/// A sync daemon as GET_DAEMON reports it.
pub fn daemon_from_attrs(attrs: &[DaemonAttr]) -> Result<SyncDaemon, DecodeError> {
    const WHAT: &str = "IPVS sync daemon";
    let (mut state, mut ifn, mut sync_id) = (None, None, None);
    let mut d = SyncDaemon {
        state: DaemonState::Master,
        mcast_ifn: String::new(),
        sync_id: 0,
        sync_maxlen: 0,
        mcast_group: None,
        mcast_port: 0,
        mcast_ttl: 0,
    };
    for a in attrs {
        match a {
            DaemonAttr::State(v) => state = Some(*v),
            DaemonAttr::McastIfn(v) => ifn = Some(v.clone()),
            DaemonAttr::SyncId(v) => sync_id = Some(*v),
            DaemonAttr::SyncMaxlen(v) => d.sync_maxlen = *v,
            DaemonAttr::McastGroup(v) => d.mcast_group = Some(IpAddr::V4(*v)),
            DaemonAttr::McastGroup6(v) => d.mcast_group = Some(IpAddr::V6(*v)),
            DaemonAttr::McastPort(v) => d.mcast_port = *v,
            DaemonAttr::McastTtl(v) => d.mcast_ttl = *v,
            DaemonAttr::Other(_) => {}
        }
    }
    let code = state.ok_or_else(|| missing(WHAT, "IPVS_DAEMON_ATTR_STATE"))?;
    d.state = DaemonState::from_code(code)
        .ok_or_else(|| DecodeError::from(format!("{WHAT} has unknown state {code}")))?;
    d.mcast_ifn = ifn.ok_or_else(|| missing(WHAT, "IPVS_DAEMON_ATTR_MCAST_IFN"))?;
    d.sync_id = sync_id.ok_or_else(|| missing(WHAT, "IPVS_DAEMON_ATTR_SYNC_ID"))?;
    Ok(d)
}

/// The SET_INFO reply.
pub fn info_from_attrs(attrs: &[CmdAttr]) -> Result<Info, DecodeError> {
    let (mut version, mut size) = (None, None);
    for a in attrs {
        match a {
            CmdAttr::InfoVersion(v) => version = Some(*v),
            CmdAttr::InfoConnTabSize(v) => size = Some(*v),
            _ => {}
        }
    }
    Ok(Info {
        version: version.ok_or_else(|| missing("IPVS info", "IPVS_INFO_ATTR_VERSION"))?,
        conn_tab_size: size.ok_or_else(|| missing("IPVS info", "IPVS_INFO_ATTR_CONN_TAB_SIZE"))?,
    })
}

/// The SET_CONFIG reply to GET_CONFIG. A kernel without TCP or UDP support omits that
/// protocol's timeouts; they read as 0.
pub fn timeouts_from_attrs(attrs: &[CmdAttr]) -> Timeouts {
    let mut t = Timeouts::default();
    for a in attrs {
        match a {
            CmdAttr::TimeoutTcp(v) => t.tcp = *v,
            CmdAttr::TimeoutTcpFin(v) => t.tcp_fin = *v,
            CmdAttr::TimeoutUdp(v) => t.udp = *v,
            _ => {}
        }
    }
    t
}
