//! `Op`: one change to IPVS state. The reconciler's diff produces them, `Client::apply`
//! sends them (many per `sendmsg`), logs and metrics count them, and `bigbro ipvsadm`
//! builds them from its command line. Each op knows its wire request, a readable
//! description for errors ("adding destination 10.0.0.1:0 to FWM 7") and its ipvsadm
//! command line for plans.
//!
//! An op is plain data: building one never touches the kernel. `check` rejects what the
//! kernel would misparse (names too long for their attribute) before anything is sent.

use std::fmt;
use std::net::IpAddr;

use super::convert;
use super::message::{IpvsCmd, IpvsMessage};
use super::model::*;
use super::nla::{CmdAttr, DaemonAttr};
use super::save;
use super::uapi::{IP_VS_IFNAME_MAXLEN, IP_VS_PENAME_MAXLEN, IP_VS_SCHEDNAME_MAXLEN};

/// One change to the kernel's IPVS state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `ipvsadm -A`: create a service (EEXIST if it exists).
    AddService(Service),
    /// `ipvsadm -E`: replace a service's scheduler, flags, timeout, netmask and PE.
    EditService(Service),
    /// `ipvsadm -D`: delete a service and its destinations.
    DelService(ServiceKey),
    /// `ipvsadm -a`: add a destination to a service.
    AddDest { service: ServiceKey, dest: Dest },
    /// `ipvsadm -e`: change a destination's forwarding method, weight and thresholds.
    EditDest { service: ServiceKey, dest: Dest },
    /// `ipvsadm -d`: remove the destination `addr:port` from a service.
    DelDest {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    /// `ipvsadm -Z [service]`: zero the counters of one service, or of all.
    Zero(Option<ServiceKey>),
    /// `ipvsadm -C`: delete every service in the network namespace.
    Flush,
    /// `ipvsadm --set`: connection timeouts (0 keeps a value).
    SetTimeouts(Timeouts),
    /// `ipvsadm --start-daemon`.
    StartDaemon(SyncDaemon),
    /// `ipvsadm --stop-daemon`.
    StopDaemon(DaemonState),
}

/// A service as people read it in errors and logs: `FWM 7`, `FWM 7 IPv6`,
/// `TCP 10.0.0.1:80`, `UDP [2001:db8::1]:53`.
pub fn service_label(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Fwmark {
            family: Family::V4,
            mark,
        } => format!("FWM {mark}"),
        ServiceKey::Fwmark {
            family: Family::V6,
            mark,
        } => format!("FWM {mark} IPv6"),
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => format!("{} {}", protocol.label(), socket_text(addr, *port)),
    }
}

impl Op {
    /// The service this op is about, if any.
    pub fn service(&self) -> Option<&ServiceKey> {
        match self {
            Op::AddService(s) | Op::EditService(s) => Some(&s.key),
            Op::DelService(k) => Some(k),
            Op::AddDest { service, .. }
            | Op::EditDest { service, .. }
            | Op::DelDest { service, .. } => Some(service),
            Op::Zero(k) => k.as_ref(),
            Op::Flush | Op::SetTimeouts(_) | Op::StartDaemon(_) | Op::StopDaemon(_) => None,
        }
    }

    /// True for the three destination commands (their ENOENT means "no such
    /// destination", a service command's means "no such scheduler").
    pub fn is_dest_op(&self) -> bool {
        matches!(
            self,
            Op::AddDest { .. } | Op::EditDest { .. } | Op::DelDest { .. }
        )
    }

    /// Rejects values that cannot be encoded faithfully: names longer than their kernel
    /// attribute (`IP_VS_SCHEDNAME_MAXLEN` etc.) or containing NUL. `Err` says why.
    pub fn check(&self) -> Result<(), String> {
        fn name(what: &str, s: &str, max: usize) -> Result<(), String> {
            if s.len() >= max {
                Err(format!(
                    "{what} {s:?} is too long (at most {} bytes)",
                    max - 1
                ))
            } else if s.contains('\0') {
                Err(format!("{what} {s:?} contains a NUL byte"))
            } else {
                Ok(())
            }
        }
        match self {
            Op::AddService(s) | Op::EditService(s) => {
                name("scheduler", &s.scheduler, IP_VS_SCHEDNAME_MAXLEN)?;
                if let Some(pe) = &s.pe_name {
                    name("persistence engine", pe, IP_VS_PENAME_MAXLEN)?;
                }
                Ok(())
            }
            Op::StartDaemon(d) => name("multicast interface", &d.mcast_ifn, IP_VS_IFNAME_MAXLEN),
            _ => Ok(()),
        }
    }

