//! The typed model of IPVS state: services, destinations (real servers), their flags and
//! counters, independent of how they travel over netlink.
//!
//! Values here are already normalised for comparison: addresses carry their family
//! (`IpAddr`), ports are host-order `u16`, the kernel-internal HASHED flag is never kept,
//! and the IPv4 netmask is a host-order `u32`. Codecs (`ipvs::message`) translate to and
//! from the wire; the reconciler diffs these types with plain `==`. Nothing here performs
//! I/O.

use std::fmt;
use std::net::IpAddr;

use crate::types::Fwmark;

/// Address family of a service or destination (`AF_INET` / `AF_INET6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const AF_INET: u16 = 2;
    pub const AF_INET6: u16 = 10;

    /// The `AF_*` constant the kernel uses.
    pub fn af(self) -> u16 {
        match self {
            Family::V4 => Self::AF_INET,
            Family::V6 => Self::AF_INET6,
        }
    }
    pub fn from_af(af: u16) -> Option<Family> {
        match af {
            Self::AF_INET => Some(Family::V4),
            Self::AF_INET6 => Some(Family::V6),
            _ => None,
        }
    }
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Transport protocol of a virtual service (`-t`, `-u`, `--sctp-service`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn ipproto(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
    pub fn from_ipproto(p: u16) -> Option<Protocol> {
        match p {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
    /// The name ipvsadm prints in listings (`TCP`, `UDP`, `SCTP`).
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// What identifies a virtual service in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKey {
    /// A firewall-mark service (`-f MARK`, plus `-6` for IPv6).
    Fwmark { family: Family, mark: Fwmark },
    /// A protocol + address + port service (`-t`, `-u`, `--sctp-service`).
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
}

impl ServiceKey {
    pub fn fwmark_v4(mark: Fwmark) -> ServiceKey {
        ServiceKey::Fwmark {
            family: Family::V4,
            mark,
        }
    }
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Fwmark { family, .. } => *family,
            ServiceKey::Addr { addr, .. } => Family::of(addr),
        }
    }
    pub fn fwmark(&self) -> Option<Fwmark> {
        match self {
            ServiceKey::Fwmark { mark, .. } => Some(*mark),
            ServiceKey::Addr { .. } => None,
        }
    }
}

/// Service flags (`IP_VS_SVC_F_*`), with the kernel-internal HASHED bit always removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceFlags(u32);

impl ServiceFlags {
    pub const PERSISTENT: u32 = 0x0001;
    /// Kernel-internal: set on every hashed (i.e. live) service in dumps.
    pub const HASHED: u32 = 0x0002;
    pub const ONEPACKET: u32 = 0x0004;
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
    /// `sh-fallback` / `mh-fallback` share SCHED1.
    pub const SH_FALLBACK: u32 = Self::SCHED1;
    /// `sh-port` / `mh-port` share SCHED2.
    pub const SH_PORT: u32 = Self::SCHED2;

    /// Builds flags from raw bits, dropping HASHED.
    pub fn from_bits(bits: u32) -> ServiceFlags {
        ServiceFlags(bits & !Self::HASHED)
    }
    pub fn bits(self) -> u32 {
        self.0
    }
    pub fn contains(self, bit: u32) -> bool {
        self.0 & bit == bit
    }
    pub fn with(self, bit: u32) -> ServiceFlags {
        ServiceFlags::from_bits(self.0 | bit)
    }
}

/// A virtual service as the kernel holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    pub key: ServiceKey,
    /// Scheduler name (`wlc`, `wrr`, ...); `none` means no scheduler.
    pub scheduler: String,
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (meaningful with `ServiceFlags::PERSISTENT`).
    pub timeout: u32,
    /// IPv4: the persistence netmask as a host-order u32 (`0xffff_ffff` = /32).
    /// IPv6: the prefix length (1..=128).
    pub netmask: u32,
    /// Persistence engine (`sip`), if any.
    pub pe_name: Option<String>,
}

impl Service {
    /// A service with ipvsadm's defaults for everything but the key and scheduler:
    /// not persistent, no flags, full netmask, no persistence engine.
    pub fn new(key: ServiceKey, scheduler: impl Into<String>) -> Service {
        let netmask = match key.family() {
            Family::V4 => 0xffff_ffff,
            Family::V6 => 128,
        };
        Service {
            key,
            scheduler: scheduler.into(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask,
            pe_name: None,
        }
    }
}

/// Tunnel checksum flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`): NOCSUM is the absence of bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelFlags(pub u16);

impl TunnelFlags {
    pub const NOCSUM: TunnelFlags = TunnelFlags(0);
    pub const CSUM: TunnelFlags = TunnelFlags(1 << 0);
    pub const REMCSUM: TunnelFlags = TunnelFlags(1 << 1);
}

/// Encapsulation used by the tunnel forwarding method (`--tun-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// IP-in-IP (`IP_VS_CONN_F_TUNNEL_TYPE_IPIP`), the default and big_brother's only mode.
    #[default]
    Ipip,
    /// Generic UDP encapsulation to `port` (must be non-zero).
    Gue { port: u16, flags: TunnelFlags },
    /// GRE.
    Gre { flags: TunnelFlags },
}

