//! One parsed ipvsadm command line, independent of how it is executed: the change to ask
//! of the kernel (an `ipvs::Op`), or what to print.
//!
//! Parsing (`parse`) produces these; execution (`exec`) consumes them. They hold exactly
//! what ipvsadm would send, including its defaults and quirks (an edit without `-s` resets
//! the scheduler to wlc; a tunnel destination of an address service takes the service
//! port). Nothing here performs I/O.

use crate::ipvs::{Op, ServiceKey};

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
pub enum AdmCommand {
    /// `-A -E -D -C -a -e -d -Z --set --start-daemon --stop-daemon`: one change to the
    /// kernel's state, exactly as ipvsadm would request it.
    Change(Op),
    /// `-L` / `-l` (and no arguments at all).
    List(List),
    /// `-R`: read commands from stdin.
    Restore,
    /// `-S`: the table in rule format.
    Save(Format),
    /// `-h`: usage on stdout, exit 0.
    Help,
    /// `-v`: version on stdout, exit 0.
    Version,
}
