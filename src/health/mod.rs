//! Health probes (litmus, http, tcp): one task per distinct target, emitting samples.
//!
//! `target` says what to probe and how often; `probe` does one probe over `http` (a small
//! hand-written HTTP/1.1 client) and `parse` (the litmus health value); `scheduler` runs one
//! task per distinct target and sends `Sample`s on a channel; `scripted` is a prober for
//! tests on the paused clock; `thread` the daemon's dedicated probe thread. Probes know
//! nothing of clusters, weights or the kernel, and never read the environment (no proxy
//! can reroute them).

pub mod error;
pub mod http;
mod jitter;
pub mod parse;
pub mod probe;
pub mod scheduler;
#[cfg(any(test, feature = "testing"))]
pub mod scripted;
pub mod target;
pub mod thread;

pub use error::{Phase, ProbeError};
pub use probe::{
    judge, probe, probe_until, reads_body, NetProber, ProbeResult, Prober, FULL_HEALTH,
};
pub use scheduler::{ProbeScheduler, Sample, SyncReport};
#[cfg(any(test, feature = "testing"))]
pub use scripted::{Script, ScriptedProber};
pub use target::{path_problem, PathProblem, ProbeKind, ProbeSettings, Target, TargetError};
pub use thread::ProbeThread;
