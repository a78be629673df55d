//! From a [`Model`] to kernel objects: the IPVS services and dests each cluster asks for
//! (as big_brother starts a cluster: every local node at weight 1, relay service when
//! multi-datacenter), the nf_tables mark rules for its vips, and the text `bigbro check`
//! prints for them.
//!
//! Pure translation: it never reads or writes the kernel, and never decides weights
//! beyond big_brother's starting weight of 1.

use crate::ipvs::{Dest, ForwardMethod, Service, ServiceKey, Tunnel, TunnelFlags};
use crate::nft::{self, MarkRule};
use crate::types::Weight;

use super::model::{Cluster, Forwarding, Model, TunnelChecksum};

/// big_brother's weight for a node whose health is not known yet: "it is preferable to
/// temporarily misdirect to a backend that may be down than wait for initial health
/// checks to complete".
pub const INITIAL_WEIGHT: u32 = 1;

impl Cluster {
    /// The IPVS key of the cluster's fwmark service.
    pub fn service_key(&self) -> ServiceKey {
        ServiceKey::Fwmark {
            family: self.family,
            mark: self.fwmark,
        }
    }

    /// The IPVS key of the relay service, when the cluster is multi-datacenter.
    pub fn relay_service_key(&self) -> Option<ServiceKey> {
        self.relay_fwmark().map(|mark| ServiceKey::Fwmark {
            family: self.family,
            mark,
        })
    }

    /// The cluster's fwmark service as IPVS should hold it.
    pub fn service(&self) -> Service {
        Service::new(self.service_key(), self.scheduler.as_str())
    }

    /// The relay service (`fwmark + offset`, same scheduler), when multi-datacenter.
    pub fn relay_service(&self) -> Option<Service> {
        self.relay_service_key()
            .map(|key| Service::new(key, self.scheduler.as_str()))
    }

    /// How IPVS forwards to this cluster's real servers.
    pub fn forward_method(&self) -> ForwardMethod {
        let flags = |c: TunnelChecksum| match c {
            TunnelChecksum::None => TunnelFlags::NOCSUM,
            TunnelChecksum::Csum => TunnelFlags::CSUM,
            TunnelChecksum::Remcsum => TunnelFlags::REMCSUM,
        };
        match self.forwarding {
            Forwarding::Ipip => ForwardMethod::Tunnel(Tunnel::Ipip),
            Forwarding::Gue { port, checksum } => ForwardMethod::Tunnel(Tunnel::Gue {
                port,
                flags: flags(checksum),
            }),
            Forwarding::Gre { checksum } => ForwardMethod::Tunnel(Tunnel::Gre {
                flags: flags(checksum),
            }),
            Forwarding::Dr => ForwardMethod::DirectRoute,
            Forwarding::Nat => ForwardMethod::Masquerade,
        }
    }

    /// A real server of this cluster (local node, remote load balancer or downpage) at
    /// `weight`: port 0 (fwmark services carry no port), the cluster's forwarding.
    pub fn dest(&self, address: std::net::IpAddr, weight: Weight) -> Dest {
        Dest {
            addr: address,
            port: 0,
            forward: self.forward_method(),
            weight: weight.get(),
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    /// What starting the cluster puts in IPVS: the service with every local node at
    /// weight 1 (active_active) or the preferred node only (active_passive), then the
    /// relay service with the same local nodes when multi-datacenter.
    pub fn initial_ipvs(&self) -> Vec<(Service, Vec<Dest>)> {
        let nodes: Vec<_> = if self.is_active_passive() {
            self.nodes_by_priority().into_iter().take(1).collect()
        } else {
            self.nodes.iter().collect()
        };
        let dests: Vec<Dest> = nodes
            .iter()
            .map(|n| self.dest(n.address, Weight::clamped(u64::from(INITIAL_WEIGHT))))
            .collect();
        let mut out = vec![(self.service(), dests.clone())];
        if let Some(relay) = self.relay_service() {
            out.push((relay, dests));
        }
        out
    }

    /// The nf_tables rules that mark this cluster's vips with its fwmark.
    pub fn mark_rules(&self) -> Vec<MarkRule> {
        self.vips
            .iter()
            .map(|v| MarkRule {
                daddr: v.address,
                proto: v.protocol,
                ports: v.ports,
                iifname: v.interface.clone(),
                mark: self.fwmark.get(),
            })
            .collect()
    }
}

impl Model {
    /// Every cluster's [`Cluster::initial_ipvs`], in file order.
    pub fn initial_ipvs(&self) -> Vec<(Service, Vec<Dest>)> {
        self.clusters
            .iter()
            .flat_map(Cluster::initial_ipvs)
            .collect()
    }

    /// Every cluster's mark rules, in file order.
    pub fn mark_rules(&self) -> Vec<MarkRule> {
        self.clusters.iter().flat_map(Cluster::mark_rules).collect()
    }
}

/// Only the IPVS part of the plan, in `ipvsadm -S -n` syntax (fit for `ipvsadm -R`).
pub fn ipvs_text(model: &Model) -> String {
    crate::ipvs::save::save_text(&model.initial_ipvs())
}

/// Only the nf_tables part of the plan, in `nft` syntax (fit for `nft -f`).
pub fn nft_text(model: &Model) -> String {
    nft::render(&model.mark_rules())
}

/// What `bigbro check` prints for a valid configuration: a summary, the IPVS state in
/// `ipvsadm -S -n` syntax and the nf_tables ruleset in `nft` syntax.
pub fn render(model: &Model, file: &str) -> String {
    let clusters = model.clusters.len();
    let nodes: usize = model.clusters.iter().map(|c| c.nodes.len()).sum();
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let mut out = format!(
        "# bigbro check: {file} is valid ({}, {})\n",
        plural(clusters, "cluster"),
        plural(nodes, "node")
    );
    out.push_str("\n# IPVS, as `ipvsadm -S -n` lists it once every cluster is started:\n");
    let ipvs = ipvs_text(model);
    if ipvs.is_empty() {
        out.push_str("# (no clusters)\n");
    } else {
        out.push_str(&ipvs);
    }
    out.push_str("\n# nf_tables, as `nft list ruleset` shows bigbro's tables:\n");
    let rules = nft_text(model);
    if rules.is_empty() {
        out.push_str(
            "# (no vips: bigbro marks no packets; mark them with the clusters' fwmarks yourself, as with big_brother)\n",
        );
    } else {
        out.push_str(&rules);
    }
    out
}
