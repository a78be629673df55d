//! What the builder's tests share: models from YAML, weights and running sets from short
//! lists, the desired state as `ipvsadm -S -n` text, and two configurations (an
//! active_active pair with downpage and relay, an active_passive trio).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Running, Weights};
use crate::config::{parse, Model};
use crate::ipvs::save::save_text;
use crate::reconcile::Desired;
use crate::types::{ClusterName, Weight};
use crate::weight::NodeKey;

pub fn model(text: &str) -> Model {
    parse("t.yml", text).unwrap_or_else(|e| panic!("{e}"))
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Weights of cluster `c`'s nodes, by address.
pub fn weights(c: &str, list: &[(&str, u64)]) -> Weights {
    list.iter()
        .map(|(a, w)| {
            (
                NodeKey::new(&ClusterName(c.into()), ip(a)),
                Weight::clamped(*w),
            )
        })
        .collect()
}

/// The desired state in `ipvsadm -S -n` form, in key order.
pub fn text(d: &Desired) -> String {
    let state: Vec<_> = d
        .services
        .values()
        .map(|s| (s.service.clone(), s.dests.values().cloned().collect()))
        .collect();
    save_text(&state)
}

/// These clusters running, nothing learned about them yet.
pub fn running(names: &[&str]) -> BTreeMap<ClusterName, Running> {
    names
        .iter()
        .map(|n| (ClusterName((*n).into()), Running::default()))
        .collect()
}

/// Two active_active clusters: web (downpage, relay, a vip) and db.
pub const AA: &str = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wrr
    has_downpage: true
    multi_datacenter: true
    vips: [{address: 192.0.2.10, port: 80}]
    nodes:
      - {address: 10.0.0.1, port: 9, path: /s}
      - {address: 10.0.0.2, port: 9, path: /s}
  - cluster_name: db
    fwmark: 8
    scheduler: wlc
    vips: [{address: 192.0.2.11, port: 5432}]
    nodes: [{address: 10.0.1.1, port: 9, path: /s}]
";

/// One multi-datacenter cluster: a local node and an interpol endpoint.
pub const MULTI_DATACENTER: &str = "\
clusters:
  - cluster_name: web
    fwmark: 100
    scheduler: wrr
    multi_datacenter: true
    nodes:
      - {address: 127.0.0.1, port: 1, path: /}
      - {address: 172.27.3.1, port: 9, interpol: true}
";

/// A multi-datacenter cluster with a downpage and no local node, only an interpol
/// endpoint.
pub const REMOTE_ONLY: &str = "\
clusters:
  - cluster_name: far
    fwmark: 100
    scheduler: wrr
    has_downpage: true
    multi_datacenter: true
    nodes:
      - {address: 172.27.3.1, port: 9, interpol: true}
";

/// One active_passive cluster whose preferred nodes tie on priority.
pub const AP: &str = "\
clusters:
  - cluster_name: db
    fwmark: 5
    scheduler: wrr
    backend_mode: active_passive
    nodes:
      - {address: 10.0.0.10, port: 1, path: /, priority: 1}
      - {address: 10.0.0.9, port: 1, path: /, priority: 1}
      - {address: 10.0.0.2, port: 1, path: /, priority: 2}
";
