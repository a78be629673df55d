//! The desired kernel state: the one translation from the configuration [`Model`] to what
//! IPVS, nf_tables and bigbro's VIP interface should hold. The daemon's controller (`src/daemon/controller.rs`)
//! builds it on every pass and hands it to the reconciler (`src/reconcile/`); `bigbro check`
//! builds it for "every cluster just started" and prints it (`plan.rs`). One builder, so
//! the plan a user reads before starting the daemon is the state the daemon asks for.
//!
//! Inputs: the model, which clusters run with what the daemon learned about them
//! ([`Running`]: the active node of an active_passive cluster, the remote load balancers
//! interpol reported), and the local nodes' weights ([`Weights`]). Output: the [`Desired`]
//! IPVS services with their destinations, the nf_tables mark rules, and the VIP addresses
//! on bigbro's interface.
//!
//! Files, one concern each:
//! - `objects.rs`: one cluster's kernel objects: service keys, services, destinations
//!   (the forwarding method), mark rules; the keys the configuration owns.
//! - `services.rs`: the services a running cluster wants (its local nodes, or the active
//!   node alone when active_passive; its remote load balancers; its downpage when its total
//!   weight is 0; its relay service), and the whole desired IPVS state.
//! - `active.rs`: the active_passive choice.
//! - `addrs.rs`: the VIP addresses the running clusters want on bigbro's interface.
//! - `drain.rs`: destinations leaving a service drain at weight 0 before they go, and the
//!   rebuild of only the clusters whose inputs changed.
//! - `plan.rs`: what `bigbro check` prints: this builder's output for every cluster started
//!   at big_brother's starting weight with no remote node known yet, in configuration order.
//!
//! Why a module of its own rather than a part of `config` or `daemon`: `config` validates
//! and stays free of kernel objects (it uses small shared values such as `ipvs::Family` and
//! `nft::L4Proto`, and builds no `Service`, `Dest` or `MarkRule`); `daemon` runs tasks.
//! Between the two, `bigbro check` calls the very code the daemon calls, without a daemon.
//! The drain state ([`Draining`], [`Built`]) is kept by whoever runs the passes; the rules
//! that apply it are here because a drain changes what is desired, not how the kernel is
//! written.
//!
//! Pure: no I/O and no clock of its own (drains are given `now`). It never names a service
//! outside the configuration (a cluster that is not running is simply absent, which the diff
//! turns into deleting its services), and it never decides a weight: weights come in, except
//! big_brother's starting weight ([`INITIAL_WEIGHT`], for `bigbro check`) and the downpage's
//! fixed 1.

mod active;
mod addrs;
mod drain;
mod objects;
pub mod plan;
mod services;

#[cfg(test)]
mod agreement_tests;
#[cfg(test)]
mod options_tests;
#[cfg(test)]
mod test_util;

use std::collections::BTreeMap;
use std::net::IpAddr;

pub use active::choose_active;
pub use addrs::{ip_commands, manages_addresses, vip_addresses};
pub use drain::{rebuild, Built, Drain, Draining};
pub use objects::{mark_rules, owned, ClusterKeys};
pub use services::{build, combined_weight, downpage_wanted, weight_of};

use crate::types::Weight;
use crate::weight::NodeKey;
#[cfg(doc)]
use crate::{config::Model, reconcile::Desired};

/// big_brother's weight for a node whose health is not known yet: "it is preferable to
/// temporarily misdirect to a backend that may be down than wait for initial health
/// checks to complete".
pub const INITIAL_WEIGHT: Weight = Weight::clamped(1);

/// A remote load balancer learned from interpol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// interpol's health (0 while missing).
    pub weight: Weight,
    /// Consecutive polls it was missing from.
    pub down_ticks: u32,
    pub location: Option<String>,
}

/// What the daemon keeps for a running cluster besides its nodes' weights.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Running {
    /// active_passive: the node in IPVS.
    pub active: Option<IpAddr>,
    /// Remote load balancers, by address.
    pub remote: BTreeMap<IpAddr, Remote>,
}

/// Current weights of every running cluster's local nodes.
pub type Weights = BTreeMap<NodeKey, Weight>;
