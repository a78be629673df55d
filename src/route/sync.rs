//! One VIP pass over any [`RouteKernel`]: ensure the owned interface, read the namespace's
//! addresses, diff, apply, and report what was done, what failed (each error names its
//! operation), what was refused and which VIPs the interface holds at the end. The
//! reconciler's VIP pass (`src/reconcile/vips.rs`) is this; it keeps no state between
//! passes, so a hand deletion is seen and repaired by the next pass.
//!
//! It must never change anything but the owned interface and its addresses: the ops come
//! only from [`diff`], and `apply` is handed the owned interface alone.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::diff::{diff, Conflict, Observed};
use super::error::Error;
use super::kernel::RouteKernel;
use super::model::{host_prefix, AddrOp, Interface};

/// What one pass did.
#[derive(Debug)]
pub struct Outcome {
    pub interface: Interface,
    /// Ops the kernel accepted, in the order sent.
    pub applied: Vec<AddrOp>,
    /// Ops the kernel refused, each error naming its op (`adding 192.0.2.10/32 to
    /// bigbro0: ...`); the next pass retries them.
    pub failed: Vec<Error>,
    /// Wanted VIPs that were not put on the interface.
    pub conflicts: Vec<Conflict>,
    /// The VIPs (/32, /128) on the owned interface once the ops are applied: what the
    /// pass read, changed by the ops the kernel accepted.
    pub present: BTreeSet<IpAddr>,
}

/// Makes interface `name` hold exactly `desired` (as /32 and /128), touching nothing else.
/// An error before any op (the interface, the address dump) stops the pass.
pub async fn sync<K: RouteKernel>(
    kernel: &K,
    name: &str,
    desired: &BTreeSet<IpAddr>,
) -> Result<Outcome, Error> {
    let interface = kernel.ensure_interface(name).await?;
    let observed = Observed::split(&interface, &kernel.addresses().await?);
    let plan = diff(desired, &observed);
    let results = kernel.apply(&interface, &plan.ops).await;
    let mut present = observed.vips();
    let mut applied = Vec::new();
    let mut failed = Vec::new();
    for (op, result) in plan.ops.into_iter().zip(results) {
        match result {
            Ok(()) => {
                match op {
                    AddrOp::Add(addr) => present.insert(addr),
                    AddrOp::Remove { addr, prefix_len } => {
                        prefix_len == host_prefix(&addr) && present.remove(&addr)
                    }
                };
                applied.push(op);
            }
            Err(e) => failed.push(e),
        }
    }
    Ok(Outcome {
        interface,
        applied,
        failed,
        conflicts: plan.conflicts,
        present,
    })
}

#[cfg(test)]
mod tests {
    use crate::route::model::testing::{ip, set};
    use nix::libc;

    use super::*;
    use crate::route::error::Operation;
    use crate::route::kernel::FakeRoute;
    use crate::route::model::LocalAddr;

    fn on(fake: &FakeRoute, name: &str) -> Vec<(IpAddr, u8)> {
        fake.all()
            .into_iter()
            .filter(|a| a.interface == name)
            .map(|a| (a.addr, a.prefix_len))
            .collect()
    }

    async fn run(fake: &FakeRoute, desired: &[&str]) -> Outcome {
        sync(fake, "bigbro0", &set(desired))
            .await
            .expect("pass runs")
    }

