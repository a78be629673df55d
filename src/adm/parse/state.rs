//! The parse state (ipvsadm's `struct ipvs_command_entry` with its option and format bit
//! sets), how the first option sets the command, and how the state becomes the typed
//! service and destination of the IPVS model once every option is applied. What each later
//! option changes is in `options.rs`; the checks after the last one are in `finish.rs`.

use std::net::{IpAddr, Ipv4Addr};

use super::super::command::{AdmCommand, Format};
use super::super::legality::{Cmd, OptSet, Optc};
use super::table::Tag;
use super::values::lossy;
use super::{ParseError, AF_INET6, FWD_DROUTE, FWD_MASQ, FWD_TUNNEL};
use crate::ipvs::{
    DaemonState, Dest, Family, ForwardMethod, Protocol, Service, ServiceFlags, ServiceKey,
    Timeouts, Tunnel, TunnelFlags,
};
use crate::types::Fwmark;

/// ipvsadm's `ipvs_service_t` while options are applied.
#[derive(Clone, Debug)]
pub(super) struct Svc {
    pub(super) fwmark: u32,
    pub(super) af: u16,
    pub(super) protocol: u16,
    pub(super) addr: IpAddr,
    pub(super) port: u16,
    pub(super) sched_name: Vec<u8>,
    pub(super) flags: u32,
    pub(super) timeout: u32,
    /// Model convention: IPv4 host-order mask, IPv6 prefix length.
    pub(super) netmask: u32,
    pub(super) pe_name: Vec<u8>,
}

/// ipvsadm's `ipvs_dest_t` while options are applied.
#[derive(Clone, Debug)]
pub(super) struct Dst {
    pub(super) af: u16,
    pub(super) addr: IpAddr,
    pub(super) port: u16,
    pub(super) conn_flags: u32,
    pub(super) weight: u32,
    pub(super) u_threshold: u32,
    pub(super) l_threshold: u32,
    pub(super) tun_type: u8,
    pub(super) tun_port: u16,
    pub(super) tun_flags: u16,
}

/// ipvsadm's `ipvs_daemon_t` while options are applied.
#[derive(Clone, Debug, Default)]
pub(super) struct Dmn {
    pub(super) state: Option<DaemonState>,
    pub(super) mcast_ifn: Vec<u8>,
    pub(super) syncid: u32,
    pub(super) sync_maxlen: u16,
    pub(super) mcast_group: Option<IpAddr>,
    pub(super) mcast_port: u16,
    pub(super) mcast_ttl: u8,
}

/// The whole parse state: ipvsadm's `struct ipvs_command_entry` plus its option and format
/// bit sets.
pub(super) struct State {
    pub(super) cmd: Option<Cmd>,
    pub(super) help_or_version: Option<AdmCommand>,
    pub(super) svc: Svc,
    pub(super) dest: Dst,
    pub(super) daemon: Dmn,
    pub(super) timeouts: Timeouts,
    pub(super) options: OptSet,
    pub(super) format: Format,
    pub(super) sched_flags_arg: Vec<u8>,
}

impl State {
    pub(super) fn new() -> State {
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

    pub(super) fn set(&mut self, o: Optc) -> Result<(), ParseError> {
        self.options.insert(o).map_err(ParseError::Fail)
    }

    /// The first option: the command.
    pub(super) fn command(&mut self, tag: Tag, arg: Option<&[u8]>) -> Result<(), ParseError> {
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
                self.help_or_version = Some(AdmCommand::Help);
                return Ok(());
            }
            Tag::Version => {
                self.help_or_version = Some(AdmCommand::Version);
                return Ok(());
            }
            _ => return Err(ParseError::TryHelp),
        });
        Ok(())
    }

    pub(super) fn service_key(&self) -> Option<ServiceKey> {
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

    pub(super) fn service(&self, key: ServiceKey) -> Service {
        Service {
            key,
            scheduler: lossy(&self.svc.sched_name),
            flags: ServiceFlags::from_bits(self.svc.flags),
            timeout: self.svc.timeout,
            netmask: self.svc.netmask,
            pe_name: (!self.svc.pe_name.is_empty()).then(|| lossy(&self.svc.pe_name)),
        }
    }

    pub(super) fn dest(&self) -> Dest {
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
