//! The validated configuration: plain, immutable data that every other part of bigbro
//! reads (daemon, probes, weight policy, reconciler, API). A reload builds a new
//! [`Model`] and swaps it in whole.
//!
//! Every value here has been checked and every default filled in: consumers never see an
//! `Option` that means "use the default", a fwmark of 0 or a hostname. Nothing here does
//! I/O. The translation to kernel objects (IPVS services and dests, nf_tables mark
//! rules) lives in `src/desired/`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use crate::health::ProbeKind;
use crate::ipvs::Family;
use crate::nft::{L4Proto, PortRange};
use crate::types::{ClusterName, Fwmark, Weight};

/// big_brother's relay offset: the relay fwmark is `fwmark + offset`.
pub const DEFAULT_OFFSET: u32 = 10_000;
/// big_brother's hard-coded maintenance real server.
pub const DEFAULT_DOWNPAGE: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 254, 254));
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_RAMP_UP_TIME: Duration = Duration::from_secs(60);
/// The health timeout when none is configured: 1 s, or half the check interval when
/// the interval is 2 s or less.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_API_PORT: u16 = 9292;
pub const DEFAULT_API_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_API_PORT);
pub const DEFAULT_DATA_DIR: &str = "/etc/big_brother";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/bigbro";
pub const DEFAULT_ANTI_ENTROPY_INTERVAL: Duration = Duration::from_secs(30);

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Model {
    /// Clusters in file order.
    pub clusters: Vec<Cluster>,
    /// Daemon-wide settings (the `bigbro:` section, then command-line flags).
    pub settings: Settings,
    /// Which spelling the file used.
    pub spelling: Spelling,
}

/// The configuration spellings bigbro reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spelling {
    /// big_brother's gem format: a `clusters:` list plus optional `_big_brother:` defaults.
    BigBrother,
    /// The older format from the big_brother talk: a map keyed by cluster name.
    ClusterMap,
}

/// Daemon-wide settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    pub api: Api,
    /// big_brother's `--data-dir`: holds the override files `up/<cluster>` and
    /// `down/<cluster>`.
    pub data_dir: PathBuf,
    /// Where bigbro keeps its own state between runs (API overrides and the like).
    pub state_dir: PathBuf,
    /// How often the reconciler compares the kernel with the desired state even when
    /// nothing changed, to repair hand edits.
    #[serde(serialize_with = "secs")]
    pub anti_entropy_interval: Duration,
    /// The IPVS connection-synchronisation daemon to run, if any.
    pub sync_daemon: Option<SyncDaemon>,
    /// The dummy interface bigbro owns and puts the VIP addresses on (`bigbro0`).
    pub vip_interface: String,
}

/// The HTTP API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Api {
    pub listen: SocketAddr,
    /// File holding the bearer token that mutating requests must present when the API
    /// listens on a non-loopback address.
    pub token_file: Option<PathBuf>,
}

/// IPVS connection synchronisation (`ipvsadm --start-daemon`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncDaemon {
    pub role: SyncRole,
    /// Interface the sync messages are sent or received on.
    pub interface: String,
    /// `--syncid`: tells several LVS clusters on one network apart (0..=255).
    pub syncid: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncRole {
    Master,
    Backup,
    /// Both at once, so either director can take over and hand back.
    Both,
}

/// One cluster: one IPVS fwmark service (plus a relay service when multi-datacenter).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cluster {
    pub name: ClusterName,
    pub fwmark: Fwmark,
    pub scheduler: Scheduler,
    #[serde(serialize_with = "secs")]
    pub check_interval: Duration,
    pub backend_mode: BackendMode,
    /// Linear ramp of new and recovering nodes; zero disables it.
    #[serde(serialize_with = "secs")]
    pub ramp_up_time: Duration,
    /// The downpage real server added when the cluster's total weight reaches 0
    /// (`has_downpage: true`), or `None` when the cluster has no downpage.
    pub downpage: Option<IpAddr>,
    /// Remote (interpol) nodes may miss this many polls at weight 0 before removal.
    pub max_down_ticks: u32,
    /// Remote load balancers in these `lb_source_location`s are ignored.
    pub non_egress_locations: Vec<String>,
    pub nagios: Option<Nagios>,
    /// Relay fwmark offset (relay = fwmark + offset); used when `multi_datacenter`.
    pub offset: u32,
    /// Whether the relay service `fwmark + offset` exists (big_brother did this for every
    /// active_active cluster; bigbro makes it opt-in).
    pub multi_datacenter: bool,
    pub forwarding: Forwarding,
    pub health: HealthCheck,
    /// Addresses whose packets bigbro marks with this cluster's fwmark; empty when the
    /// marking is done elsewhere (as with big_brother).
    pub vips: Vec<Vip>,
    /// Whether bigbro puts the vips' addresses on its interface while the cluster runs.
    pub vip_mode: VipMode,
    /// Local real servers, in file order.
    pub nodes: Vec<Node>,
    /// interpol endpoints for remote load balancers (multi-datacenter discovery).
    pub interpol: Vec<InterpolNode>,
    /// Address family of the service, its nodes and its vips.
    #[serde(serialize_with = "family")]
    pub family: Family,
    /// Persistence, scheduler flags and one-packet scheduling of the cluster's services.
    pub service_options: ServiceOptions,
    /// The weight a node enters IPVS at before its first probe answers; `None` keeps
    /// big_brother's: 1 when the cluster starts, 0 for a node a reload adds to a running
    /// cluster (see [`Cluster::initial_weight`]).
    pub start_weight: Option<Weight>,
}

