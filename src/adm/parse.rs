//! ipvsadm's argument parsing (`parse_options` and the checks of `process_options` in
//! ipvsadm.c 1.31), reproduced decision for decision: the first option must be the command,
//! options are applied in order (so `-r` before `-t` sees no service yet), every value goes
//! through the same C conversions, and each failure carries ipvsadm's text and exit code.
//!
//! The result is a [`Command`] in the typed IPVS model. Parsing never touches the kernel; it
//! may consult the name service (a host or service name given as an address or port).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::cnum::{atoi, fwmark_number, inet_aton, str_is_digit, string_to_number};
use super::command::{Command, Format, List, ListTarget};
use super::legality::{check_command, check_tunnel, Cmd, OptSet, Optc};
use super::names::{Resolver, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use super::popt::{ArgKind, Item, OptSpec, Scanner};
use crate::ipvs::{
    DaemonState, Dest, Family, ForwardMethod, Op, Protocol, Service, ServiceFlags, ServiceKey,
    SyncDaemon, Timeouts, Tunnel, TunnelFlags,
};
use crate::types::Fwmark;

/// `MAX_TIMEOUT`: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;
/// `IPVS_SVC_PERSISTENT_TIMEOUT`.
const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const FWD_MASQ: u32 = 0;
const FWD_TUNNEL: u32 = 2;
const FWD_DROUTE: u32 = 3;

/// Why a command line was refused, and how ipvsadm reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `fail(2, ...)`: the message (a newline is added) and exit status 2. Ends a restore.
    Fail(String),
    /// A popt error in the middle of the options: `"WORD: reason"`, status 255 (-1). In a
    /// restore this only fails the line.
    Popt(String),
    /// `tryhelp_exit(argv[0], -1)`: no command first, or a popt error on it. Status 255.
    TryHelp,
}

impl ParseError {
    fn fail(msg: impl Into<String>) -> ParseError {
        ParseError::Fail(msg.into())
    }
}

/// Tags of the option table: ipvsadm's option values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    Json,
}

const fn o(long: &'static str, short: u8, arg: ArgKind, tag: Tag) -> OptSpec<Tag> {
    OptSpec {
        long,
        short,
        arg,
        tag,
    }
}

use ArgKind::{None as N, Optional as Opt, Required as R};

