//! The daemon: `bigbro daemon` joins the configuration, the health probes and weight
//! policy, the reconciler, IPVS and nf_tables into one running controller.
//!
//! [`Handle`] is its control and query interface (the HTTP API, the signal handlers and
//! tests use it); `controller` is the one task that owns the daemon's state (the
//! configuration, the running clusters, the weights it programs) and runs its event loop
//! and commands (`controller/lifecycle.rs`, `controller/reload.rs`), handing every kernel
//! write to `reconcile::Reconciler`, which owns the kernel-facing state; `weights` keeps
//! the weight map from the weight driver's batches; the desired kernel state comes from
//! `src/desired/` (the one builder, shared with `bigbro check`); `adopt` takes a
//! running cluster over from the kernel; `params` maps configuration to the weight policy;
//! `interpol` and `nagios` are big_brother's multi-datacenter discovery and passive checks;
//! `kernel` connects lazily to IPVS and nf_tables; `notify` speaks systemd's notification
//! protocol; `options` is how it runs; `run` is the `bigbro daemon` entry point with its
//! signal handling; `metrics` and `status` are what it shows; `testing` runs it on
//! in-memory fakes for tests of what sits on top of the handle.
//!
//! The daemon never writes to the kernel except through `reconcile`, never touches a
//! service or table it does not own, and leaves IPVS and nf_tables as they are when it
//! stops, so traffic keeps flowing while it restarts.

mod adopt;
pub mod controller;
pub mod handle;
pub mod interpol;
pub mod kernel;
pub mod metrics;
pub mod nagios;
pub mod notify;
pub mod options;
pub mod params;
pub mod run;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod weights;

#[cfg(test)]
mod controller_tests;

pub use controller::{spawn, CliOverrides, Options};
pub use handle::{Error, Handle, ReloadReport, StartOutcome, StopOutcome};
pub use metrics::{Metrics, MetricsSnapshot};
pub use notify::Notifier;
pub use status::{
    ClusterState, ClusterStatus, ClusterSummary, DaemonStatus, DownpageStatus, KernelDest,
    KernelService, MarksStatus, NodeStatus, PassStatus, ReloadStatus, RemoteNodeStatus, Trigger,
};
