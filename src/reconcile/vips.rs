//! The VIP addresses on bigbro's own interface, reconciled like IPVS and the mark rules:
//! read the namespace's addresses, diff them against the addresses the running clusters
//! want (the ownership rule is `src/route/diff.rs`), apply the changes to the owned
//! interface, and report what was done, what failed (each error naming its operation and
//! object) and which wanted VIPs were refused because they are already a foreign local
//! address.
//!
//! One pass, without memory: keeping what it found for the status, and deciding when to
//! run one, is the [`super::Reconciler`]'s job. It must never touch an address outside the
//! owned interface: the ops come only from `route::diff`, and `apply` is handed the owned
//! interface alone.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::route::{self, diff, AddrOp, Conflict, Observed, RouteKernel};

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
/// nothing else.
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
    let owned = match kernel.ensure_interface(interface).await {
        Ok(i) => i,
        Err(e) => {
            report.failures.push(e);
            return report;
        }
    };
    let observed = match kernel.addresses().await {
        Ok(addrs) => Observed::split(&owned, &addrs),
        Err(e) => {
            report.failures.push(e);
            return report;
        }
    };
    let plan = diff(wanted, &observed);
    let mut present = observed.vips();
    let results = kernel.apply(&owned, &plan.ops).await;
    for (op, result) in plan.ops.into_iter().zip(results) {
        match result {
            Ok(()) => {
                match op {
                    AddrOp::Add(addr) => present.insert(addr),
                    AddrOp::Remove { addr, prefix_len } => {
                        prefix_len == route::model::host_prefix(&addr) && present.remove(&addr)
                    }
                };
                report.applied.push(op);
            }
            Err(e) => report.failures.push(e),
        }
    }
    report.present = Some(present);
    report.conflicts = plan.conflicts;
    report
}
