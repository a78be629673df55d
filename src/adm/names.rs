//! Host and service names as ipvsadm resolves them: `gethostbyname` for `-t web1:80`,
//! `getservbyname` for `-t 10.0.0.1:http`, and, for listings without `-n`,
//! `gethostbyaddr` and `getservbyport`. The system resolver calls exactly those glibc
//! functions, so `/etc/nsswitch.conf`, `/etc/hosts`, `/etc/services` and DNS answer as they
//! answer ipvsadm; tests use a fixed table instead.
//!
//! These lookups never fail loudly: "no name" is `None`, and the caller falls back to
//! numbers as ipvsadm does. This module must not be used from more than one thread at a
//! time (the glibc functions return static storage); the process-wide lock enforces it.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

/// IP protocol numbers used to pick the service database (`tcp`, `udp`, `sctp`).
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const IPPROTO_SCTP: u16 = 132;

fn proto_name(proto: u16) -> Option<&'static CStr> {
    match proto {
        IPPROTO_TCP => Some(c"tcp"),
        IPPROTO_UDP => Some(c"udp"),
        IPPROTO_SCTP => Some(c"sctp"),
        _ => None,
    }
}

/// Name lookups as ipvsadm performs them.
pub trait Resolver {
    /// `gethostbyname(name)`, IPv4 answers only (ipvsadm's `host_to_addr`).
    fn host_to_v4(&self, name: &[u8]) -> Option<Ipv4Addr>;
    /// `getservbyname(name, proto)` (ipvsadm's `service_to_port`).
    fn service_to_port(&self, name: &[u8], proto: u16) -> Option<u16>;
    /// `gethostbyaddr(addr)` (ipvsadm's `addr_to_host`).
    fn addr_to_host(&self, addr: IpAddr) -> Option<Vec<u8>>;
    /// `getservbyport(port, proto)` (ipvsadm's `port_to_service`).
    fn port_to_service(&self, port: u16, proto: u16) -> Option<Vec<u8>>;
}

/// The C library's resolver (NSS: files, DNS, whatever the system is configured for).
pub struct SystemResolver;

static NSS_LOCK: Mutex<()> = Mutex::new(());

extern "C" {
    fn gethostbyname(name: *const libc::c_char) -> *mut libc::hostent;
    fn gethostbyaddr(
        addr: *const libc::c_void,
        len: libc::socklen_t,
        family: libc::c_int,
    ) -> *mut libc::hostent;
}

fn owned(p: *const libc::c_char) -> Option<Vec<u8>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: glibc returned a NUL-terminated string that stays valid until the next call
    // into the same database; we copy it while holding NSS_LOCK.
    Some(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
}

impl Resolver for SystemResolver {
    fn host_to_v4(&self, name: &[u8]) -> Option<Ipv4Addr> {
        let name = CString::new(name).ok()?;
        let _guard = NSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: name is a valid C string; the result is read before the lock is released.
        unsafe {
            let h = gethostbyname(name.as_ptr());
            if h.is_null() || (*h).h_addrtype != libc::AF_INET || (*h).h_length != 4 {
                return None;
            }
            let first = *(*h).h_addr_list;
            if first.is_null() {
                return None;
            }
            let b = std::slice::from_raw_parts(first as *const u8, 4);
            Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
    }

    fn service_to_port(&self, name: &[u8], proto: u16) -> Option<u16> {
        let proto = proto_name(proto)?;
        let name = CString::new(name).ok()?;
        let _guard = NSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: valid C strings in; the servent is read before the lock is released.
        unsafe {
            let s = libc::getservbyname(name.as_ptr(), proto.as_ptr());
            if s.is_null() {
                return None;
            }
            Some(u16::from_be((*s).s_port as u16))
        }
    }

    fn addr_to_host(&self, addr: IpAddr) -> Option<Vec<u8>> {
        let _guard = NSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the address buffer outlives the call; the hostent is copied before the
        // lock is released.
        unsafe {
            let h = match addr {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    gethostbyaddr(o.as_ptr().cast(), 4, libc::AF_INET)
                }
                IpAddr::V6(a) => {
                    let o = a.octets();
                    gethostbyaddr(o.as_ptr().cast(), 16, libc::AF_INET6)
                }
            };
            if h.is_null() {
                return None;
            }
            owned((*h).h_name)
        }
    }

