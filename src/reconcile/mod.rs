//! The reconciler: the only writer to the kernel. A pass dumps the IPVS services bigbro
//! owns (nothing else is read or touched), diffs them against the desired state, and sends
//! the minimal operations as one batch.
//!
//! Kernel errors are handled by looking again rather than by guessing: a pass whose batch
//! had failures dumps once more and retries the diff, so "already exists" becomes an edit,
//! "no such service" becomes a re-creation, and a deletion of something already gone is
//! simply finished. What still fails after that is reported to the caller (logs, API,
//! metrics) and retried on the next pass; it is never ignored. A failed dump changes
//! nothing in the kernel. The nf_tables mark rules (`marks`) and the IPVS sync daemons
//! (`daemons`) are reconciled the same way: read back, compare, change what differs.

pub mod daemons;
pub mod diff;
pub mod kernel;
pub mod marks;

use std::collections::BTreeSet;

pub use diff::{diff, Desired, DesiredService, Observed};
pub use kernel::{FakeKernel, IpvsKernel};
pub use marks::{FakeMarks, MarkTable};

use crate::ipvs::{self, Op, ServiceKey};

/// How many dump–diff–apply rounds one pass may take before reporting what still fails.
const ROUNDS: usize = 2;

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Operations the kernel accepted, in order.
    pub applied: Vec<Op>,
    /// Operations that still failed in the last round, with the kernel's answer.
    pub failed: Vec<ipvs::Error>,
    /// The pass could not read the kernel state; nothing was written.
    pub dump_error: Option<ipvs::Error>,
}

impl PassReport {
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.dump_error.is_none()
    }
}

/// Reads the owned services and their destinations: one service dump, one dest dump per
/// owned service present.
pub async fn observe<K: IpvsKernel>(
    kernel: &K,
    owned: &BTreeSet<ServiceKey>,
) -> Result<Vec<Observed>, ipvs::Error> {
    let mut out = Vec::new();
    for service in kernel.services().await? {
        if !owned.contains(&service.service.key) {
            continue;
        }
        let dests = kernel.dests(&service.service.key).await?;
        out.push(Observed { service, dests });
    }
    Ok(out)
}

/// One reconciliation pass over the owned services.
pub async fn pass<K: IpvsKernel>(
    kernel: &K,
    owned: &BTreeSet<ServiceKey>,
    desired: &Desired,
) -> PassReport {
    let mut report = PassReport::default();
    for _ in 0..ROUNDS {
        let observed = match observe(kernel, owned).await {
            Ok(o) => o,
            Err(e) => {
                report.dump_error = Some(e);
                return report;
            }
        };
        let ops = diff(owned, desired, &observed);
        if ops.is_empty() {
            report.failed.clear();
            return report;
        }
        let results = kernel.apply(&ops).await;
        report.failed.clear();
        for (op, result) in ops.into_iter().zip(results) {
            match result {
                Ok(()) => report.applied.push(op),
                Err(e) if already_done(&op, &e) => {}
                Err(e) => report.failed.push(e),
            }
        }
        if report.failed.is_empty() {
            return report;
        }
    }
    report
}

/// A deletion whose target is already gone has done its job.
fn already_done(op: &Op, err: &ipvs::Error) -> bool {
    matches!(
        (op, err),
        (Op::DelDest { .. }, ipvs::Error::DestNotFound { .. })
            | (Op::DelDest { .. }, ipvs::Error::ServiceNotFound { .. })
            | (Op::DelService(_), ipvs::Error::ServiceNotFound { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::diff::tests::{ip, key};
    use super::*;
    use crate::ipvs::{Dest, Service};
    use nix::libc;
    fn want(weights: &[(&str, u32)]) -> Desired {
        let mut d = Desired::default();
        d.insert(DesiredService::new(
            Service::new(key(7), "wrr"),
            weights.iter().map(|(a, w)| Dest::ipip(ip(a), *w)),
        ));
        d
    }

    #[tokio::test]
    async fn converges_and_then_is_a_no_op() {
        let k = FakeKernel::new();
        let owned = BTreeSet::from([key(7)]);
        let r = pass(&k, &owned, &want(&[("10.0.0.1", 30), ("10.0.0.2", 70)])).await;
        assert!(r.is_clean());
        assert_eq!(r.applied.len(), 3);
        assert_eq!(
            k.save(),
            "-A -f 7 -s wrr\n-a -f 7 -r 10.0.0.1:0 -i -w 30 --tun-type ipip\n-a -f 7 -r 10.0.0.2:0 -i -w 70 --tun-type ipip\n"
        );
        let again = pass(&k, &owned, &want(&[("10.0.0.1", 30), ("10.0.0.2", 70)])).await;
        assert!(again.applied.is_empty() && again.is_clean());
    }

    #[tokio::test]
    async fn repairs_hand_edits_of_owned_services_only() {
        let k = FakeKernel::new();
        let owned = BTreeSet::from([key(7)]);
        let desired = want(&[("10.0.0.1", 30)]);
        pass(&k, &owned, &desired).await;
        k.hand_edit(Op::AddService(Service::new(key(99), "rr")));
        k.hand_edit(Op::EditDest {
            service: key(7),
            dest: Dest::ipip(ip("10.0.0.1"), 5),
        });
        let r = pass(&k, &owned, &desired).await;
        assert_eq!(
            r.applied,
            vec![Op::EditDest {
                service: key(7),
                dest: Dest::ipip(ip("10.0.0.1"), 30)
            }]
        );
        assert!(k.save().contains("-A -f 99 -s rr"), "foreign service kept");
        k.hand_edit(Op::Flush);
        let r = pass(&k, &owned, &desired).await;
        assert_eq!(
            r.applied.len(),
            2,
            "service and dest recreated after ipvsadm -C"
        );
    }

    #[tokio::test]
    async fn persistent_failures_are_reported_with_their_operation() {
        let k = FakeKernel::new();
        let owned = BTreeSet::from([key(7)]);
        k.fail_ops_matching("adding service FWM 7", libc::ENOENT);
        let r = pass(&k, &owned, &want(&[("10.0.0.1", 1)])).await;
        assert!(r.applied.is_empty());
        let texts: Vec<String> = r.failed.iter().map(|e| e.to_string()).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].starts_with("adding service FWM 7"), "{texts:?}");
        assert!(
            texts[1].starts_with("adding destination 10.0.0.1:0 to FWM 7"),
            "{texts:?}"
        );
        k.clear_failures();
        let r = pass(&k, &owned, &want(&[("10.0.0.1", 1)])).await;
        assert!(r.is_clean(), "retried on the next pass");
        assert_eq!(r.applied.len(), 2);
    }

    #[tokio::test]
    async fn stopping_deletes_exactly_the_owned_service() {
        let k = FakeKernel::new();
        let owned = BTreeSet::from([key(7), key(8)]);
        pass(&k, &owned, &want(&[("10.0.0.1", 1)])).await;
        k.hand_edit(Op::AddService(Service::new(key(99), "rr")));
        let r = pass(&k, &owned, &Desired::default()).await;
        assert_eq!(r.applied, vec![Op::DelService(key(7))]);
        assert_eq!(k.save(), "-A -f 99 -s rr\n");
    }
}
