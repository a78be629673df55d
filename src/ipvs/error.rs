//! Errors of the IPVS client, each naming the operation that failed and saying what the
//! kernel's answer means (the errno table below, from the kernel's `ip_vs_ctl.c`), e.g. `adding destination 10.0.0.1:0 to FWM 7:
//! no such service`.
//!
//! The errno → meaning table lives here and only here. Nothing in this file talks to the
//! kernel; it must never turn an error into success or guess a state it did not see.

use std::fmt;
use std::io;

use nix::libc;

use super::model::ServiceKey;
use super::op::{service_label, Op};

/// What the client was doing when something failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Resolving the "IPVS" generic netlink family.
    Connect,
    ListServices,
    GetService(ServiceKey),
    ListDests(ServiceKey),
    GetInfo,
    GetTimeouts,
    ListDaemons,
    Apply(Op),
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Connect => f.write_str("looking up the IPVS netlink family"),
            Operation::ListServices => f.write_str("listing services"),
            Operation::GetService(k) => write!(f, "reading service {}", service_label(k)),
            Operation::ListDests(k) => write!(f, "listing destinations of {}", service_label(k)),
            Operation::GetInfo => f.write_str("reading the IPVS version"),
            Operation::GetTimeouts => f.write_str("reading connection timeouts"),
            Operation::ListDaemons => f.write_str("listing sync daemons"),
            Operation::Apply(op) => fmt::Display::fmt(op, f),
        }
    }
}

impl Operation {
    fn op(&self) -> Option<&Op> {
        match self {
            Operation::Apply(op) => Some(op),
            _ => None,
        }
    }
    fn exists_text(&self) -> &'static str {
        match self.op() {
            Some(op) if op.is_dest_op() => "destination already exists",
            Some(Op::StartDaemon(_)) => "this sync daemon is already running",
            _ => "service already exists",
        }
    }
    fn invalid_hint(&self) -> &'static str {
        match self.op() {
            Some(op) if op.is_dest_op() => {
                "invalid destination (the kernel rejects a real-server address that is not \
                 unicast or not routable, e.g. with `lo` down, a GUE tunnel without a port, \
                 and a family other than the service's unless forwarding is tunnel)"
            }
            Some(Op::AddService(_) | Op::EditService(_)) => {
                "invalid service (bad netmask, persistence engine without persistence, or an \
                 attribute the kernel could not parse)"
            }
            _ => "invalid argument (the kernel could not parse the request)",
        }
    }
}

/// An IPVS client error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ESRCH: the service does not exist.
    #[error("{op}: no such service")]
    ServiceNotFound { op: Box<Operation> },
    /// ENOENT on a destination command.
    #[error("{op}: no such destination")]
    DestNotFound { op: Box<Operation> },
    /// EEXIST.
    #[error("{op}: {}", .op.exists_text())]
    Exists { op: Box<Operation> },
    /// ENOENT on a service command: the kernel found no `ip_vs_<name>` module.
    #[error("{op}: scheduler or persistence engine not found (is its ip_vs_* module available?)")]
    SchedulerNotFound { op: Box<Operation> },
    /// EINVAL.
    #[error("{op}: {}", .op.invalid_hint())]
    Invalid { op: Box<Operation> },
    /// ERANGE.
    #[error("{op}: value out of range (weight below 0, or lower threshold above upper threshold)")]
    Range { op: Box<Operation> },
    /// EPERM.
    #[error("{op}: permission denied (you must be root / need CAP_NET_ADMIN)")]
    Permission { op: Box<Operation> },
    /// The "IPVS" generic netlink family is not registered.
    #[error("{op}: IPVS is not available in this kernel (is ip_vs loaded?)")]
    NotAvailable { op: Box<Operation> },
    /// EAFNOSUPPORT.
    #[error("{op}: address family not supported by IPVS (kernel built without IPv6 IPVS?)")]
    AddressFamily { op: Box<Operation> },
    /// ESRCH on `--stop-daemon`.
    #[error("{op}: no such sync daemon is running")]
    DaemonNotRunning { op: Box<Operation> },
    /// Refused before sending: the request cannot be encoded as asked.
    #[error("{op}: {reason}")]
    BadRequest { op: Box<Operation>, reason: String },
    /// Any other kernel error.
    #[error("{op}: {}", io::Error::from_raw_os_error(*.errno))]
    Kernel { op: Box<Operation>, errno: i32 },
    /// The kernel's answer never arrived (acknowledgement lost to a receive-buffer
    /// overrun, or no answer in time): the operation may or may not have happened.
    #[error(
        "{op}: no answer from the kernel ({reason}); re-read the state to know whether it happened"
    )]
    NoAnswer { op: Box<Operation>, reason: String },
    /// The kernel answered something this client cannot read.
    #[error("{op}: malformed reply from the kernel: {detail}")]
    Malformed { op: Box<Operation>, detail: String },
    /// The netlink socket failed.
    #[error("{op}: netlink socket error: {source}")]
    Io {
        op: Box<Operation>,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The meaning of kernel error `errno` (positive) for `op`.
    pub fn from_errno(op: Operation, errno: i32) -> Error {
        let dest_op = op.op().is_some_and(Op::is_dest_op);
        let service_write = matches!(op.op(), Some(Op::AddService(_) | Op::EditService(_)));
        let daemon_stop = matches!(op.op(), Some(Op::StopDaemon(_)));
        let op = Box::new(op);
        match errno {
            libc::ESRCH if daemon_stop => Error::DaemonNotRunning { op },
            libc::ESRCH => Error::ServiceNotFound { op },
            libc::ENOENT if dest_op => Error::DestNotFound { op },
            libc::ENOENT if service_write => Error::SchedulerNotFound { op },
            libc::EEXIST => Error::Exists { op },
            libc::EINVAL => Error::Invalid { op },
            libc::ERANGE => Error::Range { op },
            libc::EPERM => Error::Permission { op },
            libc::EAFNOSUPPORT => Error::AddressFamily { op },
            errno => Error::Kernel { op, errno },
        }
    }

    /// The operation that failed.
    pub fn operation(&self) -> &Operation {
        match self {
            Error::ServiceNotFound { op }
            | Error::DestNotFound { op }
            | Error::Exists { op }
            | Error::SchedulerNotFound { op }
            | Error::Invalid { op }
            | Error::Range { op }
            | Error::Permission { op }
            | Error::NotAvailable { op }
            | Error::AddressFamily { op }
            | Error::DaemonNotRunning { op }
            | Error::BadRequest { op, .. }
            | Error::Kernel { op, .. }
            | Error::NoAnswer { op, .. }
            | Error::Malformed { op, .. }
            | Error::Io { op, .. } => op,
        }
    }

    /// The kernel's errno, for errors that came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        Some(match self {
            Error::ServiceNotFound { .. } | Error::DaemonNotRunning { .. } => libc::ESRCH,
            Error::DestNotFound { .. } | Error::SchedulerNotFound { .. } => libc::ENOENT,
            Error::Exists { .. } => libc::EEXIST,
            Error::Invalid { .. } => libc::EINVAL,
            Error::Range { .. } => libc::ERANGE,
            Error::Permission { .. } => libc::EPERM,
            Error::AddressFamily { .. } => libc::EAFNOSUPPORT,
            Error::Kernel { errno, .. } => *errno,
            _ => return None,
        })
    }
}