    /// The request, attribute for attribute as ipvsadm 1.31 sends it.
    pub fn message(&self) -> IpvsMessage {
        let svc_ident = |k: &ServiceKey| CmdAttr::Service(convert::service_ident_as_ipvsadm(k));
        match self {
            Op::AddService(s) => IpvsMessage::new(
                IpvsCmd::NewService,
                vec![CmdAttr::Service(convert::service_attrs(s))],
            ),
            Op::EditService(s) => IpvsMessage::new(
                IpvsCmd::SetService,
                vec![CmdAttr::Service(convert::service_attrs(s))],
            ),
            Op::DelService(k) => IpvsMessage::new(IpvsCmd::DelService, vec![svc_ident(k)]),
            Op::AddDest { service, dest } => IpvsMessage::new(
                IpvsCmd::NewDest,
                vec![svc_ident(service), CmdAttr::Dest(convert::dest_attrs(dest))],
            ),
            Op::EditDest { service, dest } => IpvsMessage::new(
                IpvsCmd::SetDest,
                vec![svc_ident(service), CmdAttr::Dest(convert::dest_attrs(dest))],
            ),
            Op::DelDest {
                service,
                addr,
                port,
            } => IpvsMessage::new(
                IpvsCmd::DelDest,
                vec![
                    svc_ident(service),
                    CmdAttr::Dest(convert::dest_ident_as_ipvsadm(*addr, *port)),
                ],
            ),
            Op::Zero(Some(k)) => IpvsMessage::new(IpvsCmd::Zero, vec![svc_ident(k)]),
            Op::Zero(None) => IpvsMessage::new(IpvsCmd::Zero, vec![]),
            Op::Flush => IpvsMessage::new(IpvsCmd::Flush, vec![]),
            Op::SetTimeouts(t) => IpvsMessage::new(IpvsCmd::SetConfig, convert::timeout_attrs(t)),
            Op::StartDaemon(d) => IpvsMessage::new(
                IpvsCmd::NewDaemon,
                vec![CmdAttr::Daemon(convert::daemon_attrs(d))],
            ),
            // ipvsadm sends an empty interface and sync id 0 along; the kernel reads STATE.
            Op::StopDaemon(state) => IpvsMessage::new(
                IpvsCmd::DelDaemon,
                vec![CmdAttr::Daemon(vec![
                    DaemonAttr::State(state.code()),
                    DaemonAttr::McastIfn(String::new()),
                    DaemonAttr::SyncId(0),
                ])],
            ),
        }
    }

    /// The equivalent ipvsadm arguments (numeric), e.g. `-a -f 7 -r 10.0.0.1:0 -i -w 100
    /// --tun-type ipip`, for plans and logs.
    pub fn ipvsadm_args(&self) -> String {
        let swap = |line: String, flag: &str| format!("{flag}{}", &line[2..]);
        match self {
            Op::AddService(s) => save::service_line(s),
            Op::EditService(s) => swap(save::service_line(s), "-E"),
            Op::DelService(k) => format!("-D {k}"),
            Op::AddDest { service, dest } => save::dest_line(service, dest),
            Op::EditDest { service, dest } => swap(save::dest_line(service, dest), "-e"),
            Op::DelDest {
                service,
                addr,
                port,
            } => format!("-d {service} -r {}", socket_text(addr, *port)),
            Op::Zero(Some(k)) => format!("-Z {k}"),
            Op::Zero(None) => "-Z".to_string(),
            Op::Flush => "-C".to_string(),
            Op::SetTimeouts(t) => format!("--set {} {} {}", t.tcp, t.tcp_fin, t.udp),
            Op::StartDaemon(d) => {
                format!(
                    "--start-daemon {} --mcast-interface {} --syncid {}",
                    d.state.label(),
                    d.mcast_ifn,
                    d.sync_id
                )
            }
            Op::StopDaemon(s) => format!("--stop-daemon {}", s.label()),
        }
    }
}

impl fmt::Display for Op {
    /// What the op is doing, as a gerund phrase for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddService(s) => write!(f, "adding service {}", service_label(&s.key)),
            Op::EditService(s) => write!(f, "editing service {}", service_label(&s.key)),
            Op::DelService(k) => write!(f, "deleting service {}", service_label(k)),
            Op::AddDest { service, dest } => write!(
                f,
                "adding destination {} to {}",
                socket_text(&dest.addr, dest.port),
                service_label(service)
            ),
            Op::EditDest { service, dest } => write!(
                f,
                "editing destination {} of {}",
                socket_text(&dest.addr, dest.port),
                service_label(service)
            ),
            Op::DelDest {
                service,
                addr,
                port,
            } => write!(
                f,
                "deleting destination {} from {}",
                socket_text(addr, *port),
                service_label(service)
            ),
            Op::Zero(Some(k)) => write!(f, "zeroing the counters of {}", service_label(k)),
            Op::Zero(None) => f.write_str("zeroing all counters"),
            Op::Flush => f.write_str("flushing all services"),
            Op::SetTimeouts(t) => write!(
                f,
                "setting timeouts (tcp {}, tcpfin {}, udp {})",
                t.tcp, t.tcp_fin, t.udp
            ),
            Op::StartDaemon(d) => write!(f, "starting the {} sync daemon", d.state.label()),
            Op::StopDaemon(s) => write!(f, "stopping the {} sync daemon", s.label()),
        }
    }
}