/// Options of a cluster's IPVS services (main and relay) that `ipvsadm -A`/`-E` set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServiceOptions {
    /// `ipvsadm -p TIMEOUT -M NETMASK`, when set.
    pub persistence: Option<Persistence>,
    /// `ipvsadm -b`: each flag belongs to the cluster's scheduler (checked).
    pub scheduler_flags: Vec<SchedulerFlag>,
    /// `ipvsadm -o`: each UDP packet is scheduled on its own (no connection entry kept).
    /// On a fwmark service the kernel applies it to UDP packets only; TCP and SCTP
    /// traffic of the same mark is scheduled per connection as always.
    pub one_packet: bool,
}

/// Client persistence (`ipvsadm -p`, `-M`): a client's new connections go to the real
/// server it last used while its previous ones are younger than `timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Persistence {
    /// Seconds (1 to 31 days, ipvsadm's range).
    pub timeout: u32,
    /// Clients are grouped by this many leading address bits (`-M`): 32 (IPv4) or 128
    /// (IPv6) keeps each client address on its own.
    pub prefix_len: u8,
}

/// A scheduler flag (`ipvsadm -b`); each belongs to one scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerFlag {
    /// sh: pick another server when the hashed one is unavailable (weight 0 or over its
    /// upper threshold).
    ShFallback,
    /// sh: hash the source port too.
    ShPort,
    /// mh: as `sh-fallback`, for maglev hashing.
    MhFallback,
    /// mh: as `sh-port`, for maglev hashing.
    MhPort,
}

impl SchedulerFlag {
    pub const ALL: [SchedulerFlag; 4] = [
        SchedulerFlag::ShFallback,
        SchedulerFlag::ShPort,
        SchedulerFlag::MhFallback,
        SchedulerFlag::MhPort,
    ];

    /// ipvsadm's name for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            SchedulerFlag::ShFallback => "sh-fallback",
            SchedulerFlag::ShPort => "sh-port",
            SchedulerFlag::MhFallback => "mh-fallback",
            SchedulerFlag::MhPort => "mh-port",
        }
    }

    /// The scheduler it belongs to.
    pub const fn scheduler(self) -> Scheduler {
        match self {
            SchedulerFlag::ShFallback | SchedulerFlag::ShPort => Scheduler::Sh,
            SchedulerFlag::MhFallback | SchedulerFlag::MhPort => Scheduler::Mh,
        }
    }
}

/// What bigbro does with a running cluster's vip addresses besides marking their packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VipMode {
    /// Each vip address is a /32 (/128) on bigbro's interface (`bigbro.vip_interface`),
    /// so the director accepts its traffic as local.
    #[default]
    Address,
    /// The addresses are managed elsewhere (pacemaker's IPaddr2, keepalived...): bigbro
    /// marks the packets and adds no address.
    None,
}

impl VipMode {
    /// Whether the vip addresses go on bigbro's interface.
    pub fn owns_addresses(self) -> bool {
        self == VipMode::Address
    }
}

/// The IPVS schedulers the kernel ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Fo,
    Ovf,
    Mh,
    Twos,
}

impl Scheduler {
    pub const ALL: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
        Scheduler::Twos,
    ];

    /// The kernel's name for it (`ipvsadm -s NAME`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::Twos => "twos",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendMode {
    /// Every healthy node takes traffic, weighted by health.
    ActiveActive,
    /// Only the best node (lowest priority, healthy) is in IPVS.
    ActivePassive,
}

/// How IPVS forwards packets to the real servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Forwarding {
    /// IP-in-IP tunnel: big_brother's only mode.
    Ipip,
    /// Generic UDP Encapsulation to `port` on the real server.
    Gue { port: u16, checksum: TunnelChecksum },
    /// GRE tunnel.
    Gre { checksum: TunnelChecksum },
    /// Direct routing (the real servers share the VIP on a shared segment).
    Dr,
    /// NAT (masquerading); replies must come back through the director.
    Nat,
}

/// Checksums on GUE/GRE tunnel packets (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelChecksum {
    None,
    Csum,
    Remcsum,
}

