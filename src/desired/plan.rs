//! What `bigbro check` prints: the desired state this module's builder gives the
//! reconciler once every cluster is started, before any probe has answered. That is every
//! local node at big_brother's starting weight ([`INITIAL_WEIGHT`], as the controller's
//! start command seeds the weight policy), no remote load balancer known yet (interpol has
//! not answered), and the active node of an active_passive cluster chosen from those
//! weights by [`choose_active`], as every pass chooses it. The IPVS part is printed in
//! `ipvsadm -S -n` syntax, the nf_tables part in `nft` syntax, the VIP addresses as `ip
//! addr add` commands.
//!
//! It prints in configuration order (clusters in file order, each main service then its
//! relay; local nodes in file order, then remote load balancers, then the downpage), while
//! the reconciler's [`Desired`] is keyed by service and address: the order is for the
//! reader, the content is the builder's, unchanged. It never reads or writes the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{build, choose_active, ip_commands, mark_rules, vip_addresses, ClusterKeys};
use super::{manages_addresses, Running, Weights, INITIAL_WEIGHT};
use crate::config::Model;
use crate::ipvs::{save, Dest, Service};
use crate::nft::{self, MarkRule};
use crate::reconcile::Desired;
use crate::types::ClusterName;
use crate::weight::NodeKey;

/// The builder's inputs once every cluster of `model` is started and before any probe has
/// answered: every local node at [`INITIAL_WEIGHT`], no remote load balancer, and each
/// active_passive cluster's active node chosen from those weights.
pub fn all_started(model: &Model) -> (BTreeMap<ClusterName, Running>, Weights) {
    let weights: Weights = model
        .clusters
        .iter()
        .flat_map(|c| {
            c.nodes
                .iter()
                .map(|n| (NodeKey::new(&c.name, n.address), INITIAL_WEIGHT))
        })
        .collect();
    let running = model
        .clusters
        .iter()
        .map(|c| {
            let mut run = Running::default();
            if c.is_active_passive() {
                run.active = choose_active(c, None, &run, &weights);
            }
            (c.name.clone(), run)
        })
        .collect();
    (running, weights)
}

/// The builder's output for [`all_started`]: what the daemon asks the kernel for once
/// every cluster is started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The IPVS services and their destinations, as the reconciler is given them.
    pub desired: Desired,
    /// The nf_tables mark rules, in configuration order.
    pub marks: Vec<MarkRule>,
    /// The VIP addresses on bigbro's interface.
    pub addrs: BTreeSet<IpAddr>,
}

/// The plan of `model`: [`build`], [`mark_rules`] and [`vip_addresses`] on
/// [`all_started`].
pub fn plan(model: &Model) -> Plan {
    let (running, weights) = all_started(model);
    Plan {
        desired: build(model, &running, &weights),
        marks: mark_rules(model, &running),
        addrs: vip_addresses(model, &running),
    }
}

/// `desired`'s services and destinations in configuration order: clusters in file order,
/// each main service then its relay; in a service, the local nodes in file order, then the
/// other destinations (remote load balancers, the downpage last) by address.
pub fn in_config_order(model: &Model, desired: &Desired) -> Vec<(Service, Vec<Dest>)> {
    let mut out = Vec::new();
    for c in &model.clusters {
        let keys = std::iter::once(c.service_key()).chain(c.relay_service_key());
        for svc in keys.filter_map(|k| desired.services.get(&k)) {
            let mut dests: Vec<&Dest> = svc.dests.values().collect();
            dests.sort_by_key(|d| {
                let local = c.nodes.iter().position(|n| n.address == d.addr);
                let downpage = c.downpage == Some(d.addr);
                (local.unwrap_or(usize::MAX), downpage, d.addr, d.port)
            });
            out.push((svc.service.clone(), dests.into_iter().cloned().collect()));
        }
    }
    out
}

/// Only the IPVS part of the plan, in `ipvsadm -S -n` syntax (fit for `ipvsadm -R`).
pub fn ipvs_text(model: &Model) -> String {
    ipvs_part(model, &plan(model))
}

/// Only the nf_tables part of the plan, in `nft` syntax (fit for `nft -f`).
pub fn nft_text(model: &Model) -> String {
    nft::render(&plan(model).marks)
}

/// Only the VIP addresses, as the `ip addr add` commands that put them on bigbro's
/// interface (`ip -batch` takes them without the leading `ip`).
pub fn addrs_text(model: &Model) -> String {
    ip_commands(&plan(model).addrs, &model.settings.vip_interface)
}

