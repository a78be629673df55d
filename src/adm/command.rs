//! One parsed ipvsadm command line, independent of how it is executed: what to ask the
//! kernel (in the typed IPVS model), or what to print.
//!
//! Parsing (`parse`) produces these; execution (`exec`) consumes them. They hold exactly
//! what ipvsadm would send, including its defaults and quirks (an edit without `-s` resets
//! the scheduler to wlc; a tunnel destination of an address service takes the service
//! port). Nothing here performs I/O.

use std::net::IpAddr;

use crate::ipvs::{Dest, Service, ServiceKey};

/// Which timeouts to set (`--set tcp tcpfin udp`, seconds, 0 = leave unchanged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// Sync daemon role (`IP_VS_STATE_MASTER` / `IP_VS_STATE_BACKUP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub fn code(self) -> u32 {
        match self {
            DaemonState::Master => 1,
            DaemonState::Backup => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DaemonState::Master => "master",
            DaemonState::Backup => "backup",
        }
    }
}

/// A connection-sync daemon: what `--start-daemon` sends and `--daemon` lists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Daemon {
    pub state: DaemonState,
    /// Multicast interface (ipvsadm's default is `eth0`).
    pub mcast_ifn: String,
    pub syncid: u32,
    /// 0 = kernel default.
    pub sync_maxlen: u16,
    pub mcast_group: Option<IpAddr>,
    /// 0 = kernel default.
    pub mcast_port: u16,
    /// 0 = kernel default.
    pub mcast_ttl: u8,
}

/// How a listing is printed (ipvsadm's `FMT_*` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    pub numeric: bool,
    /// `-S`: rule format.
    pub rule: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub nosort: bool,
    pub exact: bool,
    pub tun_info: bool,
}

/// What `-L` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListTarget {
    /// Every service (with the version header).
    All,
    /// One service (`-L -t ...`): no header; "No such service" and exit 1 if missing.
    Service(ServiceKey),
    /// `-c`: `/proc/net/ip_vs_conn`.
    Connections,
    /// `--timeout`.
    Timeout,
    /// `--daemon`.
    Daemon,
}

/// A listing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List {
    pub target: ListTarget,
    pub format: Format,
    /// bigbro's `--json`: machine-readable output instead of ipvsadm's text.
    pub json: bool,
}

/// One ipvsadm command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    AddService(Service),
    EditService(Service),
    DelService(ServiceKey),
    Flush,
    List(List),
    AddDest(ServiceKey, Dest),
    EditDest(ServiceKey, Dest),
    /// Only the destination's address and port identify it.
    DelDest(ServiceKey, Dest),
    SetTimeouts(Timeouts),
    StartDaemon(Daemon),
    StopDaemon(DaemonState),
    /// `-R`: read commands from stdin.
    Restore,
    /// `-S`: the table in rule format.
    Save(Format),
    /// `-Z`: zero the counters of one service, or all (None).
    Zero(Option<ServiceKey>),
    /// `-h`: usage on stdout, exit 0.
    Help,
    /// `-v`: version on stdout, exit 0.
    Version,
}

impl Command {
    /// True for commands that change kernel state (and so may be batched in a restore).
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Command::AddService(_)
                | Command::EditService(_)
                | Command::DelService(_)
                | Command::Flush
                | Command::AddDest(..)
                | Command::EditDest(..)
                | Command::DelDest(..)
                | Command::SetTimeouts(_)
                | Command::StartDaemon(_)
                | Command::StopDaemon(_)
                | Command::Zero(_)
        )
    }
}
