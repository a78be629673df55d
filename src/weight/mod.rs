//! Weight policy: rise/fall, ramp-up, caps and overrides turn health samples into IPVS
//! weights, per (cluster, node).
//!
//! `ramp` is big_brother's formula; `node` one node's state machine (rise/fall, ramp after
//! each recovery, adoption of a kernel weight); `overrides` the operator overrides and their
//! precedence; `policy` all nodes together, reporting only real weight changes; `snapshot`
//! the read-only views for the API; `files` the one piece of I/O (big_brother's up/down
//! override files); `driver` the tokio task that joins probes, policy and time.
//!
//! Everything but `files` and `driver` is pure: no I/O and no clock of its own (time is
//! passed in). Nothing here touches the kernel: weights leave as `WeightBatch`es for the
//! reconciler.

pub mod driver;
pub mod files;
pub mod node;
pub mod overrides;
pub mod policy;
pub mod ramp;
pub mod snapshot;

#[cfg(test)]
mod driver_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod test_util;

pub use driver::{spawn, DriverError, DriverHandle, DriverOptions, OverrideRequest, WeightBatch};
pub use files::{scan, OverrideFiles, ScanError};
pub use node::{Initial, LastProbe, NodeParams, Source, Status};
pub use overrides::{FileOverrides, Force, Override, FORCED_UP_WEIGHT};
pub use policy::{
    ClusterUpdate, Evaluation, NodeKey, NodeSpec, Policy, PolicyError, Scope, WeightChange,
};
pub use snapshot::{ClusterSnapshot, NodeSnapshot, OverrideView, PolicySnapshot, ProbeView};
