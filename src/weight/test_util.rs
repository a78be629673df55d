//! Small builders shared by the weight policy and driver tests.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{Initial, NodeKey, NodeParams, NodeSpec};
use crate::health::{ProbeSettings, Target};
use crate::types::{ClusterName, Weight};

pub const S: fn(u64) -> Duration = Duration::from_secs;

pub fn w(n: u64) -> Weight {
    Weight::clamped(n)
}

pub fn cluster(name: &str) -> ClusterName {
    ClusterName(name.into())
}

pub fn addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

pub fn target(n: u8) -> Target {
    Target::litmus(addr(n), 9292, "/status").unwrap()
}

pub fn key(c: &str, n: u8) -> NodeKey {
    NodeKey::new(&cluster(c), addr(n))
}

/// Node `n` (10.0.0.n), probed every 2 s with a 1 s timeout, ramping over `ramp_s`.
pub fn spec(n: u8, ramp_s: u64, initial: Initial) -> NodeSpec {
    NodeSpec {
        addr: addr(n),
        params: NodeParams {
            ramp_up_time: S(ramp_s),
            ..NodeParams::new(target(n), ProbeSettings::default())
        },
        initial,
    }
}
