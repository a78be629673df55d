//! One cluster's kernel objects: the keys of its fwmark and relay services, the services
//! themselves (with the cluster's persistence, scheduler flags and one-packet option), a
//! destination of it at a given weight (with the cluster's forwarding method, and a local
//! node's connection thresholds), and the nf_tables rules that mark its vips; and every service key the
//! configuration owns, which is all the reconciler may ever read or write.
//!
//! The service keys are a trait on [`Cluster`] ([`ClusterKeys`]) because readers of the
//! model well beyond this module (the controller, status) ask a cluster for its keys, while
//! `config` itself knows nothing of IPVS keys. Nothing here decides which destinations a
//! service has or at what weight: that is `services.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::Running;
use crate::config::{Cluster, Forwarding, Model, Node, SchedulerFlag, TunnelChecksum};
use crate::ipvs::{
    Dest, Family, ForwardMethod, Service, ServiceFlags, ServiceKey, Tunnel, TunnelFlags,
};
use crate::nft::MarkRule;
use crate::types::{ClusterName, Weight};

/// The IPVS keys of a cluster's services.
pub trait ClusterKeys {
    /// The key of the cluster's fwmark service.
    fn service_key(&self) -> ServiceKey;
    /// The key of the relay service (`fwmark + offset`), when the cluster is
    /// multi-datacenter.
    fn relay_service_key(&self) -> Option<ServiceKey>;
}

impl ClusterKeys for Cluster {
    fn service_key(&self) -> ServiceKey {
        ServiceKey::Fwmark {
            family: self.family,
            mark: self.fwmark,
        }
    }

    fn relay_service_key(&self) -> Option<ServiceKey> {
        self.relay_fwmark().map(|mark| ServiceKey::Fwmark {
            family: self.family,
            mark,
        })
    }
}

/// The cluster's fwmark service as IPVS should hold it.
pub fn service(c: &Cluster) -> Service {
    with_options(c, c.service_key())
}

/// The relay service (`fwmark + offset`, same scheduler and options), when
/// multi-datacenter.
pub fn relay_service(c: &Cluster) -> Option<Service> {
    c.relay_service_key().map(|key| with_options(c, key))
}

/// A service of the cluster: its scheduler, persistence (`-p`, `-M`), scheduler flags
/// (`-b`) and one-packet scheduling (`-o`); everything else as `ipvsadm -A` leaves it.
fn with_options(c: &Cluster, key: ServiceKey) -> Service {
    let mut svc = Service::new(key, c.scheduler.as_str());
    let options = &c.service_options;
    let mut flags = ServiceFlags::default();
    if let Some(p) = options.persistence {
        flags = flags.with(ServiceFlags::PERSISTENT);
        svc.timeout = p.timeout;
        svc.netmask = match c.family {
            Family::V4 => u32::MAX
                .checked_shl(32 - u32::from(p.prefix_len))
                .unwrap_or(0),
            Family::V6 => u32::from(p.prefix_len),
        };
    }
    if options.one_packet {
        flags = flags.with(ServiceFlags::ONEPACKET);
    }
    for flag in &options.scheduler_flags {
        // sh and mh share the bits: fallback is SCHED1, port is SCHED2.
        flags = flags.with(match flag {
            SchedulerFlag::ShFallback | SchedulerFlag::MhFallback => ServiceFlags::SH_FALLBACK,
            SchedulerFlag::ShPort | SchedulerFlag::MhPort => ServiceFlags::SH_PORT,
        });
    }
    svc.flags = flags;
    svc
}

/// How IPVS forwards to the cluster's real servers.
pub fn forward_method(c: &Cluster) -> ForwardMethod {
    let flags = |c: TunnelChecksum| match c {
        TunnelChecksum::None => TunnelFlags::NOCSUM,
        TunnelChecksum::Csum => TunnelFlags::CSUM,
        TunnelChecksum::Remcsum => TunnelFlags::REMCSUM,
    };
    match c.forwarding {
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

/// A real server of the cluster (remote load balancer or downpage) at `weight`: port 0
/// (fwmark services carry no port), the cluster's forwarding, no thresholds.
pub fn dest(c: &Cluster, address: IpAddr, weight: Weight) -> Dest {
    Dest {
        addr: address,
        port: 0,
        forward: forward_method(c),
        weight: weight.get(),
        upper_threshold: 0,
        lower_threshold: 0,
    }
}

/// A local node of the cluster at `weight`: as [`dest`], with the node's connection
/// thresholds (`-x`, `-y`).
pub fn node_dest(c: &Cluster, node: &Node, weight: Weight) -> Dest {
    Dest {
        upper_threshold: node.upper_threshold,
        lower_threshold: node.lower_threshold,
        ..dest(c, node.address, weight)
    }
}

/// The nf_tables rules that mark the cluster's vips with its fwmark.
pub fn cluster_mark_rules(c: &Cluster) -> Vec<MarkRule> {
    c.vips
        .iter()
        .map(|v| MarkRule {
            daddr: v.address,
            proto: v.protocol,
            ports: v.ports,
            iifname: v.interface.clone(),
            mark: c.fwmark.get(),
        })
        .collect()
}

/// The mark rules of the running clusters, in configuration order.
pub fn mark_rules(model: &Model, running: &BTreeMap<ClusterName, Running>) -> Vec<MarkRule> {
    model
        .clusters
        .iter()
        .filter(|c| running.contains_key(&c.name))
        .flat_map(cluster_mark_rules)
        .collect()
}

/// Every IPVS service key the configuration owns: each cluster's fwmark and relay
/// fwmark, running or not. The reconciler reads and writes these and nothing else.
pub fn owned(model: &Model) -> BTreeSet<ServiceKey> {
    model
        .clusters
        .iter()
        .flat_map(|c| std::iter::once(c.service_key()).chain(c.relay_service_key()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::plan;
    use crate::desired::test_util::{model, MULTI_DATACENTER};
    use crate::types::Fwmark;

    #[test]
    fn forwarding_methods_map_to_ipvs() {
        let base = "clusters:\n  - {cluster_name: a, fwmark: 1, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}], ";
        let plan = |extra: &str| {
            let m = model(&format!("{base}{extra}}}\n"));
            plan::ipvs_text(&m).lines().nth(1).unwrap().to_string()
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
    fn the_configuration_owns_every_main_and_relay_fwmark() {
        let m = model(MULTI_DATACENTER);
        let key = |n| ServiceKey::fwmark_v4(Fwmark::new(n).unwrap());
        assert_eq!(owned(&m), BTreeSet::from([key(100), key(10100)]));
        assert_eq!(m.clusters[0].service_key(), key(100));
        assert_eq!(m.clusters[0].relay_service_key(), Some(key(10100)));
        let (c, relay) = m.cluster_by_fwmark(Fwmark::new(10100).unwrap()).unwrap();
        assert_eq!((c.name.as_str(), relay), ("web", true));
        assert!(m.cluster_by_fwmark(Fwmark::new(7).unwrap()).is_none());
        assert!(m.cluster("web").is_some() && m.cluster("nope").is_none());
    }

    #[test]
    fn vips_become_mark_rules() {
        let m = model(
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
        );
        assert_eq!(
            plan::nft_text(&m),
            "table ip bigbro {\n\tchain prerouting {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tip daddr 192.0.2.10 tcp dport 443 meta mark set 0x000000ff\n\t\tip daddr 192.0.2.10 udp dport 8000-8080 iifname \"eth0\" meta mark set 0x000000ff\n\t}\n}\n"
        );
    }
}