/// How a node's health is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// litmus, http or tcp: the health module's own kind, so the daemon hands it to the
    /// prober as it is.
    pub kind: ProbeKind,
    /// Per-probe timeout; always shorter than the check interval.
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
    /// Good probes in a row before a down node counts as up again.
    pub rise: u32,
    /// Failed probes in a row before an up node counts as down.
    pub fall: u32,
}

/// A local real server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Real-server address, also the health-check host.
    pub address: IpAddr,
    /// Health-check port (fwmark services carry no real-server port).
    pub port: u16,
    /// Health-check URL path (starts with `/`).
    pub path: String,
    /// Active/passive preference: lower wins.
    pub priority: i64,
    /// Cap on the computed weight; `None` = no cap.
    pub max_weight: Option<Weight>,
    /// `ipvsadm -x`: IPVS sends no new connection while the node holds this many; 0 =
    /// no limit.
    pub upper_threshold: u32,
    /// `ipvsadm -y`: below this many connections a node over its upper threshold takes
    /// new ones again; 0 = the kernel's choice (three quarters of the upper threshold).
    pub lower_threshold: u32,
}

/// An interpol endpoint: polled at `http://address:port/fwmark/<fwmark>` for the remote
/// load balancers of the other datacenters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterpolNode {
    pub address: IpAddr,
    pub port: u16,
}

/// Nagios passive checks through `send_nsca`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Nagios {
    /// The NSCA server (`send_nsca -H`), a host name or address.
    pub server: String,
    /// The host name the check belongs to in Nagios.
    pub host: String,
    /// The service (check) name.
    pub check: String,
}

/// Traffic bigbro marks with the cluster's fwmark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vip {
    pub address: IpAddr,
    #[serde(serialize_with = "proto")]
    pub protocol: L4Proto,
    #[serde(serialize_with = "ports")]
    pub ports: PortRange,
    /// Only packets arriving on this interface, when set.
    pub interface: Option<String>,
}

impl Model {
    /// The cluster called `name`.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name.as_str() == name)
    }

    /// The cluster that owns `mark`, as its main fwmark (`false`) or its relay (`true`).
    pub fn cluster_by_fwmark(&self, mark: Fwmark) -> Option<(&Cluster, bool)> {
        self.clusters.iter().find_map(|c| {
            if c.fwmark == mark {
                Some((c, false))
            } else if c.relay_fwmark() == Some(mark) {
                Some((c, true))
            } else {
                None
            }
        })
    }
}

impl Cluster {
    /// `fwmark + offset` when the cluster has a relay service.
    pub fn relay_fwmark(&self) -> Option<Fwmark> {
        if !self.multi_datacenter {
            return None;
        }
        self.fwmark
            .get()
            .checked_add(self.offset)
            .and_then(Fwmark::new)
    }

    pub fn is_active_passive(&self) -> bool {
        self.backend_mode == BackendMode::ActivePassive
    }

    /// The local node with this address.
    pub fn node(&self, address: IpAddr) -> Option<&Node> {
        self.nodes.iter().find(|n| n.address == address)
    }

    /// The weight a node enters IPVS at before its first probe: `start_weight`, else
    /// big_brother's 1 for the nodes of a cluster being started (`adding` false) and 0
    /// for a node added to a cluster already running (`adding` true).
    pub fn initial_weight(&self, adding: bool) -> Weight {
        self.start_weight.unwrap_or(if adding {
            Weight::ZERO
        } else {
            Weight::clamped(1)
        })
    }

    /// Local nodes in active/passive preference order: lowest `priority` first, ties
    /// broken by numeric address (big_brother compared addresses as strings).
    pub fn nodes_by_priority(&self) -> Vec<&Node> {
        let mut nodes: Vec<&Node> = self.nodes.iter().collect();
        nodes.sort_by_key(|n| (n.priority, n.address));
        nodes
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn family<S: serde::Serializer>(f: &Family, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    })
}

fn proto<S: serde::Serializer>(p: &L4Proto, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

fn ports<S: serde::Serializer>(p: &PortRange, s: S) -> Result<S::Ok, S::Error> {
    if p.first == p.last {
        s.serialize_str(&p.first.to_string())
    } else {
        s.serialize_str(&format!("{}-{}", p.first, p.last))
    }
}

/// `2 s`, `0.5 s`, `1.25 s`: how durations appear in messages and plans.
pub fn fmt_secs(d: Duration) -> String {
    let mut text = format!("{}.{:09}", d.as_secs(), d.subsec_nanos());
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    format!("{text} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_without_noise() {
        assert_eq!(fmt_secs(Duration::from_secs(2)), "2 s");
        assert_eq!(fmt_secs(Duration::from_millis(500)), "0.5 s");
        assert_eq!(fmt_secs(Duration::from_millis(1250)), "1.25 s");
        assert_eq!(fmt_secs(Duration::ZERO), "0 s");
    }

    #[test]
    fn scheduler_names_round_trip() {
        let names: Vec<_> = Scheduler::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names.join(" "),
            "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos"
        );
    }
}
