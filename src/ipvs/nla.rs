//! The netlink attributes of the IPVS family, one enum per attribute set of
//! `include/uapi/linux/ip_vs.h` (command, service, destination, stats, daemon), each with
//! an emit/parse pair built on `netlink-packet-core`'s `Nla` and `NlaBuffer`.
//!
//! Values are kept exactly as the wire has them, decoded into host integers: ports and
//! tunnel ports travel big-endian and are stored here as ordinary `u16`; addresses stay
//! 16-byte `nf_inet_addr` blobs whose family another attribute decides; the IPv4/IPv6
//! netmask stays raw bytes. Interpreting them for the model is `convert`'s job.
//!
//! Parsing must never panic: a known attribute with a wrong length is a `DecodeError`
//! naming it, an unknown attribute is kept as `Other` (and re-emitted as it came).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer, NlasIterator, Parseable,
    NLA_F_NESTED,
};

use super::model::Family;
use super::uapi::*;

/// `union nf_inet_addr`: always 16 bytes on the wire, IPv4 in the first four.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InetAddr(pub [u8; 16]);

impl InetAddr {
    pub fn from_ip(ip: IpAddr) -> InetAddr {
        let mut raw = [0u8; 16];
        match ip {
            IpAddr::V4(a) => raw[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => raw = a.octets(),
        }
        InetAddr(raw)
    }

    /// The address read as `family` (the wire never says which it is).
    pub fn to_ip(self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(self.0[0], self.0[1], self.0[2], self.0[3])),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }

    /// Like the kernel's `nla_memcpy`: up to 16 bytes, the rest zero.
    fn parse(value: &[u8], name: &str) -> Result<InetAddr, DecodeError> {
        if value.len() > 16 {
            return Err(DecodeError::from(format!(
                "{name}: an address is at most 16 bytes, got {}",
                value.len()
            )));
        }
        let mut raw = [0u8; 16];
        raw[..value.len()].copy_from_slice(value);
        Ok(InetAddr(raw))
    }
}

/// `struct ip_vs_flags { __u32 flags; __u32 mask; }`, host order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpVsFlags {
    pub flags: u32,
    pub mask: u32,
}

/// A counter as it travelled: 32-bit in `*_ATTR_STATS` (except the byte counters),
/// 64-bit in `*_ATTR_STATS64`. The width is kept so that emitting reproduces the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    U32(u32),
    U64(u64),
}

