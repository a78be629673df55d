//! Errors of the route layer, each naming the operation and the object and saying what
//! the kernel's answer means, e.g. `adding 192.0.2.10/32 to bigbro0: IPv6 is disabled on
//! this interface`, in the manner of `src/ipvs/error.rs`.
//!
//! The errno → meaning table for route netlink lives here and only here. Nothing in this
//! file talks to the kernel; it must never turn an error into success or guess a state it
//! did not see.

use std::fmt;
use std::io;

use nix::libc;

use super::model::AddrOp;

/// What the route layer was doing when something failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Opening the route netlink socket.
    Connect,
    /// Reading one interface by name.
    ReadInterface(String),
    /// Creating the owned dummy interface.
    CreateInterface(String),
    /// Setting the owned interface up.
    SetUp(String),
    /// Dumping every interface of the namespace.
    ListInterfaces,
    /// Dumping every address of the namespace.
    ListAddresses,
    /// One change to the owned interface.
    Apply { op: AddrOp, interface: String },
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Connect => f.write_str("opening a route netlink socket"),
            Operation::ReadInterface(name) => write!(f, "reading interface {name}"),
            Operation::CreateInterface(name) => write!(f, "creating dummy interface {name}"),
            Operation::SetUp(name) => write!(f, "setting {name} up"),
            Operation::ListInterfaces => f.write_str("listing interfaces"),
            Operation::ListAddresses => f.write_str("listing addresses"),
            Operation::Apply {
                op: op @ AddrOp::Add(_),
                interface,
            } => write!(f, "{op} to {interface}"),
            Operation::Apply {
                op: op @ AddrOp::Remove { .. },
                interface,
            } => write!(f, "{op} from {interface}"),
        }
    }
}

impl Operation {
    fn exists_text(&self) -> &'static str {
        match self {
            Operation::CreateInterface(_) => "an interface of that name already exists",
            _ => "the address is already there",
        }
    }
}

/// A route layer error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused before sending: not a name the kernel would take.
    #[error("{op}: {name:?} is not a valid interface name ({reason}); nothing was changed")]
    BadName {
        op: Box<Operation>,
        name: String,
        reason: &'static str,
    },
    /// The name is taken by an interface bigbro does not own.
    #[error(
        "{op}: {name} exists and is {}, not a dummy interface; bigbro puts VIPs only on an \
         interface of its own (name another one, or remove this one); nothing was changed",
        kind_text(.kind)
    )]
    NotDummy {
        op: Box<Operation>,
        name: String,
        kind: Option<String>,
    },
    /// ENODEV.
    #[error("{op}: no such interface")]
    NoInterface { op: Box<Operation> },
    /// EEXIST.
    #[error("{op}: {}", .op.exists_text())]
    Exists { op: Box<Operation> },
    /// EADDRNOTAVAIL: removing an address that is not there.
    #[error("{op}: no such address on the interface")]
    NoAddress { op: Box<Operation> },
    /// EPERM.
    #[error("{op}: permission denied (you must be root / need CAP_NET_ADMIN)")]
    Permission { op: Box<Operation> },
    /// EOPNOTSUPP when creating the interface: the kernel has no `dummy` link type.
    #[error(
        "{op}: dummy interfaces are not available in this kernel (is the dummy module loaded?)"
    )]
    NoDummy { op: Box<Operation> },
    /// EACCES when adding an IPv6 address.
    #[error(
        "{op}: IPv6 is disabled on this interface (sysctl net.ipv6.conf.<interface>.disable_ipv6)"
    )]
    Ipv6Disabled { op: Box<Operation> },
    /// EAFNOSUPPORT.
    #[error("{op}: address family not supported (kernel without IPv6?)")]
    AddressFamily { op: Box<Operation> },
    /// EINVAL.
    #[error("{op}: invalid argument (the kernel could not parse the request)")]
    Invalid { op: Box<Operation> },
    /// Any other kernel error.
    #[error("{op}: {}", io::Error::from_raw_os_error(*.errno))]
    Kernel { op: Box<Operation>, errno: i32 },
    /// The kernel's answer never arrived (the connection closed): the operation may or may
    /// not have happened.
    #[error(
        "{op}: no answer from the kernel ({reason}); re-read the state to know whether it happened"
    )]
    NoAnswer { op: Box<Operation>, reason: String },
    /// The kernel answered something this layer cannot read.
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

fn kind_text(kind: &Option<String>) -> String {
    match kind {
        Some(kind) => format!("a {kind} interface"),
        None => "a device of no link kind (a NIC or loopback)".to_string(),
    }
}

