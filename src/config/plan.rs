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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::ipvs::save::save_text;
    use crate::types::Fwmark;

    #[test]
    fn active_passive_starts_with_the_preferred_node_only() {
        // priority first, then the numeric address (10.0.0.9 before 10.0.0.10, which a
        // string comparison would get wrong)
        let m = parse(
            "t",
            "\
clusters:
  - cluster_name: db
    fwmark: 5
    scheduler: wrr
    backend_mode: active_passive
    nodes:
      - {address: 10.0.0.10, port: 1, path: /, priority: 1}
      - {address: 10.0.0.11, port: 1, path: /, priority: 2}
      - {address: 10.0.0.9, port: 1, path: /, priority: 1}
",
        )
        .unwrap();
        assert_eq!(
            save_text(&m.initial_ipvs()),
            "-A -f 5 -s wrr\n-a -f 5 -r 10.0.0.9:0 -i -w 1 --tun-type ipip\n"
        );
    }

    #[test]
    fn multi_datacenter_adds_the_relay_with_local_nodes_only() {
        let m = parse(
            "t",
            "\
clusters:
  - cluster_name: web
    fwmark: 100
    scheduler: wrr
    multi_datacenter: true
    nodes:
      - {address: 127.0.0.1, port: 1, path: /}
      - {address: 172.27.3.1, port: 9, interpol: true}
",
        )
        .unwrap();
        assert_eq!(
            save_text(&m.initial_ipvs()),
            "-A -f 100 -s wrr\n-a -f 100 -r 127.0.0.1:0 -i -w 1 --tun-type ipip\n\
             -A -f 10100 -s wrr\n-a -f 10100 -r 127.0.0.1:0 -i -w 1 --tun-type ipip\n"
        );
        let keys = m.owned_services();
        assert_eq!(
            keys,
            [
                ServiceKey::fwmark_v4(Fwmark::new(100).unwrap()),
                ServiceKey::fwmark_v4(Fwmark::new(10100).unwrap())
            ]
        );
        let (c, relay) = m.cluster_by_fwmark(Fwmark::new(10100).unwrap()).unwrap();
        assert_eq!((c.name.as_str(), relay), ("web", true));
        assert!(m.cluster_by_fwmark(Fwmark::new(7).unwrap()).is_none());
        assert!(m.cluster("web").is_some() && m.cluster("nope").is_none());
    }

    #[test]
    fn forwarding_methods_map_to_ipvs() {
        let base = "clusters:\n  - {cluster_name: a, fwmark: 1, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}], ";
        let plan = |extra: &str| {
            let m = parse("t", &format!("{base}{extra}}}\n")).unwrap();
            save_text(&m.initial_ipvs())
                .lines()
                .nth(1)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            plan("forwarding: ipip"),
            "-a -f 1 -r 10.0.0.1:0 -i -w 1 --tun-type ipip"
        );
        assert_eq!(plan("forwarding: dr"), "-a -f 1 -r 10.0.0.1:0 -g -w 1");
        assert_eq!(plan("forwarding: nat"), "-a -f 1 -r 10.0.0.1:0 -m -w 1");
        assert_eq!(
            plan("forwarding: gre, tunnel_checksum: remcsum"),
            "-a -f 1 -r 10.0.0.1:0 -i -w 1 --tun-type gre --tun-remcsum"
        );
        assert_eq!(
            plan("forwarding: gue, gue_port: 5555"),
            "-a -f 1 -r 10.0.0.1:0 -i -w 1 --tun-type gue --tun-port 5555 --tun-nocsum"
        );
    }

    #[test]
    fn vips_become_mark_rules() {
        let m = parse(
            "t",
            "\
clusters:
  - cluster_name: web
    fwmark: 255
    scheduler: wrr
    vips:
      - {address: 192.0.2.10, port: 443}
      - {address: 192.0.2.10, protocol: udp, port: 8000-8080, interface: eth0}
    nodes: [{address: 10.0.0.1, port: 1, path: /}]
",
        )
        .unwrap();
        assert_eq!(
            nft_text(&m),
            "table ip bigbro {\n\tchain prerouting {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tip daddr 192.0.2.10 tcp dport 443 meta mark set 0x000000ff\n\t\tip daddr 192.0.2.10 udp dport 8000-8080 iifname \"eth0\" meta mark set 0x000000ff\n\t}\n}\n"
        );
    }
}