impl Counter {
    pub fn get(self) -> u64 {
        match self {
            Counter::U32(v) => u64::from(v),
            Counter::U64(v) => v,
        }
    }
    fn len(self) -> usize {
        match self {
            Counter::U32(_) => 4,
            Counter::U64(_) => 8,
        }
    }
    fn emit(self, buf: &mut [u8]) {
        match self {
            Counter::U32(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            Counter::U64(v) => buf[..8].copy_from_slice(&v.to_ne_bytes()),
        }
    }
    fn parse(value: &[u8], name: &str) -> Result<Counter, DecodeError> {
        match value.len() {
            4 => Ok(Counter::U32(u32::from_ne_bytes(arr(value)))),
            8 => Ok(Counter::U64(u64::from_ne_bytes(arr(value)))),
            n => Err(DecodeError::from(format!(
                "{name}: a counter is 4 or 8 bytes, got {n}"
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Byte helpers: fixed-size reads that report the attribute by name instead of panicking.

fn arr<const N: usize>(value: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&value[..N]);
    out
}

fn fixed<'a>(value: &'a [u8], n: usize, name: &str) -> Result<&'a [u8], DecodeError> {
    if value.len() == n {
        Ok(value)
    } else {
        Err(DecodeError::from(format!(
            "{name}: expected {n} bytes, got {}",
            value.len()
        )))
    }
}

fn get_u8(value: &[u8], name: &str) -> Result<u8, DecodeError> {
    Ok(fixed(value, 1, name)?[0])
}
fn get_u16(value: &[u8], name: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_ne_bytes(arr(fixed(value, 2, name)?)))
}
fn get_be16(value: &[u8], name: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(arr(fixed(value, 2, name)?)))
}
fn get_u32(value: &[u8], name: &str) -> Result<u32, DecodeError> {
    Ok(u32::from_ne_bytes(arr(fixed(value, 4, name)?)))
}

/// A NUL-terminated string (`NLA_NUL_STRING`); text after the first NUL is ignored.
fn get_cstring(value: &[u8], name: &str) -> Result<String, DecodeError> {
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    String::from_utf8(value[..end].to_vec())
        .map_err(|_| DecodeError::from(format!("{name}: not valid UTF-8")))
}

fn put_cstring(buf: &mut [u8], s: &str) {
    buf[..s.len()].copy_from_slice(s.as_bytes());
    buf[s.len()] = 0;
}

/// Parses every attribute of a nest (or of a message body) with `parse_one`.
pub fn parse_all<A>(
    buf: &[u8],
    mut parse_one: impl FnMut(&NlaBuffer<&[u8]>) -> Result<A, DecodeError>,
) -> Result<Vec<A>, DecodeError> {
    let mut out = Vec::new();
    for nla in NlasIterator::new(buf) {
        out.push(parse_one(&nla?)?);
    }
    Ok(out)
}

fn other(buf: &NlaBuffer<&[u8]>) -> Result<DefaultNla, DecodeError> {
    DefaultNla::parse(buf)
}

// ---------------------------------------------------------------------------------------
// IPVS_STATS_ATTR_*

/// One attribute of a stats nest (`IPVS_STATS_ATTR_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsAttr {
    Conns(Counter),
    InPkts(Counter),
    OutPkts(Counter),
    InBytes(Counter),
    OutBytes(Counter),
    Cps(Counter),
    InPps(Counter),
    OutPps(Counter),
    InBps(Counter),
    OutBps(Counter),
    /// `IPVS_STATS_ATTR_PAD`: alignment padding before a 64-bit value.
    Pad(Vec<u8>),
    Other(DefaultNla),
}

impl StatsAttr {
    fn counter(&self) -> Option<Counter> {
        use StatsAttr::*;
        match self {
            Conns(c) | InPkts(c) | OutPkts(c) | InBytes(c) | OutBytes(c) | Cps(c) | InPps(c)
            | OutPps(c) | InBps(c) | OutBps(c) => Some(*c),
            Pad(_) | Other(_) => None,
        }
    }
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::Pad(v) => v.len(),
            StatsAttr::Other(nla) => nla.value_len(),
            counter => counter.counter().map_or(0, Counter::len),
        }
    }
    fn kind(&self) -> u16 {
        use StatsAttr::*;
        match self {
            Conns(_) => IPVS_STATS_ATTR_CONNS,
            InPkts(_) => IPVS_STATS_ATTR_INPKTS,
            OutPkts(_) => IPVS_STATS_ATTR_OUTPKTS,
            InBytes(_) => IPVS_STATS_ATTR_INBYTES,
            OutBytes(_) => IPVS_STATS_ATTR_OUTBYTES,
            Cps(_) => IPVS_STATS_ATTR_CPS,
            InPps(_) => IPVS_STATS_ATTR_INPPS,
            OutPps(_) => IPVS_STATS_ATTR_OUTPPS,
            InBps(_) => IPVS_STATS_ATTR_INBPS,
            OutBps(_) => IPVS_STATS_ATTR_OUTBPS,
            Pad(_) => IPVS_STATS_ATTR_PAD,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            StatsAttr::Pad(v) => buf[..v.len()].copy_from_slice(v),
            StatsAttr::Other(nla) => nla.emit_value(buf),
            counter => {
                if let Some(c) = counter.counter() {
                    c.emit(buf)
                }
            }
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for StatsAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        let c = |name| Counter::parse(v, name);
        Ok(match buf.kind() {
            IPVS_STATS_ATTR_CONNS => StatsAttr::Conns(c("IPVS_STATS_ATTR_CONNS")?),
            IPVS_STATS_ATTR_INPKTS => StatsAttr::InPkts(c("IPVS_STATS_ATTR_INPKTS")?),
            IPVS_STATS_ATTR_OUTPKTS => StatsAttr::OutPkts(c("IPVS_STATS_ATTR_OUTPKTS")?),
            IPVS_STATS_ATTR_INBYTES => StatsAttr::InBytes(c("IPVS_STATS_ATTR_INBYTES")?),
            IPVS_STATS_ATTR_OUTBYTES => StatsAttr::OutBytes(c("IPVS_STATS_ATTR_OUTBYTES")?),
            IPVS_STATS_ATTR_CPS => StatsAttr::Cps(c("IPVS_STATS_ATTR_CPS")?),
            IPVS_STATS_ATTR_INPPS => StatsAttr::InPps(c("IPVS_STATS_ATTR_INPPS")?),
            IPVS_STATS_ATTR_OUTPPS => StatsAttr::OutPps(c("IPVS_STATS_ATTR_OUTPPS")?),
            IPVS_STATS_ATTR_INBPS => StatsAttr::InBps(c("IPVS_STATS_ATTR_INBPS")?),
            IPVS_STATS_ATTR_OUTBPS => StatsAttr::OutBps(c("IPVS_STATS_ATTR_OUTBPS")?),
            IPVS_STATS_ATTR_PAD => StatsAttr::Pad(v.to_vec()),
            _ => StatsAttr::Other(other(buf)?),
        })
    }
}

