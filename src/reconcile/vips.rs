//! The VIP addresses on bigbro's own interface, reconciled like IPVS and the mark rules:
//! one `route::sync` (`src/route/sync.rs`) reads the namespace's addresses, diffs them
//! against the addresses the running clusters want (the ownership rule is
//! `src/route/diff.rs`), applies the changes to the owned interface, and reports what was
//! done, what failed (each error naming its operation and object) and which wanted VIPs
//! were refused because they are already a foreign local address.
//!
//! One pass, without memory: keeping what it found for the status, and deciding when to
//! run one, is the [`super::Reconciler`]'s job. It must never touch an address outside the
//! owned interface: it writes only through `route::sync`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::route::{self, AddrOp, Conflict, RouteKernel};

/// What one VIP pass found and did.
#[derive(Debug, Default)]
pub struct VipsReport {
    /// The owned interface's name.
    pub interface: String,
    /// The addresses the running clusters want there.
    pub wanted: BTreeSet<IpAddr>,
    /// The VIPs (/32, /128) on the owned interface when the pass ended; `None` when it
    /// could not read them.
    pub present: Option<BTreeSet<IpAddr>>,
    /// Changes the kernel accepted, in the order sent.
    pub applied: Vec<AddrOp>,
    /// What failed: the interface or the address dump (then nothing was changed), or
    /// single changes (the others went on). Retried on the next pass.
    pub failures: Vec<route::Error>,
    /// Wanted VIPs bigbro did not put on its interface (a foreign local address...).
    pub conflicts: Vec<Conflict>,
}

impl VipsReport {
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }

    /// Whether the owned interface holds exactly the wanted VIPs (conflicts aside).
    pub fn in_sync(&self) -> bool {
        let refused: BTreeSet<IpAddr> = self.conflicts.iter().map(Conflict::vip).collect();
        let expected: BTreeSet<IpAddr> = self.wanted.difference(&refused).copied().collect();
        self.is_clean()
            && self.present.as_ref().is_some_and(|p| {
                p.difference(&refused).copied().collect::<BTreeSet<_>>() == expected
            })
    }
}

/// Makes `interface` (created and set up if need be) hold exactly `wanted`, touching
/// nothing else: [`route::sync`], its outcome kept for the status.
pub async fn pass<R: RouteKernel>(
    kernel: &R,
    interface: &str,
    wanted: &BTreeSet<IpAddr>,
) -> VipsReport {
    let mut report = VipsReport {
        interface: interface.to_string(),
        wanted: wanted.clone(),
        ..VipsReport::default()
    };
    match route::sync(kernel, interface, wanted).await {
        Ok(outcome) => {
            report.present = Some(outcome.present);
            report.applied = outcome.applied;
            report.failures = outcome.failed;
            report.conflicts = outcome.conflicts;
        }
        Err(e) => report.failures.push(e),
    }
    report
}