impl Error {
    /// The meaning of kernel error `errno` (positive) for `op`.
    pub fn from_errno(op: Operation, errno: i32) -> Error {
        let creating = matches!(op, Operation::CreateInterface(_));
        let adding_v6 = matches!(
            op,
            Operation::Apply {
                op: AddrOp::Add(std::net::IpAddr::V6(_)),
                ..
            }
        );
        let op = Box::new(op);
        match errno {
            libc::ENODEV => Error::NoInterface { op },
            libc::EEXIST => Error::Exists { op },
            libc::EADDRNOTAVAIL => Error::NoAddress { op },
            libc::EPERM => Error::Permission { op },
            libc::EOPNOTSUPP if creating => Error::NoDummy { op },
            libc::EACCES if adding_v6 => Error::Ipv6Disabled { op },
            libc::EAFNOSUPPORT => Error::AddressFamily { op },
            libc::EINVAL => Error::Invalid { op },
            errno => Error::Kernel { op, errno },
        }
    }

    /// The operation that failed.
    pub fn operation(&self) -> &Operation {
        match self {
            Error::BadName { op, .. }
            | Error::NotDummy { op, .. }
            | Error::NoInterface { op }
            | Error::Exists { op }
            | Error::NoAddress { op }
            | Error::Permission { op }
            | Error::NoDummy { op }
            | Error::Ipv6Disabled { op }
            | Error::AddressFamily { op }
            | Error::Invalid { op }
            | Error::Kernel { op, .. }
            | Error::NoAnswer { op, .. }
            | Error::Malformed { op, .. }
            | Error::Io { op, .. } => op,
        }
    }

    /// The kernel's errno, for errors that came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        Some(match self {
            Error::NoInterface { .. } => libc::ENODEV,
            Error::Exists { .. } => libc::EEXIST,
            Error::NoAddress { .. } => libc::EADDRNOTAVAIL,
            Error::Permission { .. } => libc::EPERM,
            Error::NoDummy { .. } => libc::EOPNOTSUPP,
            Error::Ipv6Disabled { .. } => libc::EACCES,
            Error::AddressFamily { .. } => libc::EAFNOSUPPORT,
            Error::Invalid { .. } => libc::EINVAL,
            Error::Kernel { errno, .. } => *errno,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(op: AddrOp) -> Operation {
        Operation::Apply {
            op,
            interface: "bigbro0".into(),
        }
    }

    #[test]
    fn errors_name_the_operation_the_object_and_the_meaning() {
        let add = apply(AddrOp::Add("192.0.2.10".parse().unwrap()));
        assert_eq!(
            Error::from_errno(add, libc::EPERM).to_string(),
            "adding 192.0.2.10/32 to bigbro0: permission denied (you must be root / need CAP_NET_ADMIN)"
        );
        let add6 = apply(AddrOp::Add("2001:db8::10".parse().unwrap()));
        let err = Error::from_errno(add6, libc::EACCES);
        assert!(matches!(err, Error::Ipv6Disabled { .. }));
        assert!(err
            .to_string()
            .starts_with("adding 2001:db8::10/128 to bigbro0: IPv6 is disabled"));
        let remove = apply(AddrOp::Remove {
            addr: "192.0.2.10".parse().unwrap(),
            prefix_len: 32,
        });
        assert_eq!(
            Error::from_errno(remove, libc::EADDRNOTAVAIL).to_string(),
            "removing 192.0.2.10/32 from bigbro0: no such address on the interface"
        );
        let create = Operation::CreateInterface("bigbro0".into());
        let err = Error::from_errno(create.clone(), libc::EOPNOTSUPP);
        assert_eq!(err.errno(), Some(libc::EOPNOTSUPP));
        assert_eq!(
            err.to_string(),
            "creating dummy interface bigbro0: dummy interfaces are not available in this kernel \
             (is the dummy module loaded?)"
        );
        assert_eq!(
            Error::from_errno(create, libc::EEXIST).to_string(),
            "creating dummy interface bigbro0: an interface of that name already exists"
        );
        let unknown = Error::from_errno(Operation::ListAddresses, libc::ENOBUFS);
        assert_eq!(unknown.errno(), Some(libc::ENOBUFS));
        assert!(unknown.to_string().starts_with("listing addresses: "));
    }

    #[test]
    fn a_taken_name_says_what_holds_it() {
        let err = Error::NotDummy {
            op: Box::new(Operation::ReadInterface("bigbro0".into())),
            name: "bigbro0".into(),
            kind: Some("veth".into()),
        };
        assert_eq!(
            err.to_string(),
            "reading interface bigbro0: bigbro0 exists and is a veth interface, not a dummy \
             interface; bigbro puts VIPs only on an interface of its own (name another one, or \
             remove this one); nothing was changed"
        );
    }
}