    #[tokio::test]
    async fn creates_the_interface_adds_vips_and_a_second_pass_sends_nothing() {
        let fake = FakeRoute::new();
        let out = run(&fake, &["192.0.2.10", "2001:db8::10"]).await;
        assert_eq!(out.interface.name, "bigbro0");
        let link = fake.link("bigbro0").unwrap();
        assert!(link.is_dummy() && link.up);
        assert_eq!(out.applied.len(), 2);
        assert_eq!(
            on(&fake, "bigbro0"),
            vec![(ip("192.0.2.10"), 32), (ip("2001:db8::10"), 128)]
        );
        assert_eq!(out.present, set(&["192.0.2.10", "2001:db8::10"]));
        let again = run(&fake, &["192.0.2.10", "2001:db8::10"]).await;
        assert!(again.applied.is_empty() && again.failed.is_empty());
        assert_eq!(again.present, out.present);
        assert_eq!(fake.log.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_existing_interface_and_its_addresses_are_adopted_and_set_up() {
        let fake = FakeRoute::new();
        let index = fake.add_link("bigbro0", Some("dummy"));
        fake.set_down("bigbro0");
        fake.hand_add(index, ip("192.0.2.10"), 32);
        let out = run(&fake, &["192.0.2.10"]).await;
        assert_eq!(out.interface.index, index);
        assert!(out.applied.is_empty());
        assert!(fake.link("bigbro0").unwrap().up);
    }

    #[tokio::test]
    async fn a_name_held_by_another_kind_is_refused_with_nothing_changed() {
        let fake = FakeRoute::new();
        let index = fake.add_link("bigbro0", Some("veth"));
        fake.hand_add(index, ip("192.0.2.99"), 24);
        let before = fake.all();
        let err = sync(&fake, "bigbro0", &set(&["192.0.2.10"]))
            .await
            .unwrap_err();
        assert!(matches!(&err, crate::route::Error::NotDummy { kind: Some(k), .. } if k == "veth"));
        assert_eq!(fake.all(), before);
        assert!(fake.log.lock().unwrap().is_empty());
        // `lo` has no kind at all: refused the same way.
        let err = sync(&fake, "lo", &set(&["192.0.2.10"])).await.unwrap_err();
        assert!(matches!(
            err,
            crate::route::Error::NotDummy { kind: None, .. }
        ));
    }

    #[tokio::test]
    async fn foreign_addresses_are_reported_and_untouched() {
        let fake = FakeRoute::new();
        let other = fake.add_link("other0", Some("dummy"));
        fake.hand_add(other, ip("192.0.2.20"), 32);
        fake.hand_add(1, ip("192.0.2.21"), 32);
        let before: Vec<LocalAddr> = fake.all();
        let out = run(&fake, &["192.0.2.10", "192.0.2.20", "192.0.2.21"]).await;
        assert_eq!(out.applied, vec![AddrOp::Add(ip("192.0.2.10"))]);
        let vips: Vec<IpAddr> = out.conflicts.iter().map(|c| c.vip()).collect();
        assert_eq!(vips, vec![ip("192.0.2.20"), ip("192.0.2.21")]);
        for a in before {
            assert!(fake.all().contains(&a), "{a:?} was touched");
        }
        // Dropping every VIP removes bigbro's only.
        let out = run(&fake, &[]).await;
        assert_eq!(
            out.applied,
            vec![AddrOp::Remove {
                addr: ip("192.0.2.10"),
                prefix_len: 32
            }]
        );
        assert_eq!(on(&fake, "other0"), vec![(ip("192.0.2.20"), 32)]);
        assert!(on(&fake, "lo").contains(&(ip("192.0.2.21"), 32)));
    }

    #[tokio::test]
    async fn a_hand_deletion_is_seen_and_repaired_by_the_next_pass() {
        let fake = FakeRoute::new();
        let out = run(&fake, &["192.0.2.10"]).await;
        fake.hand_remove(out.interface.index, ip("192.0.2.10"));
        let out = run(&fake, &["192.0.2.10"]).await;
        assert_eq!(out.applied, vec![AddrOp::Add(ip("192.0.2.10"))]);
    }

    #[tokio::test]
    async fn each_failure_is_reported_against_its_op_and_the_rest_go_on() {
        let fake = FakeRoute::new();
        fake.fail_ops_matching("adding 2001:db8::10/128", libc::EACCES);
        let out = run(&fake, &["192.0.2.10", "2001:db8::10"]).await;
        assert_eq!(out.applied, vec![AddrOp::Add(ip("192.0.2.10"))]);
        assert_eq!(out.failed.len(), 1);
        assert_eq!(
            out.failed[0].operation(),
            &Operation::Apply {
                op: AddrOp::Add(ip("2001:db8::10")),
                interface: "bigbro0".into()
            }
        );
        assert!(out.failed[0]
            .to_string()
            .starts_with("adding 2001:db8::10/128 to bigbro0: IPv6 is disabled"));
        fake.clear_failures();
        let out = run(&fake, &["192.0.2.10", "2001:db8::10"]).await;
        assert_eq!(out.applied, vec![AddrOp::Add(ip("2001:db8::10"))]);
    }

    #[tokio::test]
    async fn a_bad_interface_name_changes_nothing() {
        let fake = FakeRoute::new();
        let before = fake.all();
        let err = sync(&fake, "a-name-far-too-long", &set(&["192.0.2.10"]))
            .await
            .unwrap_err();
        assert!(matches!(err, crate::route::Error::BadName { .. }));
        assert_eq!(fake.all(), before);
    }
}
