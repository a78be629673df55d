//! The checks ipvsadm's `process_options` makes once every option is read (zero ports,
//! one-packet scheduling, address families, tunnel options, list conflicts), then the
//! command itself in the typed IPVS model. Never consults the name service or the kernel.

use super::super::command::{AdmCommand, Format, List, ListTarget};
use super::super::legality::{check_tunnel, Cmd, Optc};
use super::super::names::IPPROTO_UDP;
use super::state::State;
use super::values::lossy;
use super::{ParseError, FWD_DROUTE, FWD_TUNNEL};
use crate::ipvs::{DaemonState, Op, ServiceFlags, SyncDaemon};

/// The checks after option parsing, then the command itself.
pub(super) fn finish(cmd: Cmd, mut st: State) -> Result<AdmCommand, ParseError> {
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
            AdmCommand::List(List {
                target,
                format: st.format,
                json: opts.has(Optc::Json),
            })
        }
        Cmd::Restore => AdmCommand::Restore,
        Cmd::Save => AdmCommand::Save(Format {
            rule: true,
            ..st.format
        }),
        Cmd::Flush => AdmCommand::Change(Op::Flush),
        Cmd::Add => AdmCommand::Change(Op::AddService(st.service(need_key()?))),
        Cmd::Edit => AdmCommand::Change(Op::EditService(st.service(need_key()?))),
        Cmd::Del => AdmCommand::Change(Op::DelService(need_key()?)),
        Cmd::Zero => {
            // libipvs sends no service (zero everything) when it is all zeroes.
            let all = st.svc.fwmark == 0 && st.svc.addr.is_unspecified() && st.svc.port == 0;
            AdmCommand::Change(Op::Zero(if all { None } else { key }))
        }
        Cmd::AddDest => AdmCommand::Change(Op::AddDest {
            service: need_key()?,
            dest: st.dest(),
        }),
        Cmd::EditDest => AdmCommand::Change(Op::EditDest {
            service: need_key()?,
            dest: st.dest(),
        }),
        Cmd::DelDest => AdmCommand::Change(Op::DelDest {
            service: need_key()?,
            addr: st.dest.addr,
            port: st.dest.port,
        }),
        Cmd::Timeout => AdmCommand::Change(Op::SetTimeouts(st.timeouts)),
        Cmd::StartDaemon => AdmCommand::Change(Op::StartDaemon(SyncDaemon {
            state: st.daemon.state.unwrap_or(DaemonState::Master),
            mcast_ifn: lossy(&st.daemon.mcast_ifn),
            sync_id: st.daemon.syncid,
            sync_maxlen: st.daemon.sync_maxlen,
            mcast_group: st.daemon.mcast_group,
            mcast_port: st.daemon.mcast_port,
            mcast_ttl: st.daemon.mcast_ttl,
        })),
        Cmd::StopDaemon => AdmCommand::Change(Op::StopDaemon(
            st.daemon.state.unwrap_or(DaemonState::Master),
        )),
    })
}
