//! The reconciler: the only writer to the kernel. A pass reads the IPVS services bigbro
//! owns (nothing else is read or touched), diffs them against the desired state, and sends
//! the minimal operations as one batch.
//!
//! A pass reads in one of two ways ([`Reading`]): a dump of every service and then the
//! destinations of each owned one (a full pass, which also sees owned services that were
//! added behind bigbro's back), or one request per given service (a pass over the few
//! services whose desired state changed). Either way the diff is limited to the keys the
//! pass was given: a service outside them is never read, edited or deleted.
//!
//! Kernel errors are handled by looking again rather than by guessing: a pass whose batch
//! had failures reads once more and retries the diff, so "already exists" becomes an edit,
//! "no such service" becomes a re-creation, and a deletion of something already gone is
//! simply finished. What still fails after that is reported to the caller (logs, API,
//! metrics) and retried on the next pass; it is never ignored. A failed read changes
//! nothing in the kernel. After writing, a pass reads again exactly the services it wrote
//! to, so its report holds what the kernel has now without a second read of everything.
//! The nf_tables mark rules (`marks`) and the IPVS sync daemons (`daemons`) are
//! reconciled the same way: read back, compare, change what differs.

pub mod daemons;
pub mod diff;
pub mod kernel;
pub mod marks;

use std::collections::{BTreeMap, BTreeSet};

pub use diff::{diff, differs, Desired, DesiredService, Observed};
#[cfg(any(test, feature = "testing"))]
pub use kernel::FakeKernel;
pub use kernel::IpvsKernel;
#[cfg(any(test, feature = "testing"))]
pub use marks::FakeMarks;
pub use marks::MarkTable;

use crate::ipvs::{self, Op, ServiceKey};

/// How many read–diff–apply rounds one pass may take before reporting what still fails.
const ROUNDS: usize = 2;

/// How a pass reads the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// One dump of every service, then one destination dump per owned service present
    /// (IPVS has no dump of all destinations): 1 + n requests for n owned services.
    Dump,
    /// Each given service alone (GET_SERVICE), then its destinations if it exists: two
    /// requests per service, however many other services the kernel holds.
    Each,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Operations the kernel accepted, in order.
    pub applied: Vec<Op>,
    /// Operations that still failed in the last round, with the kernel's answer.
    pub failed: Vec<ipvs::Error>,
    /// The pass could not read the kernel state; nothing was written.
    pub dump_error: Option<ipvs::Error>,
    /// The pass's services as the kernel holds them when it ends (absent ones are
    /// missing): its last reading, with every service it wrote to read again. `None` when
    /// that is not known (`dump_error`, or `reread_error`).
    pub observed: Option<Vec<Observed>>,
    /// Reading the written services again failed (what was written stands).
    pub reread_error: Option<ipvs::Error>,
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

