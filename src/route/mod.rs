//! Route netlink for bigbro's VIPs: the dummy interface bigbro owns (`bigbro0` unless the
//! caller names another) and the VIP addresses on it, each a /32 or /128 (IPv6 with
//! `nodad`), so that the director accepts the VIP's traffic as local and a routing daemon
//! can announce what is on the interface. Built on the `rtnetlink` crate (over the same
//! netlink-proto and netlink-sys as `nft`).
//!
//! This module knows nothing of clusters, health, fwmarks or configuration: it is handed
//! an interface name and a set of addresses. It must never touch an interface, address,
//! rule or route it does not own: it creates and sets up only its own dummy interface
//! (a name held by any other kind of interface is refused with nothing changed), adds and
//! removes addresses only on that interface, and reports a VIP that is already a local
//! address elsewhere as a [`Conflict`] instead of adding or removing it. It writes no
//! rules or routes at all, and sets no sysctl: with the kernel's default `arp_ignore=0` the
//! director answers ARP (and ND) for a VIP on `bigbro0` from every interface; whether it
//! should (`arp_ignore`, `arp_announce`) is the operator's choice, not this module's.
//!
//! Layers, bottom up: `model` (`Interface`, `LocalAddr`, `AddrOp`), `message` (the
//! requests as whole netlink messages, iproute2's attribute order, and the reply parsers;
//! checked byte for byte against `ip` in `golden_tests.rs`), `error` (errno → meaning,
//! naming operation and object), `client` (`Client`, one rtnetlink connection), `diff`
//! (the pure ownership rule: desired vs observed → ops and conflicts), `kernel` (the
//! `RouteKernel` seam, the real client and an in-memory fake for unit tests), `sync` (one
//! pass: ensure, read, diff, apply, report).

pub mod client;
pub mod diff;
pub mod error;
pub mod kernel;
pub mod message;
pub mod model;
pub mod sync;

pub use client::Client;
pub use diff::{diff, Conflict, Observed, Plan};
pub use error::{Error, Operation};
#[cfg(any(test, feature = "testing"))]
pub use kernel::FakeRoute;
pub use kernel::RouteKernel;
pub use model::{AddrOp, Interface, Link, LocalAddr, DEFAULT_INTERFACE};
pub use sync::{sync, Outcome};

#[cfg(test)]
mod golden_tests;
