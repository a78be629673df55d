//! What `bigbro ipvsadm` needs from the kernel, as one small trait, and how kernel errors
//! read to the user: libipvs's `ipvs_strerror`, which words an errno according to the
//! operation that failed ("No such service" for an edit, "Service not defined" for a
//! destination), falling back to the C library's `strerror`.
//!
//! The trait keeps the command line independent of the netlink client: `client` implements
//! it on `ipvs::Client`, tests implement it in memory. Implementations must never retry or
//! reorder operations, so that errors surface exactly where ipvsadm's would.

use crate::ipvs::{DestEntry, Info, Op, ServiceEntry, ServiceKey, SyncDaemon, Timeouts};

/// A positive `errno` value reported by the kernel (or by the transport).
pub type Errno = i32;

/// Why a kernel request failed: the errno ipvsadm would see, and, for failures that are
/// not the kernel's answer (a lost reply, a socket error), a sentence saying what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    pub errno: Errno,
    pub detail: Option<String>,
}

impl From<Errno> for KernelError {
    fn from(errno: Errno) -> Self {
        KernelError {
            errno,
            detail: None,
        }
    }
}

impl KernelError {
    /// What ipvsadm prints for this error from `func`.
    pub fn message(&self, func: Func) -> String {
        match &self.detail {
            Some(d) => d.clone(),
            None => ipvs_strerror(func, self.errno),
        }
    }
}

pub const EPERM: Errno = 1;
pub const ENOENT: Errno = 2;
pub const ESRCH: Errno = 3;
pub const ENOMEM: Errno = 12;
pub const EEXIST: Errno = 17;
pub const EINVAL: Errno = 22;
pub const ENOPROTOOPT: Errno = 92;
pub const EOPNOTSUPP: Errno = 95;
pub const EAFNOSUPPORT: Errno = 97;
pub const EMSGSIZE: Errno = 90;

/// The kernel as `bigbro ipvsadm` uses it. Every method is one ipvsadm request.
pub trait Backend {
    /// `IPVS_CMD_GET_INFO`.
    fn info(&mut self) -> Result<Info, KernelError>;
    /// Every service, in the kernel's order.
    fn services(&mut self) -> Result<Vec<ServiceEntry>, KernelError>;
    /// One service (`ESRCH` if missing).
    fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, KernelError>;
    /// The destinations of a service, in the kernel's order.
    fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, KernelError>;
    /// `IPVS_CMD_GET_CONFIG`.
    fn timeouts(&mut self) -> Result<Timeouts, KernelError>;
    /// Running sync daemons, in the kernel's order.
    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, KernelError>;
    /// Changes, executed in order as if one by one (a failure affects only its own
    /// entry); one result per op. A client may pipeline them.
    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), KernelError>>;
}

/// Which libipvs function failed, for [`ipvs_strerror`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    AddService,
    UpdateService,
    DelService,
    ZeroService,
    AddDest,
    UpdateDest,
    DelDest,
    StartDaemon,
    StopDaemon,
    GetServices,
    GetDests,
    GetService,
    Other,
}

impl Func {
    /// The function libipvs runs for a change.
    pub fn of(op: &Op) -> Func {
        match op {
            Op::AddService(_) => Func::AddService,
            Op::EditService(_) => Func::UpdateService,
            Op::DelService(_) => Func::DelService,
            Op::Zero(_) => Func::ZeroService,
            Op::AddDest { .. } => Func::AddDest,
            Op::EditDest { .. } => Func::UpdateDest,
            Op::DelDest { .. } => Func::DelDest,
            Op::StartDaemon(_) => Func::StartDaemon,
            Op::StopDaemon(_) => Func::StopDaemon,
            Op::Flush | Op::SetTimeouts(_) => Func::Other,
        }
    }
}

/// libipvs `ipvs_strerror`.
pub fn ipvs_strerror(func: Func, err: Errno) -> String {
    let specific: &[(Func, Errno, &str)] = &[
        (Func::AddService, EEXIST, "Service already exists"),
        (
            Func::AddService,
            ENOENT,
            "Scheduler or persistence engine not found",
        ),
        (Func::UpdateService, ESRCH, "No such service"),
        (
            Func::UpdateService,
            ENOENT,
            "Scheduler or persistence engine not found",
        ),
        (Func::DelService, ESRCH, "No such service"),
        (Func::ZeroService, ESRCH, "No such service"),
        (Func::AddDest, ESRCH, "Service not defined"),
        (Func::AddDest, EEXIST, "Destination already exists"),
        (Func::UpdateDest, ESRCH, "Service not defined"),
        (Func::UpdateDest, ENOENT, "No such destination"),
        (Func::DelDest, ESRCH, "Service not defined"),
        (Func::DelDest, ENOENT, "No such destination"),
        (Func::StartDaemon, EEXIST, "Daemon has already run"),
        (Func::StopDaemon, ESRCH, "No daemon is running"),
        (Func::GetServices, ESRCH, "No such service"),
        (Func::GetDests, ESRCH, "No such service"),
        (Func::GetService, ESRCH, "No such service"),
    ];
    if let Some((_, _, m)) = specific.iter().find(|(f, e, _)| *f == func && *e == err) {
        return (*m).to_string();
    }
    let generic: &[(Errno, &str)] = &[
        (EPERM, "Permission denied (you must be root)"),
        (
            EINVAL,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...",
        ),
        (ENOPROTOOPT, "Protocol not available"),
        (ENOMEM, "Memory allocation problem"),
        (EOPNOTSUPP, "Operation not supported with IPv6"),
        (
            EAFNOSUPPORT,
            "Operation not supported with specified address family",
        ),
        (EMSGSIZE, "Module is wrong version"),
    ];
    if let Some((_, m)) = generic.iter().find(|(e, _)| *e == err) {
        return (*m).to_string();
    }
    strerror(err)
}

/// The C library's `strerror` text (`Numerical result out of range` for ERANGE).
pub fn strerror(err: Errno) -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: buf is writable for its whole length; strerror_r (XSI) NUL-terminates it.
    let rc = unsafe { libc::strerror_r(err, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return format!("Unknown error {err}");
    }
    // SAFETY: strerror_r succeeded, so buf holds a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_depend_on_the_operation() {
        assert_eq!(
            ipvs_strerror(Func::AddService, EEXIST),
            "Service already exists"
        );
        assert_eq!(ipvs_strerror(Func::AddDest, ESRCH), "Service not defined");
        assert_eq!(ipvs_strerror(Func::DelService, ESRCH), "No such service");
        assert_eq!(ipvs_strerror(Func::DelDest, ENOENT), "No such destination");
        assert_eq!(
            ipvs_strerror(Func::AddDest, EINVAL),
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        );
        assert_eq!(
            ipvs_strerror(Func::AddDest, 34),
            "Numerical result out of range"
        );
        assert_eq!(
            ipvs_strerror(Func::Other, ENOENT),
            "No such file or directory"
        );
        assert_eq!(ipvs_strerror(Func::Other, 19), "No such device");
    }
}
