//! IPVS over generic netlink: the typed model of services and destinations, their wire
//! codecs (mirroring `include/uapi/linux/ip_vs.h`), and an async client with batching.
//!
//! This module knows nothing of clusters, health or weights policy. Everything in bigbro
//! that touches IPVS (reconciler, `bigbro ipvsadm`, tests) goes through it.

pub mod model;
pub mod save;

pub use model::*;
