//! The VIP addresses bigbro puts on its own interface (`bigbro.vip_interface`, `bigbro0`):
//! each distinct vip address of every running cluster with `vip_mode: address`, as a /32
//! or /128. A vip address shared by two clusters (different ports) is one address, held
//! while either runs. The route layer (`src/route/`) turns the set into `ip addr` changes.
//!
//! Pure, like the rest of this module: it never reads the kernel, and it never names an
//! address of a cluster that is not running (a stopped cluster's VIPs are simply absent,
//! which the route diff turns into removing them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::Running;
use crate::config::{Cluster, Model};
use crate::route::AddrOp;
use crate::types::ClusterName;

/// Whether `c`'s vip addresses go on bigbro's interface while it runs.
fn owns_addresses(c: &Cluster) -> bool {
    !c.vips.is_empty() && c.vip_mode.owns_addresses()
}

/// Whether bigbro manages VIP addresses at all with `model`: some cluster, running or not,
/// has vips with `vip_mode: address`. When none has, the route layer is never called (no
/// interface is created), as big_brother's deployments route outside bigbro.
pub fn manages_addresses(model: &Model) -> bool {
    model.clusters.iter().any(owns_addresses)
}

/// The addresses the running clusters want on bigbro's interface.
pub fn vip_addresses(model: &Model, running: &BTreeMap<ClusterName, Running>) -> BTreeSet<IpAddr> {
    model
        .clusters
        .iter()
        .filter(|c| owns_addresses(c) && running.contains_key(&c.name))
        .flat_map(|c| c.vips.iter().map(|v| v.address))
        .collect()
}

/// `addrs` as the `ip addr add` commands that put them on `interface`, one a line.
pub fn ip_commands(addrs: &BTreeSet<IpAddr>, interface: &str) -> String {
    addrs
        .iter()
        .map(|a| AddrOp::Add(*a).ip_command(interface) + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::test_util::model;

    const TWO: &str = "\
clusters:
  - cluster_name: web
    fwmark: 1
    scheduler: rr
    vips:
      - {address: 192.0.2.10, port: 80}
      - {address: 192.0.2.10, port: 443}
    nodes: [{address: 10.0.0.1, port: 1, path: /}]
  - cluster_name: api
    fwmark: 2
    scheduler: rr
    vips: [{address: 192.0.2.10, port: 8080}, {address: 192.0.2.11, port: 80}]
    nodes: [{address: 10.0.0.1, port: 1, path: /}]
  - cluster_name: kept
    fwmark: 3
    scheduler: rr
    vip_mode: none
    vips: [{address: 192.0.2.12, port: 80}]
    nodes: [{address: 10.0.0.1, port: 1, path: /}]
";

    fn running(names: &[&str]) -> BTreeMap<ClusterName, Running> {
        names
            .iter()
            .map(|n| (ClusterName(n.to_string()), Running::default()))
            .collect()
    }

    fn addrs(v: &[&str]) -> BTreeSet<IpAddr> {
        v.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn running_clusters_with_vip_mode_address_want_each_distinct_address_once() {
        let m = model(TWO);
        assert!(manages_addresses(&m));
        let all = running(&["web", "api", "kept"]);
        assert_eq!(
            vip_addresses(&m, &all),
            addrs(&["192.0.2.10", "192.0.2.11"])
        );
        // The shared address stays while either cluster runs; a stopped one's go.
        assert_eq!(
            vip_addresses(&m, &running(&["web", "kept"])),
            addrs(&["192.0.2.10"])
        );
        assert!(vip_addresses(&m, &running(&["kept"])).is_empty());
        assert_eq!(
            ip_commands(&vip_addresses(&m, &all), "bigbro0"),
            "ip addr add 192.0.2.10/32 dev bigbro0\nip addr add 192.0.2.11/32 dev bigbro0\n"
        );
    }

    #[test]
    fn without_such_vips_bigbro_manages_no_address() {
        let m = model(
            "clusters:\n  - {cluster_name: a, fwmark: 1, scheduler: rr, vip_mode: none, \
             vips: [{address: 192.0.2.1, port: 1}], nodes: [{address: 10.0.0.1, port: 1, path: /}]}\n  \
             - {cluster_name: b, fwmark: 2, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}\n",
        );
        assert!(!manages_addresses(&m));
    }
}
