//! The values the route layer speaks in: the interface bigbro owns, an address as the
//! kernel lists it, and [`AddrOp`], one change to the owned interface.
//!
//! An `AddrOp` names no interface: [`super::kernel::RouteKernel::apply`] takes the owned
//! interface beside the ops, so no value of this file can aim a change at another one.

use std::fmt;
use std::net::IpAddr;

/// The interface bigbro puts its VIPs on unless the configuration names another.
pub const DEFAULT_INTERFACE: &str = "bigbro0";

/// The longest interface name the kernel takes (`IFNAMSIZ` less the terminating NUL).
pub const MAX_NAME_LEN: usize = 15;

/// An interface by index and name, as the kernel answered for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
}

/// One interface as a link dump lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` (`dummy`, `veth`...); `None` for a device with no kind (a physical
    /// NIC, `lo`).
    pub kind: Option<String>,
    /// `IFF_UP`.
    pub up: bool,
}

impl Link {
    pub fn is_dummy(&self) -> bool {
        self.kind.as_deref() == Some("dummy")
    }

    pub fn interface(&self) -> Interface {
        Interface {
            index: self.index,
            name: self.name.clone(),
        }
    }
}

/// One address in the namespace, as an address dump lists it, with the name of its
/// interface.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalAddr {
    pub index: u32,
    pub interface: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl LocalAddr {
    /// An IPv6 link-local address (fe80::/10), which the kernel itself puts on an interface
    /// when it comes up: the kernel's, never one of bigbro's VIPs.
    pub fn is_kernel_link_local(&self) -> bool {
        is_link_local(&self.addr)
    }
}

/// The prefix length a VIP has on the owned interface: the address alone.
pub fn host_prefix(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// fe80::/10.
pub fn is_link_local(addr: &IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

/// True for an address that can be a VIP: unicast, not loopback, not unspecified, not
/// IPv6 link-local.
pub fn is_vip_address(addr: &IpAddr) -> bool {
    let broadcast = matches!(addr, IpAddr::V4(a) if a.is_broadcast());
    !(addr.is_unspecified()
        || addr.is_multicast()
        || addr.is_loopback()
        || is_link_local(addr)
        || broadcast)
}

/// Why `name` cannot be an interface name (the kernel's `dev_valid_name`), if it cannot.
pub fn invalid_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not interface names")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("it holds `/`, `:` or white space")
    } else {
        None
    }
}

/// One change to the owned interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrOp {
    /// Removes an address (a VIP no longer wanted, or one with the wrong prefix length).
    Remove { addr: IpAddr, prefix_len: u8 },
    /// Adds a VIP as /32 or /128 (IPv6 with `nodad`, so it answers at once).
    Add(IpAddr),
}

impl AddrOp {
    pub fn addr(&self) -> IpAddr {
        match self {
            AddrOp::Add(addr) | AddrOp::Remove { addr, .. } => *addr,
        }
    }

    pub fn prefix_len(&self) -> u8 {
        match self {
            AddrOp::Add(addr) => host_prefix(addr),
            AddrOp::Remove { prefix_len, .. } => *prefix_len,
        }
    }

    /// The same change as an `ip` command, e.g. `ip addr add 2001:db8::10/128 dev bigbro0
    /// nodad` (for `bigbro check` and logs).
    pub fn ip_command(&self, interface: &str) -> String {
        let (verb, nodad) = match self {
            AddrOp::Add(IpAddr::V6(_)) => ("add", " nodad"),
            AddrOp::Add(_) => ("add", ""),
            AddrOp::Remove { .. } => ("del", ""),
        };
        format!(
            "ip addr {verb} {}/{} dev {interface}{nodad}",
            self.addr(),
            self.prefix_len()
        )
    }
}

/// `adding 192.0.2.10/32` / `removing 192.0.2.10/32`; [`super::Operation`] adds the
/// interface.
impl fmt::Display for AddrOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self {
            AddrOp::Add(_) => "adding",
            AddrOp::Remove { .. } => "removing",
        };
        write!(f, "{verb} {}/{}", self.addr(), self.prefix_len())
    }
}

/// Test shorthands shared by this module's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeSet;
    use std::net::IpAddr;

    pub fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
        addrs.iter().map(|a| ip(a)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::ip;
    use super::*;

    #[test]
    fn ip_commands_are_what_an_operator_would_type() {
        assert_eq!(
            AddrOp::Add(ip("192.0.2.10")).ip_command("bigbro0"),
            "ip addr add 192.0.2.10/32 dev bigbro0"
        );
        assert_eq!(
            AddrOp::Add(ip("2001:db8::10")).ip_command("bigbro0"),
            "ip addr add 2001:db8::10/128 dev bigbro0 nodad"
        );
        let remove = AddrOp::Remove {
            addr: ip("192.0.2.10"),
            prefix_len: 24,
        };
        assert_eq!(
            remove.ip_command("vip"),
            "ip addr del 192.0.2.10/24 dev vip"
        );
    }

    #[test]
    fn interface_names_follow_the_kernel() {
        assert_eq!(invalid_name("bigbro0"), None);
        assert_eq!(invalid_name("a23456789012345"), None);
        assert!(invalid_name("a234567890123456").is_some());
        assert!(invalid_name("").is_some());
        assert!(invalid_name("..").is_some());
        assert!(invalid_name("big bro").is_some());
        assert!(invalid_name("bigbro0:1").is_some());
    }

    #[test]
    fn vip_addresses_are_unicast_and_routable() {
        for good in ["192.0.2.10", "2001:db8::10", "10.0.0.1"] {
            assert!(is_vip_address(&ip(good)), "{good}");
        }
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!is_vip_address(&ip(bad)), "{bad}");
        }
    }
}