fn parse_stats(buf: &NlaBuffer<&[u8]>, name: &str) -> Result<Vec<StatsAttr>, DecodeError> {
    parse_all(buf.value(), |nla| StatsAttr::parse(nla)).context(name)
}

fn nested_len<A: Nla>(attrs: &[A]) -> usize {
    attrs.buffer_len()
}

// ---------------------------------------------------------------------------------------
// IPVS_SVC_ATTR_*

/// One attribute of a service nest (`IPVS_SVC_ATTR_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SvcAttr {
    /// `AF_INET` / `AF_INET6`, host order.
    Af(u16),
    /// `IPPROTO_*`, host order.
    Protocol(u16),
    Addr(InetAddr),
    /// The virtual port (big-endian on the wire).
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    Flags(IpVsFlags),
    /// Persistence timeout in seconds.
    Timeout(u32),
    /// Raw bytes: the IPv4 mask in network order, or the IPv6 prefix length as a host u32.
    Netmask([u8; 4]),
    Stats(Vec<StatsAttr>),
    PeName(String),
    Stats64(Vec<StatsAttr>),
    Other(DefaultNla),
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        use SvcAttr::*;
        match self {
            Af(_) | Protocol(_) | Port(_) => 2,
            Addr(_) => 16,
            Fwmark(_) | Timeout(_) | Netmask(_) => 4,
            SchedName(s) | PeName(s) => s.len() + 1,
            Flags(_) => 8,
            Stats(a) | Stats64(a) => nested_len(a),
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use SvcAttr::*;
        match self {
            Af(_) => IPVS_SVC_ATTR_AF,
            Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Addr(_) => IPVS_SVC_ATTR_ADDR,
            Port(_) => IPVS_SVC_ATTR_PORT,
            Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            Flags(_) => IPVS_SVC_ATTR_FLAGS,
            Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            Stats(_) => IPVS_SVC_ATTR_STATS | NLA_F_NESTED,
            PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            Stats64(_) => IPVS_SVC_ATTR_STATS64 | NLA_F_NESTED,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use SvcAttr::*;
        match self {
            Af(v) | Protocol(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            Port(v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            Addr(a) => buf[..16].copy_from_slice(&a.0),
            Fwmark(v) | Timeout(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            Netmask(raw) => buf[..4].copy_from_slice(raw),
            SchedName(s) | PeName(s) => put_cstring(buf, s),
            Flags(f) => {
                buf[..4].copy_from_slice(&f.flags.to_ne_bytes());
                buf[4..8].copy_from_slice(&f.mask.to_ne_bytes());
            }
            Stats(a) | Stats64(a) => a.as_slice().emit(buf),
            Other(nla) => nla.emit_value(buf),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for SvcAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_SVC_ATTR_AF => SvcAttr::Af(get_u16(v, "IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => SvcAttr::Protocol(get_u16(v, "IPVS_SVC_ATTR_PROTOCOL")?),
            IPVS_SVC_ATTR_ADDR => SvcAttr::Addr(InetAddr::parse(v, "IPVS_SVC_ATTR_ADDR")?),
            IPVS_SVC_ATTR_PORT => SvcAttr::Port(get_be16(v, "IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => SvcAttr::Fwmark(get_u32(v, "IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => {
                SvcAttr::SchedName(get_cstring(v, "IPVS_SVC_ATTR_SCHED_NAME")?)
            }
            IPVS_SVC_ATTR_FLAGS => {
                let v = fixed(v, 8, "IPVS_SVC_ATTR_FLAGS")?;
                SvcAttr::Flags(IpVsFlags {
                    flags: u32::from_ne_bytes(arr(&v[..4])),
                    mask: u32::from_ne_bytes(arr(&v[4..])),
                })
            }
            IPVS_SVC_ATTR_TIMEOUT => SvcAttr::Timeout(get_u32(v, "IPVS_SVC_ATTR_TIMEOUT")?),
            IPVS_SVC_ATTR_NETMASK => SvcAttr::Netmask(arr(fixed(v, 4, "IPVS_SVC_ATTR_NETMASK")?)),
            IPVS_SVC_ATTR_STATS => SvcAttr::Stats(parse_stats(buf, "IPVS_SVC_ATTR_STATS")?),
            IPVS_SVC_ATTR_PE_NAME => SvcAttr::PeName(get_cstring(v, "IPVS_SVC_ATTR_PE_NAME")?),
            IPVS_SVC_ATTR_STATS64 => SvcAttr::Stats64(parse_stats(buf, "IPVS_SVC_ATTR_STATS64")?),
            _ => SvcAttr::Other(other(buf)?),
        })
    }
}

// ---------------------------------------------------------------------------------------
// IPVS_DEST_ATTR_*

/// One attribute of a destination nest (`IPVS_DEST_ATTR_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestAttr {
    Addr(InetAddr),
    /// The real-server port (big-endian on the wire).
    Port(u16),
    /// `IP_VS_CONN_F_*` forwarding method (the kernel masks it with `FWD_MASK`).
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(Vec<StatsAttr>),
    AddrFamily(u16),
    Stats64(Vec<StatsAttr>),
    TunType(u8),
    /// The GUE port (big-endian on the wire).
    TunPort(u16),
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        use DestAttr::*;
        match self {
            Addr(_) => 16,
            Port(_) | AddrFamily(_) | TunPort(_) | TunFlags(_) => 2,
            FwdMethod(_) | Weight(_) | UThresh(_) | LThresh(_) | ActiveConns(_) | InactConns(_)
            | PersistConns(_) => 4,
            TunType(_) => 1,
            Stats(a) | Stats64(a) => nested_len(a),
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use DestAttr::*;
        match self {
            Addr(_) => IPVS_DEST_ATTR_ADDR,
            Port(_) => IPVS_DEST_ATTR_PORT,
            FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            Stats(_) => IPVS_DEST_ATTR_STATS | NLA_F_NESTED,
            AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            Stats64(_) => IPVS_DEST_ATTR_STATS64 | NLA_F_NESTED,
            TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use DestAttr::*;
        match self {
            Addr(a) => buf[..16].copy_from_slice(&a.0),
            Port(v) | TunPort(v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            AddrFamily(v) | TunFlags(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            FwdMethod(v) | Weight(v) | UThresh(v) | LThresh(v) | ActiveConns(v) | InactConns(v)
            | PersistConns(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            TunType(v) => buf[0] = *v,
            Stats(a) | Stats64(a) => a.as_slice().emit(buf),
            Other(nla) => nla.emit_value(buf),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_DEST_ATTR_ADDR => DestAttr::Addr(InetAddr::parse(v, "IPVS_DEST_ATTR_ADDR")?),
            IPVS_DEST_ATTR_PORT => DestAttr::Port(get_be16(v, "IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => {
                DestAttr::FwdMethod(get_u32(v, "IPVS_DEST_ATTR_FWD_METHOD")?)
            }
            IPVS_DEST_ATTR_WEIGHT => DestAttr::Weight(get_u32(v, "IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => DestAttr::UThresh(get_u32(v, "IPVS_DEST_ATTR_U_THRESH")?),
            IPVS_DEST_ATTR_L_THRESH => DestAttr::LThresh(get_u32(v, "IPVS_DEST_ATTR_L_THRESH")?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                DestAttr::ActiveConns(get_u32(v, "IPVS_DEST_ATTR_ACTIVE_CONNS")?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                DestAttr::InactConns(get_u32(v, "IPVS_DEST_ATTR_INACT_CONNS")?)
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                DestAttr::PersistConns(get_u32(v, "IPVS_DEST_ATTR_PERSIST_CONNS")?)
            }
            IPVS_DEST_ATTR_STATS => DestAttr::Stats(parse_stats(buf, "IPVS_DEST_ATTR_STATS")?),
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                DestAttr::AddrFamily(get_u16(v, "IPVS_DEST_ATTR_ADDR_FAMILY")?)
            }
            IPVS_DEST_ATTR_STATS64 => {
                DestAttr::Stats64(parse_stats(buf, "IPVS_DEST_ATTR_STATS64")?)
            }
            IPVS_DEST_ATTR_TUN_TYPE => DestAttr::TunType(get_u8(v, "IPVS_DEST_ATTR_TUN_TYPE")?),
            IPVS_DEST_ATTR_TUN_PORT => DestAttr::TunPort(get_be16(v, "IPVS_DEST_ATTR_TUN_PORT")?),
            IPVS_DEST_ATTR_TUN_FLAGS => DestAttr::TunFlags(get_u16(v, "IPVS_DEST_ATTR_TUN_FLAGS")?),
            _ => DestAttr::Other(other(buf)?),
        })
    }
}

// ---------------------------------------------------------------------------------------
// IPVS_DAEMON_ATTR_*

/// One attribute of a sync-daemon nest (`IPVS_DAEMON_ATTR_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAttr {
    /// `IP_VS_STATE_MASTER` / `IP_VS_STATE_BACKUP`.
    State(u32),
    McastIfn(String),
    SyncId(u32),
    SyncMaxlen(u16),
    /// IPv4 multicast group (an `in_addr`, network order on the wire).
    McastGroup(Ipv4Addr),
    McastGroup6(Ipv6Addr),
    /// Multicast port, host order (the kernel reads it with `nla_get_u16`).
    McastPort(u16),
    McastTtl(u8),
    Other(DefaultNla),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        use DaemonAttr::*;
        match self {
            State(_) | SyncId(_) | McastGroup(_) => 4,
            McastIfn(s) => s.len() + 1,
            SyncMaxlen(_) | McastPort(_) => 2,
            McastGroup6(_) => 16,
            McastTtl(_) => 1,
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use DaemonAttr::*;
        match self {
            State(_) => IPVS_DAEMON_ATTR_STATE,
            McastIfn(_) => IPVS_DAEMON_ATTR_MCAST_IFN,
            SyncId(_) => IPVS_DAEMON_ATTR_SYNC_ID,
            SyncMaxlen(_) => IPVS_DAEMON_ATTR_SYNC_MAXLEN,
            McastGroup(_) => IPVS_DAEMON_ATTR_MCAST_GROUP,
            McastGroup6(_) => IPVS_DAEMON_ATTR_MCAST_GROUP6,
            McastPort(_) => IPVS_DAEMON_ATTR_MCAST_PORT,
            McastTtl(_) => IPVS_DAEMON_ATTR_MCAST_TTL,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use DaemonAttr::*;
        match self {
            State(v) | SyncId(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            McastIfn(s) => put_cstring(buf, s),
            SyncMaxlen(v) | McastPort(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            McastGroup(a) => buf[..4].copy_from_slice(&a.octets()),
            McastGroup6(a) => buf[..16].copy_from_slice(&a.octets()),
            McastTtl(v) => buf[0] = *v,
            Other(nla) => nla.emit_value(buf),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_DAEMON_ATTR_STATE => DaemonAttr::State(get_u32(v, "IPVS_DAEMON_ATTR_STATE")?),
            IPVS_DAEMON_ATTR_MCAST_IFN => {
                DaemonAttr::McastIfn(get_cstring(v, "IPVS_DAEMON_ATTR_MCAST_IFN")?)
            }
            IPVS_DAEMON_ATTR_SYNC_ID => DaemonAttr::SyncId(get_u32(v, "IPVS_DAEMON_ATTR_SYNC_ID")?),
            IPVS_DAEMON_ATTR_SYNC_MAXLEN => {
                DaemonAttr::SyncMaxlen(get_u16(v, "IPVS_DAEMON_ATTR_SYNC_MAXLEN")?)
            }
            IPVS_DAEMON_ATTR_MCAST_GROUP => DaemonAttr::McastGroup(Ipv4Addr::from(arr::<4>(
                fixed(v, 4, "IPVS_DAEMON_ATTR_MCAST_GROUP")?,
            ))),
            IPVS_DAEMON_ATTR_MCAST_GROUP6 => DaemonAttr::McastGroup6(Ipv6Addr::from(arr::<16>(
                fixed(v, 16, "IPVS_DAEMON_ATTR_MCAST_GROUP6")?,
            ))),
            IPVS_DAEMON_ATTR_MCAST_PORT => {
                DaemonAttr::McastPort(get_u16(v, "IPVS_DAEMON_ATTR_MCAST_PORT")?)
            }
            IPVS_DAEMON_ATTR_MCAST_TTL => {
                DaemonAttr::McastTtl(get_u8(v, "IPVS_DAEMON_ATTR_MCAST_TTL")?)
            }
            _ => DaemonAttr::Other(other(buf)?),
        })
    }
}

// ---------------------------------------------------------------------------------------
// IPVS_CMD_ATTR_* and IPVS_INFO_ATTR_* (top level)

/// A top-level attribute. Numbers 1 and 2 mean SERVICE/DEST in every command except the
/// `SET_INFO` reply, where they are `IPVS_INFO_ATTR_VERSION` / `_CONN_TAB_SIZE`; parsing
/// therefore needs the command (see [`CmdAttr::parse_for`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdAttr {
    Service(Vec<SvcAttr>),
    Dest(Vec<DestAttr>),
    Daemon(Vec<DaemonAttr>),
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    InfoVersion(u32),
    InfoConnTabSize(u32),
    Other(DefaultNla),
}

impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        use CmdAttr::*;
        match self {
            Service(a) => nested_len(a),
            Dest(a) => nested_len(a),
            Daemon(a) => nested_len(a),
            TimeoutTcp(_) | TimeoutTcpFin(_) | TimeoutUdp(_) | InfoVersion(_)
            | InfoConnTabSize(_) => 4,
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use CmdAttr::*;
        match self {
            Service(_) => IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED,
            Dest(_) => IPVS_CMD_ATTR_DEST | NLA_F_NESTED,
            Daemon(_) => IPVS_CMD_ATTR_DAEMON | NLA_F_NESTED,
            TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use CmdAttr::*;
        match self {
            Service(a) => a.as_slice().emit(buf),
            Dest(a) => a.as_slice().emit(buf),
            Daemon(a) => a.as_slice().emit(buf),
            TimeoutTcp(v) | TimeoutTcpFin(v) | TimeoutUdp(v) | InfoVersion(v)
            | InfoConnTabSize(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            Other(nla) => nla.emit_value(buf),
        }
    }
}

impl CmdAttr {
    /// Parses one top-level attribute of a message whose genl command is `cmd`.
    pub fn parse_for(buf: &NlaBuffer<&[u8]>, cmd: u8) -> Result<CmdAttr, DecodeError> {
        let v = buf.value();
        if cmd == IPVS_CMD_SET_INFO {
            return Ok(match buf.kind() {
                IPVS_INFO_ATTR_VERSION => {
                    CmdAttr::InfoVersion(get_u32(v, "IPVS_INFO_ATTR_VERSION")?)
                }
                IPVS_INFO_ATTR_CONN_TAB_SIZE => {
                    CmdAttr::InfoConnTabSize(get_u32(v, "IPVS_INFO_ATTR_CONN_TAB_SIZE")?)
                }
                _ => CmdAttr::Other(other(buf)?),
            });
        }
        Ok(match buf.kind() {
            IPVS_CMD_ATTR_SERVICE => CmdAttr::Service(
                parse_all(v, |nla| SvcAttr::parse(nla)).context("IPVS_CMD_ATTR_SERVICE")?,
            ),
            IPVS_CMD_ATTR_DEST => CmdAttr::Dest(
                parse_all(v, |nla| DestAttr::parse(nla)).context("IPVS_CMD_ATTR_DEST")?,
            ),
            IPVS_CMD_ATTR_DAEMON => CmdAttr::Daemon(
                parse_all(v, |nla| DaemonAttr::parse(nla)).context("IPVS_CMD_ATTR_DAEMON")?,
            ),
            IPVS_CMD_ATTR_TIMEOUT_TCP => {
                CmdAttr::TimeoutTcp(get_u32(v, "IPVS_CMD_ATTR_TIMEOUT_TCP")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                CmdAttr::TimeoutTcpFin(get_u32(v, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_UDP => {
                CmdAttr::TimeoutUdp(get_u32(v, "IPVS_CMD_ATTR_TIMEOUT_UDP")?)
            }
            _ => CmdAttr::Other(other(buf)?),
        })
    }
}