/// Reads each of `keys` alone and its destinations when it exists: no dump of every
/// service. A service that does not exist is simply not in the answer.
pub async fn observe_each<K: IpvsKernel>(
    kernel: &K,
    keys: &BTreeSet<ServiceKey>,
) -> Result<Vec<Observed>, ipvs::Error> {
    let mut out = Vec::new();
    for key in keys {
        let service = match kernel.service(key).await {
            Ok(s) => s,
            Err(ipvs::Error::ServiceNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let dests = kernel.dests(key).await?;
        out.push(Observed { service, dests });
    }
    Ok(out)
}

async fn read<K: IpvsKernel>(
    kernel: &K,
    keys: &BTreeSet<ServiceKey>,
    reading: Reading,
) -> Result<Vec<Observed>, ipvs::Error> {
    match reading {
        Reading::Dump => observe(kernel, keys).await,
        Reading::Each => observe_each(kernel, keys).await,
    }
}

/// One full reconciliation pass over the owned services (read with [`Reading::Dump`]).
pub async fn pass<K: IpvsKernel>(
    kernel: &K,
    owned: &BTreeSet<ServiceKey>,
    desired: &Desired,
) -> PassReport {
    pass_with(kernel, owned, desired, Reading::Dump).await
}

/// One reconciliation pass over `keys` (all owned, or the few that changed), read as
/// `reading` says. Keys outside `keys` are never read, edited or deleted, whatever
/// `desired` says about them.
pub async fn pass_with<K: IpvsKernel>(
    kernel: &K,
    keys: &BTreeSet<ServiceKey>,
    desired: &Desired,
    reading: Reading,
) -> PassReport {
    let mut report = PassReport::default();
    let mut written = BTreeSet::new();
    let mut observed = Vec::new();
    for _ in 0..ROUNDS {
        observed = match read(kernel, keys, reading).await {
            Ok(o) => o,
            Err(e) => {
                report.dump_error = Some(e);
                return report;
            }
        };
        let ops = diff(keys, desired, &observed);
        // Only the last round's writes make its reading stale.
        written = ops.iter().filter_map(Op::service).copied().collect();
        if ops.is_empty() {
            report.failed.clear();
            break;
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
            break;
        }
    }
    // What the last round wrote to is read again; the rest is as that round read it.
    let stale = written;
    match observe_each(kernel, &stale).await {
        Ok(fresh) => {
            let mut now: BTreeMap<ServiceKey, Observed> = observed
                .into_iter()
                .filter(|o| !stale.contains(&o.service.service.key))
                .map(|o| (o.service.service.key, o))
                .collect();
            now.extend(fresh.into_iter().map(|o| (o.service.service.key, o)));
            report.observed = Some(now.into_values().collect());
        }
        Err(e) => report.reread_error = Some(e),
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

    async fn three_services() -> (FakeKernel, BTreeSet<ServiceKey>, Desired) {
        let k = FakeKernel::new();
        let owned = BTreeSet::from([key(7), key(8), key(9)]);
        let mut d = Desired::default();
        for mark in [7, 8, 9] {
            d.insert(DesiredService::new(
                Service::new(key(mark), "wrr"),
                [Dest::ipip(ip("10.0.0.1"), mark)],
            ));
        }
        assert!(pass(&k, &owned, &d).await.is_clean());
        k.take_reads();
        (k, owned, d)
    }

    /// Sets the weight of service `mark`'s destination 10.0.0.1 in `d`.
    fn set_weight(d: &mut Desired, mark: u32, weight: u32) {
        let dest = Dest::ipip(ip("10.0.0.1"), weight);
        d.services
            .get_mut(&key(mark))
            .unwrap()
            .dests
            .insert((dest.addr, 0), dest);
    }

    fn weights(o: &[Observed]) -> Vec<(u32, u32)> {
        o.iter()
            .flat_map(|o| {
                o.dests
                    .iter()
                    .map(|d| (o.service.service.key.fwmark().unwrap().get(), d.dest.weight))
            })
            .collect()
    }

    #[tokio::test]
    async fn a_pass_over_one_service_reads_and_touches_only_that_one() {
        let (k, _, mut d) = three_services().await;
        k.hand_edit(Op::EditDest {
            service: key(7),
            dest: Dest::ipip(ip("10.0.0.1"), 55),
        });
        k.hand_edit(Op::DelService(key(9)));
        // Desired asks to delete 9 too, but 9 is outside the pass.
        d.services.remove(&key(9));
        set_weight(&mut d, 8, 80);
        let r = pass_with(&k, &BTreeSet::from([key(8)]), &d, Reading::Each).await;
        assert!(r.is_clean());
        assert_eq!(
            r.applied,
            vec![Op::EditDest {
                service: key(8),
                dest: Dest::ipip(ip("10.0.0.1"), 80)
            }]
        );
        use kernel::Read::*;
        assert_eq!(
            k.take_reads(),
            [
                Service(key(8)),
                Dests(key(8)),
                Service(key(8)),
                Dests(key(8))
            ],
            "read, write, read again: no dump of every service"
        );
        assert_eq!(weights(r.observed.as_deref().unwrap()), [(8, 80)]);
        assert_eq!(
            k.save(),
            "-A -f 7 -s wrr\n-a -f 7 -r 10.0.0.1:0 -i -w 55 --tun-type ipip\n\
             -A -f 8 -s wrr\n-a -f 8 -r 10.0.0.1:0 -i -w 80 --tun-type ipip\n",
            "the hand edit of 7 and the deletion of 9 are left to a full pass"
        );
        // Nothing changed: one read of the service, nothing written, nothing read again.
        let r = pass_with(&k, &BTreeSet::from([key(8)]), &d, Reading::Each).await;
        assert!(r.applied.is_empty() && r.is_clean());
        assert_eq!(k.take_reads(), [Service(key(8)), Dests(key(8))]);
        // The full pass repairs the rest.
        let r = pass(&k, &BTreeSet::from([key(7), key(8), key(9)]), &d).await;
        assert_eq!(r.applied.len(), 1, "{:?}", r.applied);
        assert_eq!(weights(r.observed.as_deref().unwrap()), [(7, 7), (8, 80)]);
    }

    #[tokio::test]
    async fn a_pass_over_one_service_recreates_it_when_it_is_gone() {
        let (k, _, d) = three_services().await;
        k.hand_edit(Op::DelService(key(8)));
        let r = pass_with(&k, &BTreeSet::from([key(8)]), &d, Reading::Each).await;
        assert!(r.is_clean());
        assert_eq!(
            r.applied.len(),
            2,
            "service and destination: {:?}",
            r.applied
        );
        assert_eq!(weights(r.observed.as_deref().unwrap()), [(8, 8)]);
        // A read that fails for another reason than "no such service" writes nothing.
        k.hand_edit(Op::DelService(key(8)));
        k.fail_dumps(libc::EPERM);
        let r = pass_with(&k, &BTreeSet::from([key(8)]), &d, Reading::Each).await;
        assert!(r.dump_error.is_some() && r.applied.is_empty() && r.observed.is_none());
        assert!(!k.save().contains("-f 8"));
    }

    #[tokio::test]
    async fn a_full_pass_reads_again_only_what_it_wrote() {
        let (k, owned, d) = three_services().await;
        use kernel::Read::*;
        let r = pass(&k, &owned, &d).await;
        assert!(r.applied.is_empty());
        assert_eq!(
            k.take_reads(),
            [Services, Dests(key(7)), Dests(key(8)), Dests(key(9))]
        );
        assert_eq!(
            weights(r.observed.as_deref().unwrap()),
            [(7, 7), (8, 8), (9, 9)]
        );
        k.hand_edit(Op::EditDest {
            service: key(9),
            dest: Dest::ipip(ip("10.0.0.1"), 1),
        });
        let r = pass(&k, &owned, &d).await;
        assert_eq!(r.applied.len(), 1);
        assert_eq!(
            k.take_reads(),
            [
                Services,
                Dests(key(7)),
                Dests(key(8)),
                Dests(key(9)),
                Service(key(9)),
                Dests(key(9))
            ]
        );
        assert_eq!(
            weights(r.observed.as_deref().unwrap()),
            [(7, 7), (8, 8), (9, 9)]
        );
    }

    #[tokio::test]
    async fn a_failed_op_is_read_again_and_shows_what_the_kernel_holds() {
        let (k, _, mut d) = three_services().await;
        k.fail_ops_matching("FWM 8", libc::ENOMEM);
        set_weight(&mut d, 8, 80);
        let r = pass_with(&k, &BTreeSet::from([key(8)]), &d, Reading::Each).await;
        assert_eq!(r.failed.len(), 1, "{:?}", r.failed);
        assert_eq!(weights(r.observed.as_deref().unwrap()), [(8, 8)]);
    }
}
