//! What each option after the command does to the parse state, in command-line order, as
//! ipvsadm's `parse_options` switch does it: which option bit it sets (a repeated option is
//! refused there), which value conversion it uses (`values.rs`) and which field it writes.
//! Never looks at the options that come after it: the checks that combine them are in
//! `finish.rs` and `legality.rs`.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::super::cnum::{atoi, fwmark_number, inet_aton};
use super::super::legality::Optc;
use super::super::names::{Resolver, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use super::state::State;
use super::table::Tag;
use super::values::{c_copy, lossy, number, parse_service, parse_timeout, Endpoint, SERVICE_ADDR};
use super::{ParseError, AF_INET, AF_INET6, FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, MAX_TIMEOUT};
use crate::ipvs::{ServiceFlags, TunnelFlags};

impl State {
    /// One option after the command, in command-line order.
    pub(super) fn option(
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
}