/// ipvsadm's popt table, in its order (the order decides which `--list` entry matches).
const OPTIONS: &[OptSpec<Tag>] = &[
    o("add-service", b'A', N, Tag::AddService),
    o("edit-service", b'E', N, Tag::EditService),
    o("delete-service", b'D', N, Tag::DeleteService),
    o("clear", b'C', N, Tag::Clear),
    o("list", b'L', N, Tag::List),
    o("list", b'l', N, Tag::List),
    o("zero", b'Z', N, Tag::Zero),
    o("add-server", b'a', N, Tag::AddServer),
    o("edit-server", b'e', N, Tag::EditServer),
    o("delete-server", b'd', N, Tag::DeleteServer),
    o("set", 0, N, Tag::Set),
    o("help", b'h', N, Tag::Help),
    o("version", b'v', N, Tag::Version),
    o("restore", b'R', N, Tag::Restore),
    o("save", b'S', N, Tag::Save),
    o("start-daemon", 0, R, Tag::StartDaemon),
    o("stop-daemon", 0, R, Tag::StopDaemon),
    o("tcp-service", b't', R, Tag::Tcp),
    o("udp-service", b'u', R, Tag::Udp),
    o("sctp-service", 0, R, Tag::Sctp),
    o("fwmark-service", b'f', R, Tag::Fwmark),
    o("scheduler", b's', R, Tag::Scheduler),
    o("persistent", b'p', Opt, Tag::Persistent),
    o("netmask", b'M', R, Tag::Netmask),
    o("real-server", b'r', R, Tag::RealServer),
    o("masquerading", b'm', N, Tag::Masquerading),
    o("ipip", b'i', N, Tag::Ipip),
    o("gatewaying", b'g', N, Tag::Gatewaying),
    o("weight", b'w', R, Tag::Weight),
    o("u-threshold", b'x', R, Tag::UThreshold),
    o("l-threshold", b'y', R, Tag::LThreshold),
    o("numeric", b'n', N, Tag::Numeric),
    o("connection", b'c', N, Tag::Connection),
    o("mcast-interface", 0, R, Tag::McastInterface),
    o("syncid", 0, R, Tag::SyncId),
    o("timeout", 0, N, Tag::Timeout),
    o("daemon", 0, N, Tag::Daemon),
    o("stats", 0, N, Tag::Stats),
    o("rate", 0, N, Tag::Rate),
    o("thresholds", 0, N, Tag::Thresholds),
    o("persistent-conn", 0, N, Tag::PersistentConn),
    o("nosort", 0, N, Tag::NoSort),
    o("sort", 0, N, Tag::Sort),
    o("exact", b'X', N, Tag::Exact),
    o("ipv6", b'6', N, Tag::Ipv6),
    o("ops", b'o', N, Tag::Ops),
    o("pe", 0, R, Tag::Pe),
    o("sched-flags", b'b', R, Tag::SchedFlags),
    o("mcast-group", 0, R, Tag::McastGroup),
    o("mcast-port", 0, R, Tag::McastPort),
    o("mcast-ttl", 0, R, Tag::McastTtl),
    o("sync-maxlen", 0, R, Tag::SyncMaxlen),
    o("tun-info", 0, N, Tag::TunInfo),
    o("tun-type", 0, R, Tag::TunType),
    o("tun-port", 0, R, Tag::TunPort),
    o("tun-nocsum", 0, N, Tag::TunNocsum),
    o("tun-csum", 0, N, Tag::TunCsum),
    o("tun-remcsum", 0, N, Tag::TunRemcsum),
    // bigbro's addition.
    o("json", 0, N, Tag::Json),
];

/// ipvsadm's `ipvs_service_t` while options are applied.
#[derive(Clone, Debug)]
struct Svc {
    fwmark: u32,
    af: u16,
    protocol: u16,
    addr: IpAddr,
    port: u16,
    sched_name: Vec<u8>,
    flags: u32,
    timeout: u32,
    /// Model convention: IPv4 host-order mask, IPv6 prefix length.
    netmask: u32,
    pe_name: Vec<u8>,
}

/// ipvsadm's `ipvs_dest_t` while options are applied.
#[derive(Clone, Debug)]
struct Dst {
    af: u16,
    addr: IpAddr,
    port: u16,
    conn_flags: u32,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: u8,
    tun_port: u16,
    tun_flags: u16,
}

/// ipvsadm's `ipvs_daemon_t` while options are applied.
#[derive(Clone, Debug, Default)]
struct Dmn {
    state: Option<DaemonState>,
    mcast_ifn: Vec<u8>,
    syncid: u32,
    sync_maxlen: u16,
    mcast_group: Option<IpAddr>,
    mcast_port: u16,
    mcast_ttl: u8,
}

const SERVICE_ADDR: u8 = 1;
const SERVICE_PORT: u8 = 2;

/// Where `parse_service` writes: the service itself or a copy used for `-r`.
struct Endpoint {
    af: u16,
    addr: IpAddr,
    port: u16,
    netmask: u32,
}