impl Tunnel {
    /// `IP_VS_CONN_F_TUNNEL_TYPE_*`.
    pub fn type_code(self) -> u8 {
        match self {
            Tunnel::Ipip => 0,
            Tunnel::Gue { .. } => 1,
            Tunnel::Gre { .. } => 2,
        }
    }
}

/// How packets reach a real server (`IP_VS_CONN_F_FWD_MASK` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// NAT (`-m`, MASQ 0).
    Masquerade,
    /// Local node (1); listed as `Local`, saved as `-g`.
    LocalNode,
    /// Tunnelling (`-i`, 2) with its encapsulation.
    Tunnel(Tunnel),
    /// Direct routing (`-g`, 3), ipvsadm's default.
    DirectRoute,
    /// Bypass (4), kernel-internal.
    Bypass,
}

impl ForwardMethod {
    /// The `IP_VS_CONN_F_*` forwarding code.
    pub fn code(self) -> u32 {
        match self {
            ForwardMethod::Masquerade => 0,
            ForwardMethod::LocalNode => 1,
            ForwardMethod::Tunnel(_) => 2,
            ForwardMethod::DirectRoute => 3,
            ForwardMethod::Bypass => 4,
        }
    }
}

/// A destination (real server) of a service, as configured.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dest {
    /// The real server's address; its family is the destination's family.
    pub addr: IpAddr,
    /// Real-server port; 0 for fwmark services without a port (tunnel/DR ignore it).
    pub port: u16,
    pub forward: ForwardMethod,
    pub weight: u32,
    /// Upper connection threshold (`-x`), 0 = none.
    pub upper_threshold: u32,
    /// Lower connection threshold (`-y`), 0 = none.
    pub lower_threshold: u32,
}

impl Dest {
    /// An IPIP tunnel destination with port 0 and no thresholds: what bigbro programs.
    pub fn ipip(addr: IpAddr, weight: u32) -> Dest {
        Dest {
            addr,
            port: 0,
            forward: ForwardMethod::Tunnel(Tunnel::Ipip),
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }
}

/// Traffic counters and rate estimates (`IPVS_STATS_ATTR_*`), widened to u64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A service as read back from the kernel: its configuration plus counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub service: Service,
    pub stats: Stats,
}

/// A destination as read back from the kernel: its configuration plus counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestEntry {
    pub dest: Dest,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    pub stats: Stats,
}

impl From<Dest> for DestEntry {
    /// A destination as the kernel reports it when it has just been added: no
    /// connections, zero counters.
    fn from(dest: Dest) -> DestEntry {
        DestEntry {
            dest,
            active_conns: 0,
            inactive_conns: 0,
            persist_conns: 0,
            stats: Stats::default(),
        }
    }
}

impl fmt::Display for ServiceKey {
    /// The ipvsadm service argument in numeric form: `-f 7`, `-f 7 -6`, `-t 10.0.0.1:80`,
    /// `-u [2001:db8::1]:53`, `--sctp-service 10.0.0.1:9`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Fwmark { family, mark } => {
                write!(f, "-f {mark}")?;
                if *family == Family::V6 {
                    f.write_str(" -6")?;
                }
                Ok(())
            }
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => {
                let switch = match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                };
                write!(f, "{switch} {}", socket_text(addr, *port))
            }
        }
    }
}

/// `10.0.0.1:80` or `[2001:db8::1]:80`, as ipvsadm prints numeric endpoints.
pub fn socket_text(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// What `GET_INFO` reports: the IPVS version code and the connection table size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Info {
    /// `IP_VS_VERSION_CODE`, e.g. `0x010201` for 1.2.1.
    pub version: u32,
    /// Size of the connection hash table (`2^CONFIG_IP_VS_TAB_BITS`).
    pub conn_tab_size: u32,
}

impl Info {
    /// `"1.2.1"`, as ipvsadm prints it in its listing header.
    pub fn version_text(&self) -> String {
        format!(
            "{}.{}.{}",
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff
        )
    }
}

/// Connection timeouts in seconds (`ipvsadm --set tcp tcpfin udp`); 0 means "unchanged"
/// when setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// Role of a connection-sync daemon (`IP_VS_STATE_MASTER` / `IP_VS_STATE_BACKUP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    pub fn from_code(code: u32) -> Option<DaemonState> {
        match code {
            1 => Some(DaemonState::Master),
            2 => Some(DaemonState::Backup),
            _ => None,
        }
    }
    /// `master` / `backup`, as ipvsadm spells them.
    pub fn label(self) -> &'static str {
        match self {
            DaemonState::Master => "master",
            DaemonState::Backup => "backup",
        }
    }
}

/// A connection-sync daemon's configuration (`--start-daemon`). Zero values of
/// `sync_maxlen`, `mcast_port` and `mcast_ttl` mean "the kernel's default".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SyncDaemon {
    pub state: DaemonState,
    /// Multicast interface (`--mcast-interface`).
    pub mcast_ifn: String,
    /// `--syncid`.
    pub sync_id: u32,
    pub sync_maxlen: u16,
    /// Multicast group; `None` is the kernel's default (224.0.0.81).
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: u16,
    pub mcast_ttl: u8,
}
