//! The mark rules bigbro owns, as plain data: "packets to this VIP, protocol and port
//! (range), optionally arriving on this interface, get this fwmark".
//!
//! `config` produces them from each cluster's `vips`; `nft` (netlink) installs them;
//! `bigbro check` prints them in `nft` syntax with [`render`]. No I/O here.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// The name of the table bigbro owns in the `ip` and `ip6` families.
pub const TABLE: &str = "bigbro";
/// The chain inside it.
pub const CHAIN: &str = "prerouting";
/// `priority mangle`.
pub const PRIORITY_MANGLE: i32 = -150;

/// The nf_tables address family of one of bigbro's tables: `ip` for IPv4 VIPs, `ip6` for
/// IPv6 VIPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ip,
    Ip6,
}

impl Family {
    /// Both families, in the order bigbro installs and lists them.
    pub const ALL: [Family; 2] = [Family::Ip, Family::Ip6];

    /// The family a rule for this destination belongs to.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ip,
            IpAddr::V6(_) => Family::Ip6,
        }
    }
    /// The nft keyword (`ip`, `ip6`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Interface names are at most 15 bytes (`IFNAMSIZ` 16 with the terminating NUL).
pub const IFNAME_MAX: usize = 15;

/// Why a [`MarkRule`] cannot be installed. Found before anything is sent to the kernel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("mark rule `{rule}`: {reason}")]
pub struct InvalidRule {
    /// The rule in nft syntax.
    pub rule: String,
    /// What is wrong with it and what to do.
    pub reason: String,
}

/// Layer-4 protocol matched by a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Proto {
    Tcp,
    Udp,
    Sctp,
}

impl L4Proto {
    pub fn ipproto(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
            L4Proto::Sctp => 132,
        }
    }
    /// The nft keyword (`tcp`, `udp`, `sctp`).
    pub fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Sctp => "sctp",
        }
    }
}

/// An inclusive destination-port range; `first == last` is a single port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }
}

/// Why `name` cannot be the interface a mark rule matches, or `None`: a name Linux could
/// give an interface (1 to 15 bytes, no `/`, `:`, whitespace), without `*`, `"` and `\`,
/// which nft would read as a wildcard or quoting. [`MarkRule::validate`] applies it, and
/// the configuration calls it for a vip's `interface`, so a file the rule writer would
/// refuse is refused when it is read.
pub fn iifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the interface name is empty; leave it out to match every interface".into());
    }
    if name.len() > IFNAME_MAX {
        return Some(format!(
            "interface name \"{name}\" is {} bytes long; Linux interface names have at most {IFNAME_MAX}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("\"{name}\" cannot be an interface name"));
    }
    name.chars()
        .find(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '/' | ':' | '*' | '"' | '\\')
        })
        .map(|c| {
            format!(
                "interface name \"{}\" contains {c:?}, which bigbro does not accept in an interface name",
                name.escape_debug()
            )
        })
}

/// One mark rule: `ip daddr VIP PROTO dport PORTS [iifname IF] meta mark set MARK`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarkRule {
    pub daddr: IpAddr,
    pub proto: L4Proto,
    pub ports: PortRange,
    pub iifname: Option<String>,
    pub mark: u32,
}

impl MarkRule {
    /// The table family this rule goes into.
    pub fn family(&self) -> Family {
        Family::of(self.daddr)
    }

    /// Checks what the kernel would not check for us, or would accept but never match:
    /// an interface name must be a name Linux could give an interface (1 to 15 bytes, no
    /// `/`, `:`, whitespace; bigbro also refuses `*`, `"` and `\`, which nft would read as a
    /// wildcard or quoting); a port range must not be reversed; the mark must not be 0 (the
    /// unmarked value, which no IPVS fwmark service can match).
    pub fn validate(&self) -> Result<(), InvalidRule> {
        let fail = |reason: String| {
            Err(InvalidRule {
                rule: self.nft_text(),
                reason,
            })
        };
        if self.ports.first > self.ports.last {
            return fail(format!(
                "port range {}-{} is reversed; write the lower port first",
                self.ports.first, self.ports.last
            ));
        }
        if self.mark == 0 {
            return fail(
                "mark 0 is the unmarked value and no IPVS fwmark service can match it; use a non-zero fwmark"
                    .to_string(),
            );
        }
        if let Some(reason) = self.iifname.as_deref().and_then(iifname_problem) {
            return fail(reason);
        }
        Ok(())
    }

    /// The rule's match and statement in `nft` syntax, as `nft list` prints it.
    pub fn nft_text(&self) -> String {
        let fam = self.family().name();
        let mut s = format!("{fam} daddr {} {} dport ", self.daddr, self.proto.name());
        if self.ports.first == self.ports.last {
            let _ = write!(s, "{}", self.ports.first);
        } else {
            let _ = write!(s, "{}-{}", self.ports.first, self.ports.last);
        }
        if let Some(ifname) = &self.iifname {
            let _ = write!(s, " iifname \"{ifname}\"");
        }
        let _ = write!(s, " meta mark set 0x{:08x}", self.mark);
        s
    }
}

/// The whole ruleset bigbro would install, in `nft` syntax: one `table ip bigbro` for
/// IPv4 rules and one `table ip6 bigbro` for IPv6 rules, each only if it has rules.
pub fn render(rules: &[MarkRule]) -> String {
    let mut out = String::new();
    for fam in Family::ALL {
        let mine: Vec<&MarkRule> = rules.iter().filter(|r| r.family() == fam).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(out, "table {fam} {TABLE} {{");
        let _ = writeln!(out, "\tchain {CHAIN} {{");
        let _ = writeln!(
            out,
            "\t\ttype filter hook prerouting priority mangle; policy accept;"
        );
        for r in mine {
            let _ = writeln!(out, "\t\t{}", r.nft_text());
        }
        let _ = writeln!(out, "\t}}");
        let _ = writeln!(out, "}}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_nft_list() {
        let rules = vec![
            MarkRule {
                daddr: "192.0.2.10".parse().unwrap(),
                proto: L4Proto::Tcp,
                ports: PortRange::single(80),
                iifname: None,
                mark: 7,
            },
            MarkRule {
                daddr: "192.0.2.10".parse().unwrap(),
                proto: L4Proto::Udp,
                ports: PortRange {
                    first: 8000,
                    last: 8080,
                },
                iifname: Some("eth0".into()),
                mark: 7,
            },
        ];
        assert_eq!(
            render(&rules),
            "table ip bigbro {\n\tchain prerouting {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tip daddr 192.0.2.10 tcp dport 80 meta mark set 0x00000007\n\t\tip daddr 192.0.2.10 udp dport 8000-8080 iifname \"eth0\" meta mark set 0x00000007\n\t}\n}\n"
        );
    }
}