/// `strncpy(dst, src, n)` into a zeroed buffer of which `n` bytes may be used, read back as
/// a C string.
fn c_copy(src: &[u8], n: usize) -> Vec<u8> {
    let end = src.iter().position(|&b| b == 0).unwrap_or(src.len());
    src[..end.min(n)].to_vec()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// ipvsadm's `parse_service`: `host[:port]`, `[v6]:port`, names allowed.
fn parse_service(buf: &[u8], proto: u16, ep: &mut Endpoint, names: &dyn Resolver) -> u8 {
    if str_is_digit(buf) {
        return 0;
    }
    let mut buf = buf;
    let mut bracket_port: Option<&[u8]> = None;
    if buf[0] == b'[' {
        let inner = &buf[1..];
        let Some(close) = inner.iter().position(|&b| b == b']') else {
            return 0;
        };
        if inner.get(close + 1) != Some(&b':') {
            return 0;
        }
        bracket_port = Some(&inner[close + 2..]);
        buf = &inner[..close];
    }
    let mut port_text = bracket_port;
    if let Some(v6) = std::str::from_utf8(buf)
        .ok()
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
    {
        ep.addr = IpAddr::V6(v6);
        ep.af = AF_INET6;
        ep.netmask = 128;
    } else {
        port_text = None;
        let mut host = buf;
        if let Some(colon) = buf.iter().rposition(|&b| b == b':') {
            host = &buf[..colon];
            port_text = Some(&buf[colon + 1..]);
        }
        let v4 = match inet_aton(host) {
            Some(a) => Ipv4Addr::from(a),
            None => match names.host_to_v4(host) {
                Some(a) => a,
                None => return 0,
            },
        };
        ep.addr = IpAddr::V4(v4);
        ep.af = AF_INET;
    }
    let mut result = SERVICE_ADDR;
    if let Some(p) = port_text {
        result |= SERVICE_PORT;
        if let Some(n) = string_to_number(p, 0, 65535) {
            ep.port = n as u16;
        } else if let Some(n) = names.service_to_port(p, proto) {
            ep.port = n;
        } else {
            return 0;
        }
    }
    result
}

/// ipvsadm's `parse_sched_flags`.
fn parse_sched_flags(sched: &[u8], arg: &[u8]) -> Result<u32, ParseError> {
    let sched: &[u8] = if sched.is_empty() { b"wlc" } else { sched };
    let mut flags = 0;
    let mut any = false;
    for flag in arg.split(|&b| b == b',').filter(|f| !f.is_empty()) {
        any = true;
        let need = |name: &[u8]| -> Result<(), ParseError> {
            if sched != name {
                return Err(ParseError::fail(format!(
                    "incompatible scheduler flag `{}'",
                    lossy(flag)
                )));
            }
            Ok(())
        };
        match flag {
            b"flag-1" => flags |= ServiceFlags::SCHED1,
            b"flag-2" => flags |= ServiceFlags::SCHED2,
            b"flag-3" => flags |= ServiceFlags::SCHED3,
            b"sh-fallback" => {
                flags |= ServiceFlags::SH_FALLBACK;
                need(b"sh")?;
            }
            b"sh-port" => {
                flags |= ServiceFlags::SH_PORT;
                need(b"sh")?;
            }
            b"mh-fallback" => {
                flags |= ServiceFlags::SH_FALLBACK;
                need(b"mh")?;
            }
            b"mh-port" => {
                flags |= ServiceFlags::SH_PORT;
                need(b"mh")?;
            }
            _ => {
                return Err(ParseError::fail(format!(
                    "invalid scheduler flag `{}'",
                    lossy(flag)
                )))
            }
        }
    }
    if !any {
        // ipvsadm dereferences a NULL token here and crashes; refuse cleanly instead.
        return Err(ParseError::fail("invalid scheduler flag `'"));
    }
    Ok(flags)
}

fn parse_timeout(buf: Option<&[u8]>, min: i64, max: i64) -> Result<u32, ParseError> {
    let Some(buf) = buf else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    string_to_number(buf, min, max)
        .map(|v| v as u32)
        .ok_or_else(|| {
            ParseError::fail(format!("invalid timeout value `{}' specified", lossy(buf)))
        })
}

fn number(arg: &[u8], min: i64, max: i64, what: &str) -> Result<i64, ParseError> {
    string_to_number(arg, min, max)
        .ok_or_else(|| ParseError::fail(format!("illegal {what} specified")))
}

/// The whole parse state: ipvsadm's `struct ipvs_command_entry` plus its option and format
/// bit sets.
struct State {
    cmd: Option<Cmd>,
    help_or_version: Option<Command>,
    svc: Svc,
    dest: Dst,
    daemon: Dmn,
    timeouts: Timeouts,
    options: OptSet,
    format: Format,
    sched_flags_arg: Vec<u8>,
}

impl State {
    fn new() -> State {
        State {
            cmd: None,
            help_or_version: None,
            svc: Svc {
                fwmark: 0,
                af: 0,
                protocol: 0,
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
                sched_name: Vec::new(),
                flags: 0,
                timeout: 0,
                netmask: 0xffff_ffff,
                pe_name: Vec::new(),
            },
            dest: Dst {
                af: 0,
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
                conn_flags: FWD_DROUTE,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                tun_type: 0,
                tun_port: 0,
                tun_flags: 0,
            },
            daemon: Dmn::default(),
            timeouts: Timeouts::default(),
            options: OptSet::default(),
            format: Format::default(),
            sched_flags_arg: Vec::new(),
        }
    }

    fn set(&mut self, o: Optc) -> Result<(), ParseError> {
        self.options.insert(o).map_err(ParseError::Fail)
    }

    /// The first option: the command.
    fn command(&mut self, tag: Tag, arg: Option<&[u8]>) -> Result<(), ParseError> {
        let daemon_state = |arg: Option<&[u8]>, msg: &str| match arg {
            Some(b"master") => Ok(DaemonState::Master),
            Some(b"backup") => Ok(DaemonState::Backup),
            _ => Err(ParseError::fail(msg)),
        };
        self.cmd = Some(match tag {
            Tag::AddService => Cmd::Add,
            Tag::EditService => Cmd::Edit,
            Tag::DeleteService => Cmd::Del,
            Tag::AddServer => Cmd::AddDest,
            Tag::EditServer => Cmd::EditDest,
            Tag::DeleteServer => Cmd::DelDest,
            Tag::Clear => Cmd::Flush,
            Tag::List => Cmd::List,
            Tag::Zero => Cmd::Zero,
            Tag::Set => Cmd::Timeout,
            Tag::Restore => Cmd::Restore,
            Tag::Save => Cmd::Save,
            Tag::StartDaemon => {
                self.daemon.state = Some(daemon_state(
                    arg,
                    "illegal start-daemon parameter specified",
                )?);
                Cmd::StartDaemon
            }
            Tag::StopDaemon => {
                self.daemon.state = Some(daemon_state(arg, "illegal start_daemon specified")?);
                Cmd::StopDaemon
            }
            Tag::Help => {
                self.help_or_version = Some(Command::Help);
                return Ok(());
            }
            Tag::Version => {
                self.help_or_version = Some(Command::Version);
                return Ok(());
            }
            _ => return Err(ParseError::TryHelp),
        });
        Ok(())
    }

    /// One option after the command, in command-line order.
    fn option(
        &mut self,
        tag: Tag,
        arg: Option<&[u8]>,
        bad_option: &[u8],
        names: &dyn Resolver,
    ) -> Result<(), ParseError> {
        let a = arg.unwrap_or(b"");
        match tag {
            Tag::Tcp | Tag::Udp | Tag::Sctp => {
                self.set(Optc::Service)?;
                self.svc.protocol = match tag {
                    Tag::Tcp => IPPROTO_TCP,
                    Tag::Udp => IPPROTO_UDP,
                    _ => IPPROTO_SCTP,
                };
                let mut ep = Endpoint {
                    af: self.svc.af,
                    addr: self.svc.addr,
                    port: self.svc.port,
                    netmask: self.svc.netmask,
                };
                let parsed = parse_service(a, self.svc.protocol, &mut ep, names);
                (self.svc.af, self.svc.addr, self.svc.port, self.svc.netmask) =
                    (ep.af, ep.addr, ep.port, ep.netmask);
                if parsed & SERVICE_ADDR == 0 {
                    return Err(ParseError::fail(
                        "illegal virtual server address[:port] specified",
                    ));
                }
            }
            Tag::Fwmark => {
                self.set(Optc::Service)?;
                self.svc.af = AF_INET;
                self.svc.protocol = IPPROTO_TCP;
                self.svc.fwmark = fwmark_number(a).ok_or_else(|| {
                    ParseError::fail(format!("invalid fwmark value `{}' specified", lossy(a)))
                })?;
            }
            Tag::Scheduler => {
                self.set(Optc::Scheduler)?;
                self.svc.sched_name = c_copy(a, 15);
            }
            Tag::Persistent => {
                self.set(Optc::Persistent)?;
                self.svc.flags |= ServiceFlags::PERSISTENT;
                self.svc.timeout = parse_timeout(arg, 1, MAX_TIMEOUT)?;
            }
            Tag::Netmask => {
                self.set(Optc::Netmask)?;
                if self.svc.af != AF_INET6 {
                    self.svc.netmask = inet_aton(a)
                        .or_else(|| names.host_to_v4(a).map(u32::from))
                        .ok_or_else(|| {
                            ParseError::fail("illegal virtual server persistent mask specified")
                        })?;
                } else {
                    self.svc.netmask = atoi(a) as u32;
                    if !(1..=128).contains(&self.svc.netmask) {
                        return Err(ParseError::fail("illegal ipv6 netmask specified"));
                    }
                }
            }
            Tag::RealServer => {
                self.set(Optc::Server)?;
                let mut ep = Endpoint {
                    af: self.svc.af,
                    addr: self.svc.addr,
                    port: self.svc.port,
                    netmask: self.svc.netmask,
                };
                let parsed = parse_service(a, self.svc.protocol, &mut ep, names);
                (self.dest.af, self.dest.addr, self.dest.port) = (ep.af, ep.addr, ep.port);
                if parsed & SERVICE_ADDR == 0 {
                    return Err(ParseError::fail(
                        "illegal real server address[:port] specified",
                    ));
                }
                if parsed == SERVICE_ADDR {
                    self.dest.port = self.svc.port;
                }
            }
            Tag::Ipip | Tag::Gatewaying | Tag::Masquerading => {
                self.set(Optc::Forward)?;
                self.dest.conn_flags = match tag {
                    Tag::Ipip => FWD_TUNNEL,
                    Tag::Gatewaying => FWD_DROUTE,
                    _ => FWD_MASQ,
                };
            }
            Tag::Weight => {
                self.set(Optc::Weight)?;
                // Debian's ipvsadm 1.31 takes weights up to INT_MAX (its patch for #814348).
                self.dest.weight = number(a, 0, i64::from(i32::MAX), "weight")? as u32;
            }
            Tag::UThreshold => {
                self.set(Optc::UThreshold)?;
                self.dest.u_threshold = number(a, 0, i64::from(i32::MAX), "u_threshold")? as u32;
            }
            Tag::LThreshold => {
                self.set(Optc::LThreshold)?;
                self.dest.l_threshold = number(a, 0, i64::from(i32::MAX), "l_threshold")? as u32;
            }
            Tag::Connection => self.set(Optc::Connection)?,
            Tag::Numeric => {
                self.set(Optc::Numeric)?;
                self.format.numeric = true;
            }
            Tag::McastInterface => {
                self.set(Optc::Mcast)?;
                self.daemon.mcast_ifn = c_copy(a, 15);
            }
            Tag::SyncId => {
                self.set(Optc::SyncId)?;
                self.daemon.syncid = number(a, 0, 255, "syncid")? as u32;
            }
            Tag::Timeout => self.set(Optc::Timeout)?,
            Tag::Daemon => self.set(Optc::Daemon)?,
            Tag::Stats => {
                self.set(Optc::Stats)?;
                self.format.stats = true;
            }
            Tag::Rate => {
                self.set(Optc::Rate)?;
                self.format.rate = true;
            }
            Tag::Thresholds => {
                self.set(Optc::Thresholds)?;
                self.format.thresholds = true;
            }
            Tag::PersistentConn => {
                self.set(Optc::PersistentConn)?;
                self.format.persistent_conn = true;
            }
            Tag::NoSort => {
                self.set(Optc::NoSort)?;
                self.format.nosort = true;
            }
            Tag::Sort => {}
            Tag::Exact => {
                self.set(Optc::Exact)?;
                self.format.exact = true;
            }
            Tag::Ipv6 => {
                if self.svc.fwmark == 0 {
                    return Err(ParseError::fail("-6 used before -f\n"));
                }
                self.svc.af = AF_INET6;
                self.svc.netmask = 128;
            }
            Tag::Ops => {
                self.set(Optc::OnePacket)?;
                self.svc.flags |= ServiceFlags::ONEPACKET;
            }
            Tag::Pe => {
                self.set(Optc::PersistenceEngine)?;
                self.svc.pe_name = c_copy(a, 16);
            }
            Tag::SchedFlags => {
                self.set(Optc::SchedFlags)?;
                self.sched_flags_arg = c_copy(a, 127);
            }
            Tag::McastGroup => {
                self.set(Optc::McastGroup)?;
                let text = std::str::from_utf8(a).ok();
                if a.contains(&b':') {
                    match text.and_then(|t| t.parse::<Ipv6Addr>().ok()) {
                        Some(g) if g.is_multicast() => self.daemon.mcast_group = Some(g.into()),
                        _ => {
                            return Err(ParseError::fail(format!(
                                "invalid IPv6 mcast-group `{}'",
                                lossy(a)
                            )))
                        }
                    }
                } else {
                    match text.and_then(|t| t.parse::<Ipv4Addr>().ok()) {
                        Some(g) if g.is_multicast() => self.daemon.mcast_group = Some(g.into()),
                        _ => {
                            return Err(ParseError::fail(format!(
                                "invalid IPv4 mcast-group `{}'",
                                lossy(a)
                            )))
                        }
                    }
                }
            }
            Tag::McastPort => {
                self.set(Optc::McastPort)?;
                self.daemon.mcast_port = number(a, 1, 65535, "mcast-port")? as u16;
            }
            Tag::McastTtl => {
                self.set(Optc::McastTtl)?;
                self.daemon.mcast_ttl = number(a, 1, 255, "mcast-ttl")? as u8;
            }
            Tag::SyncMaxlen => {
                self.set(Optc::SyncMaxlen)?;
                self.daemon.sync_maxlen = number(a, 1, 65535 - 20 - 8, "sync-maxlen")? as u16;
            }
            Tag::TunInfo => {
                self.set(Optc::TunInfo)?;
                self.format.tun_info = true;
            }
            Tag::TunType => {
                self.set(Optc::TunType)?;
                self.dest.tun_type = match a {
                    b"ipip" => 0,
                    b"gue" => 1,
                    b"gre" => 2,
                    _ => return Err(ParseError::fail("illegal tunnel type specified")),
                };
            }
            Tag::TunPort => {
                self.set(Optc::TunPort)?;
                self.dest.tun_port = number(a, 1, 65535, "tunnel port")? as u16;
            }
            Tag::TunNocsum => self.set(Optc::TunNocsum)?,
            Tag::TunCsum => {
                self.set(Optc::TunCsum)?;
                self.dest.tun_flags |= TunnelFlags::CSUM.0;
            }
            Tag::TunRemcsum => {
                self.set(Optc::TunRemcsum)?;
                self.dest.tun_flags |= TunnelFlags::REMCSUM.0;
            }
            Tag::Json => self.set(Optc::Json)?,
            // A second command, -h or -v after the command.
            _ => {
                return Err(ParseError::fail(format!(
                    "invalid option `{}'",
                    lossy(bad_option)
                )))
            }
        }
        Ok(())
    }

    fn service_key(&self) -> Option<ServiceKey> {
        if self.svc.af == 0 {
            return None;
        }
        let family = if self.svc.af == AF_INET6 {
            Family::V6
        } else {
            Family::V4
        };
        if self.svc.fwmark != 0 {
            return Some(ServiceKey::Fwmark {
                family,
                mark: Fwmark::new(self.svc.fwmark)?,
            });
        }
        let protocol = Protocol::from_ipproto(self.svc.protocol)?;
        Some(ServiceKey::Addr {
            protocol,
            addr: self.svc.addr,
            port: self.svc.port,
        })
    }

    fn service(&self, key: ServiceKey) -> Service {
        Service {
            key,
            scheduler: lossy(&self.svc.sched_name),
            flags: ServiceFlags::from_bits(self.svc.flags),
            timeout: self.svc.timeout,
            netmask: self.svc.netmask,
            pe_name: (!self.svc.pe_name.is_empty()).then(|| lossy(&self.svc.pe_name)),
        }
    }

    fn dest(&self) -> Dest {
        let d = &self.dest;
        let flags = TunnelFlags(d.tun_flags);
        let forward = match d.conn_flags {
            FWD_MASQ => ForwardMethod::Masquerade,
            FWD_TUNNEL => ForwardMethod::Tunnel(match d.tun_type {
                1 => Tunnel::Gue {
                    port: d.tun_port,
                    flags,
                },
                2 => Tunnel::Gre { flags },
                _ => Tunnel::Ipip,
            }),
            _ => ForwardMethod::DirectRoute,
        };
        Dest {
            addr: d.addr,
            port: d.port,
            forward,
            weight: d.weight,
            upper_threshold: d.u_threshold,
            lower_threshold: d.l_threshold,
        }
    }
}

/// Parses one ipvsadm command line (`args` without argv[0]).
pub fn parse(args: &[Vec<u8>], names: &dyn Resolver) -> Result<Command, ParseError> {
    let mut st = State::new();
    let mut scan = Scanner::new(OPTIONS, args);
    match scan.next_item() {
        Item::Opt(tag, arg) => st.command(tag, arg.as_deref())?,
        Item::End | Item::Error(_) => return Err(ParseError::TryHelp),
    }
    if let Some(cmd) = st.help_or_version.take() {
        return Ok(cmd);
    }
    loop {
        match scan.next_item() {
            Item::Opt(tag, arg) => {
                let bad = scan.bad_option().to_vec();
                st.option(tag, arg.as_deref(), &bad, names)?;
            }
            Item::End => break,
            Item::Error(e) => {
                return Err(ParseError::Popt(format!(
                    "{}: {}",
                    lossy(scan.bad_option()),
                    e.text()
                )))
            }
        }
    }
    let cmd = st.cmd.expect("the first option set the command");
    if cmd == Cmd::Timeout {
        match (
            scan.next_leftover(),
            scan.next_leftover(),
            scan.next_leftover(),
        ) {
            (Some(tcp), Some(fin), Some(udp)) => {
                st.timeouts = Timeouts {
                    tcp: parse_timeout(Some(&tcp), 0, MAX_TIMEOUT)?,
                    tcp_fin: parse_timeout(Some(&fin), 0, MAX_TIMEOUT)?,
                    udp: parse_timeout(Some(&udp), 0, MAX_TIMEOUT)?,
                };
            }
            _ => return Err(ParseError::fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(extra) = scan.next_leftover() {
        return Err(ParseError::fail(format!(
            "unexpected argument {}",
            lossy(&extra)
        )));
    }
    if !st.sched_flags_arg.is_empty() {
        st.svc.flags &= !(ServiceFlags::SCHED1 | ServiceFlags::SCHED2 | ServiceFlags::SCHED3);
        st.svc.flags |= parse_sched_flags(&st.svc.sched_name, &st.sched_flags_arg)?;
    }
    check_command(cmd, st.options).map_err(ParseError::Fail)?;
    finish(cmd, st)
}

/// The checks after option parsing, then the command itself.
fn finish(cmd: Cmd, mut st: State) -> Result<Command, ParseError> {
    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if st.svc.fwmark == 0 && st.svc.port == 0 && st.svc.flags & ServiceFlags::PERSISTENT == 0 {
            return Err(ParseError::fail(
                "Zero port specified for non-persistent service",
            ));
        }
        if st.svc.flags & ServiceFlags::ONEPACKET != 0
            && st.svc.fwmark == 0
            && st.svc.protocol != IPPROTO_UDP
        {
            return Err(ParseError::fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if st.svc.sched_name.is_empty() {
            st.svc.sched_name = b"wlc".to_vec();
        }
    }
    if cmd == Cmd::StartDaemon && st.daemon.mcast_ifn.is_empty() {
        st.daemon.mcast_ifn = b"eth0".to_vec();
    }
    let fwd = st.dest.conn_flags;
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if st.svc.fwmark == 0 && (fwd == FWD_TUNNEL || fwd == FWD_DROUTE) {
            st.dest.port = st.svc.port;
        }
        if st.dest.af != st.svc.af && fwd != FWD_TUNNEL {
            return Err(ParseError::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tunnel_opts = [
            Optc::TunType,
            Optc::TunPort,
            Optc::TunNocsum,
            Optc::TunCsum,
            Optc::TunRemcsum,
        ];
        if tunnel_opts.iter().any(|o| st.options.has(*o)) && fwd != FWD_TUNNEL {
            return Err(ParseError::fail(
                "Tunnel options conflict with forward method",
            ));
        }
        check_tunnel(st.dest.tun_type, st.options).map_err(ParseError::Fail)?;
    }
    let opts = st.options;
    let key = st.service_key();
    let need_key =
        || key.ok_or_else(|| ParseError::fail("illegal virtual server address[:port] specified"));
    Ok(match cmd {
        Cmd::List => {
            let any = |list: &[Optc]| list.iter().any(|o| opts.has(*o));
            if (any(&[Optc::Connection, Optc::Timeout, Optc::Daemon])
                && any(&[Optc::Stats, Optc::Rate, Optc::Thresholds]))
                || (any(&[Optc::Timeout, Optc::Daemon]) && opts.has(Optc::PersistentConn))
            {
                return Err(ParseError::fail("options conflicts in the list command"));
            }
            let target = if opts.has(Optc::Connection) {
                ListTarget::Connections
            } else if opts.has(Optc::Service) {
                ListTarget::Service(need_key()?)
            } else if opts.has(Optc::Timeout) {
                ListTarget::Timeout
            } else if opts.has(Optc::Daemon) {
                ListTarget::Daemon
            } else {
                ListTarget::All
            };
            Command::List(List {
                target,
                format: st.format,
                json: opts.has(Optc::Json),
            })
        }
        Cmd::Restore => Command::Restore,
        Cmd::Save => Command::Save(Format {
            rule: true,
            ..st.format
        }),
        Cmd::Flush => Command::Change(Op::Flush),
        Cmd::Add => Command::Change(Op::AddService(st.service(need_key()?))),
        Cmd::Edit => Command::Change(Op::EditService(st.service(need_key()?))),
        Cmd::Del => Command::Change(Op::DelService(need_key()?)),
        Cmd::Zero => {
            // libipvs sends no service (zero everything) when it is all zeroes.
            let all = st.svc.fwmark == 0 && st.svc.addr.is_unspecified() && st.svc.port == 0;
            Command::Change(Op::Zero(if all { None } else { key }))
        }
        Cmd::AddDest => Command::Change(Op::AddDest {
            service: need_key()?,
            dest: st.dest(),
        }),
        Cmd::EditDest => Command::Change(Op::EditDest {
            service: need_key()?,
            dest: st.dest(),
        }),
        Cmd::DelDest => Command::Change(Op::DelDest {
            service: need_key()?,
            addr: st.dest.addr,
            port: st.dest.port,
        }),
        Cmd::Timeout => Command::Change(Op::SetTimeouts(st.timeouts)),
        Cmd::StartDaemon => Command::Change(Op::StartDaemon(SyncDaemon {
            state: st.daemon.state.unwrap_or(DaemonState::Master),
            mcast_ifn: lossy(&st.daemon.mcast_ifn),
            sync_id: st.daemon.syncid,
            sync_maxlen: st.daemon.sync_maxlen,
            mcast_group: st.daemon.mcast_group,
            mcast_port: st.daemon.mcast_port,
            mcast_ttl: st.daemon.mcast_ttl,
        })),
        Cmd::StopDaemon => Command::Change(Op::StopDaemon(
            st.daemon.state.unwrap_or(DaemonState::Master),
        )),
    })
}
