//! The reconciler: the only writer to the kernel. [`Reconciler`] (`reconciler.rs`) owns
//! the kernel-facing state across passes: the owned services as last read, the dirty set,
//! errors and backoff, orphans and drains; the daemon's controller only tells it when to
//! run and what is desired. Below it, one file per concern: `pass` (one IPVS pass, without
//! memory), `diff` (desired against observed, as operations), `kernel` (the IPVS seam and
//! its fake), `marks` (the nf_tables mark rules and their fake), `daemons` (the IPVS sync
//! daemons), `vips` (the VIP addresses on bigbro's interface, through `src/route/`).
//!
//! A pass reads the IPVS services bigbro owns (nothing else is read or touched), diffs
//! them against the desired state, and sends the minimal operations as one batch. It reads
//! in one of two ways ([`Reading`]): a dump of every service and then the destinations of
//! each owned one (a full pass, which also sees owned services that were added behind
//! bigbro's back), or one request per given service (a pass over the few services whose
//! desired state changed). Either way the diff is limited to the keys the pass was given:
//! a service outside them is never read, edited or deleted.
//!
//! Kernel errors are handled by looking again rather than by guessing: a pass whose batch
//! had failures reads once more and retries the diff, so "already exists" becomes an edit,
//! "no such service" becomes a re-creation, and a deletion of something already gone is
//! simply finished. What still fails after that is reported to the caller (logs, API,
//! metrics) and retried on the next pass; it is never ignored. A failed read changes
//! nothing in the kernel. After writing, a pass reads again exactly the services it wrote
//! to, so its report holds what the kernel has now without a second read of everything.
//! The nf_tables mark rules (`marks`), the IPVS sync daemons (`daemons`) and the VIP
//! addresses (`vips`) are reconciled the same way: read back, compare, change what differs.

pub mod daemons;
pub mod diff;
pub mod kernel;
pub mod marks;
pub mod pass;
pub mod reconciler;
#[cfg(test)]
mod reconciler_tests;
pub mod vips;

pub use diff::{diff, differs, Desired, DesiredService, Observed};
#[cfg(any(test, feature = "testing"))]
pub use kernel::FakeKernel;
pub use kernel::IpvsKernel;
#[cfg(any(test, feature = "testing"))]
pub use marks::FakeMarks;
pub use marks::MarkTable;
pub use pass::{observe, observe_each, pass, pass_with, PassReport, Reading};
pub use reconciler::{DaemonsOutcome, MarksOutcome, PassOutcome, Reconciler, Scope};
pub use vips::VipsReport;