/// ipvsadm's save lines, plus a real server's connection thresholds (`-x`, `-y`), which
/// `ipvsadm -S` leaves out but `ipvsadm -R` reads: the plan shows everything the daemon
/// will ask for.
fn ipvs_part(model: &Model, plan: &Plan) -> String {
    let mut out = String::new();
    for (svc, dests) in in_config_order(model, &plan.desired) {
        out.push_str(&save::service_line(&svc));
        out.push('\n');
        for d in dests {
            out.push_str(&save::dest_line(&svc.key, &d));
            if d.upper_threshold > 0 {
                out.push_str(&format!(" -x {}", d.upper_threshold));
            }
            if d.lower_threshold > 0 {
                out.push_str(&format!(" -y {}", d.lower_threshold));
            }
            out.push('\n');
        }
    }
    out
}

/// What `bigbro check` prints for a valid configuration: a summary, the IPVS state in
/// `ipvsadm -S -n` syntax, the nf_tables ruleset in `nft` syntax and the VIP addresses in
/// `ip addr` syntax.
pub fn render(model: &Model, file: &str) -> String {
    let plan = plan(model);
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
    let ipvs = ipvs_part(model, &plan);
    if ipvs.is_empty() {
        out.push_str("# (no clusters)\n");
    } else {
        out.push_str(&ipvs);
    }
    out.push_str("\n# nf_tables, as `nft list ruleset` shows bigbro's tables:\n");
    let rules = nft::render(&plan.marks);
    if rules.is_empty() {
        out.push_str(
            "# (no vips: bigbro marks no packets; mark them with the clusters' fwmarks yourself, as with big_brother)\n",
        );
    } else {
        out.push_str(&rules);
    }
    let interface = &model.settings.vip_interface;
    out.push_str(&format!(
        "\n# VIP addresses, as `ip addr` adds them to bigbro's dummy interface {interface}:\n"
    ));
    if !manages_addresses(model) {
        out.push_str(
            "# (no vips with vip_mode: address: bigbro adds no address and creates no interface)\n",
        );
    } else {
        out.push_str(&ip_commands(&plan.addrs, interface));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::test_util::{model, AP, MULTI_DATACENTER, REMOTE_ONLY};

    #[test]
    fn active_passive_starts_with_the_preferred_node_only() {
        // priority first, then the numeric address (10.0.0.9 before 10.0.0.10, which a
        // string comparison would get wrong)
        let m = model(AP);
        assert_eq!(
            ipvs_text(&m),
            "-A -f 5 -s wrr\n-a -f 5 -r 10.0.0.9:0 -i -w 1 --tun-type ipip\n"
        );
    }

    #[test]
    fn multi_datacenter_adds_the_relay_with_local_nodes_only() {
        let m = model(MULTI_DATACENTER);
        assert_eq!(
            ipvs_text(&m),
            "-A -f 100 -s wrr\n-a -f 100 -r 127.0.0.1:0 -i -w 1 --tun-type ipip\n\
             -A -f 10100 -s wrr\n-a -f 10100 -r 127.0.0.1:0 -i -w 1 --tun-type ipip\n"
        );
    }

    #[test]
    fn clusters_and_nodes_print_in_file_order_not_key_order() {
        // The reconciler's state is keyed by fwmark and address; the plan reads as the
        // file does.
        let m = model(
            "\
clusters:
  - cluster_name: b
    fwmark: 9
    scheduler: rr
    nodes:
      - {address: 10.0.0.20, port: 1, path: /}
      - {address: 10.0.0.3, port: 1, path: /}
  - cluster_name: a
    fwmark: 2
    scheduler: rr
    nodes: [{address: 10.0.0.1, port: 1, path: /}]
",
        );
        assert_eq!(
            ipvs_text(&m),
            "-A -f 9 -s rr\n\
             -a -f 9 -r 10.0.0.20:0 -i -w 1 --tun-type ipip\n\
             -a -f 9 -r 10.0.0.3:0 -i -w 1 --tun-type ipip\n\
             -A -f 2 -s rr\n\
             -a -f 2 -r 10.0.0.1:0 -i -w 1 --tun-type ipip\n"
        );
    }

    #[test]
    fn a_cluster_with_only_remote_nodes_starts_on_its_downpage() {
        // Started, it has no local weight and interpol has not answered yet: its total
        // weight is 0, so the daemon puts its downpage in, and the plan says so.
        let m = model(REMOTE_ONLY);
        assert_eq!(
            ipvs_text(&m),
            "-A -f 100 -s wrr\n\
             -a -f 100 -r 169.254.254.254:0 -i -w 1 --tun-type ipip\n\
             -A -f 10100 -s wrr\n"
        );
    }
}
