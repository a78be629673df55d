//! IPVS over generic netlink: the typed model of services and destinations, their wire
//! codecs (mirroring `include/uapi/linux/ip_vs.h`), and an async client with batching.
//!
//! This module knows nothing of clusters, health or weights policy. Everything in bigbro
//! that touches IPVS (reconciler, `bigbro ipvsadm`, tests) goes through it.
//!
//! Layers, bottom up: `uapi` (the header's numbers), `nla` (attribute sets with
//! emit/parse), `message` (the genl payload), `convert` (wire ↔ model, ipvsadm's
//! attribute order), `op` (`Op`, one change), `error` (errno → meaning), `transport`
//! (socket, sequence numbers, batches), `client` (`Client`). `save` prints the model in
//! ipvsadm's save format.

pub mod client;
pub mod convert;
pub mod error;
pub mod message;
pub mod model;
pub mod nla;
pub mod op;
pub mod save;
pub mod transport;
pub mod uapi;

pub use client::Client;
pub use error::{Error, Operation};
pub use model::*;
pub use op::Op;

#[cfg(test)]
mod golden_tests;