    fn port_to_service(&self, port: u16, proto: u16) -> Option<Vec<u8>> {
        let proto = proto_name(proto)?;
        let _guard = NSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: valid C string in; the servent is copied before the lock is released.
        unsafe {
            let s = libc::getservbyport(libc::c_int::from(port.to_be()), proto.as_ptr());
            if s.is_null() {
                return None;
            }
            owned((*s).s_name)
        }
    }
}

/// A fixed table of names, for tests and for `--json` (which never resolves).
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    pub hosts: Vec<(String, IpAddr)>,
    /// (name, port, protocol number).
    pub services: Vec<(String, u16, u16)>,
}

impl StaticResolver {
    /// A resolver that knows nothing: every lookup fails, so output is numeric.
    pub fn empty() -> StaticResolver {
        StaticResolver::default()
    }
}

impl Resolver for StaticResolver {
    fn host_to_v4(&self, name: &[u8]) -> Option<Ipv4Addr> {
        self.hosts.iter().find_map(|(n, a)| match a {
            IpAddr::V4(v4) if n.as_bytes() == name => Some(*v4),
            _ => None,
        })
    }
    fn service_to_port(&self, name: &[u8], proto: u16) -> Option<u16> {
        self.services
            .iter()
            .find(|(n, _, p)| n.as_bytes() == name && *p == proto)
            .map(|(_, port, _)| *port)
    }
    fn addr_to_host(&self, addr: IpAddr) -> Option<Vec<u8>> {
        self.hosts
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(n, _)| n.as_bytes().to_vec())
    }
    fn port_to_service(&self, port: u16, proto: u16) -> Option<Vec<u8>> {
        self.services
            .iter()
            .find(|(_, p, pr)| *p == port && *pr == proto)
            .map(|(n, _, _)| n.as_bytes().to_vec())
    }
}

/// Memoises another resolver: a listing asks for the same few names many times, and each
/// miss may cost a DNS round trip.
pub struct CachingResolver<R: Resolver> {
    inner: R,
    hosts: Mutex<HashMap<IpAddr, Name>>,
    services: Mutex<HashMap<(u16, u16), Name>>,
}

/// A looked-up name, or None if there is none.
type Name = Option<Vec<u8>>;

impl<R: Resolver> CachingResolver<R> {
    pub fn new(inner: R) -> Self {
        CachingResolver {
            inner,
            hosts: Mutex::new(HashMap::new()),
            services: Mutex::new(HashMap::new()),
        }
    }
}

impl<R: Resolver> Resolver for CachingResolver<R> {
    fn host_to_v4(&self, name: &[u8]) -> Option<Ipv4Addr> {
        self.inner.host_to_v4(name)
    }
    fn service_to_port(&self, name: &[u8], proto: u16) -> Option<u16> {
        self.inner.service_to_port(name, proto)
    }
    fn addr_to_host(&self, addr: IpAddr) -> Option<Vec<u8>> {
        let mut cache = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(addr)
            .or_insert_with(|| self.inner.addr_to_host(addr))
            .clone()
    }
    fn port_to_service(&self, port: u16, proto: u16) -> Option<Vec<u8>> {
        let mut cache = self.services.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry((port, proto))
            .or_insert_with(|| self.inner.port_to_service(port, proto))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_resolver_reads_the_services_database() {
        // /etc/services on Debian (netbase) maps http to 80/tcp; skip where it is absent.
        if !std::path::Path::new("/etc/services").exists() {
            return;
        }
        let r = SystemResolver;
        assert_eq!(r.service_to_port(b"http", IPPROTO_TCP), Some(80));
        assert_eq!(r.port_to_service(80, IPPROTO_TCP), Some(b"http".to_vec()));
        assert_eq!(r.port_to_service(80, 0), None);
        assert_eq!(r.service_to_port(b"no-such-service-xyz", IPPROTO_TCP), None);
    }

    #[test]
    fn system_resolver_reads_hosts() {
        let r = SystemResolver;
        assert_eq!(r.host_to_v4(b"localhost"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(r.host_to_v4(b"bad\0name"), None);
    }
}
