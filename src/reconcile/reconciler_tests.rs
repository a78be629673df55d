//! The [`Reconciler`] on the fake kernel and fake mark table alone (no controller, no
//! weight policy): what it owns is all it reads and writes, a dirty pass leaves every
//! other service exactly as it was (in the kernel and in its own reading), failed
//! operations keep their service dirty until they succeed, orphans are deleted until they
//! are gone, and the sync daemons are left alone until bigbro is asked to manage them.
//! The VIP addresses: only the owned interface's are touched, conflicts are reported and
//! left alone, and nothing at all is done until bigbro is asked to manage them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use nix::libc;

use super::diff::tests::{ip, key};
use super::kernel::Read;
use super::marks::tests::rule;
use super::*;
use crate::config::{SyncDaemon, SyncRole};
use crate::ipvs::{DaemonState, Dest, Op, Service, ServiceKey};
use crate::route::{AddrOp, FakeRoute, LocalAddr};

type Fixture = Reconciler<FakeKernel, FakeMarks, FakeRoute>;

fn reconciler() -> (Fixture, Arc<FakeKernel>, Arc<FakeMarks>) {
    let (r, kernel, marks, _) = with_route();
    (r, kernel, marks)
}

fn with_route() -> (Fixture, Arc<FakeKernel>, Arc<FakeMarks>, Arc<FakeRoute>) {
    let (kernel, marks) = (Arc::new(FakeKernel::new()), Arc::new(FakeMarks::new()));
    let route = Arc::new(FakeRoute::new());
    (
        Reconciler::new(kernel.clone(), marks.clone(), route.clone()),
        kernel,
        marks,
        route,
    )
}

/// Services `marks`, each with destination 10.0.0.1 at weight `mark` (or `weight`).
fn desired(marks: &[(u32, u32)]) -> Desired {
    let mut d = Desired::default();
    for (mark, weight) in marks {
        d.insert(DesiredService::new(
            Service::new(key(*mark), "wrr"),
            [Dest::ipip(ip("10.0.0.1"), *weight)],
        ));
    }
    d
}

fn keys(marks: &[u32]) -> BTreeSet<ServiceKey> {
    marks.iter().map(|m| key(*m)).collect()
}

fn full() -> Scope {
    Scope::Full { repair: false }
}

/// The weight of 10.0.0.1 in service `mark` as the reconciler last read it.
fn seen(r: &Fixture, mark: u32) -> Option<u32> {
    r.observed().get(&key(mark)).map(|o| o.dests[0].dest.weight)
}

/// The reads of a pass over service `mark` alone that writes to it: read, write, read
/// again (no dump of every service).
fn read_write_read(mark: u32) -> [Read; 4] {
    let k = key(mark);
    [
        Read::Service(k),
        Read::Dests(k),
        Read::Service(k),
        Read::Dests(k),
    ]
}

/// Every service the ops the fake applied since the last call named.
fn written(k: &FakeKernel) -> BTreeSet<ServiceKey> {
    std::mem::take(&mut *k.log.lock().unwrap())
        .iter()
        .filter_map(|op| op.service().copied())
        .collect()
}

/// A reconciler that has converged on services 7, 8 and 9, with a foreign service 99
/// (not owned) in the kernel.
async fn settled() -> (Fixture, Arc<FakeKernel>, BTreeSet<ServiceKey>) {
    let (mut r, k, _) = reconciler();
    k.hand_edit(Op::AddService(Service::new(key(99), "rr")));
    k.hand_edit(Op::AddDest {
        service: key(99),
        dest: Dest::ipip(ip("10.9.9.9"), 5),
    });
    let owned = keys(&[7, 8, 9]);
    r.want(desired(&[(7, 7), (8, 8), (9, 9)]));
    assert!(r.pass(full(), &owned).await.is_clean());
    written(&k);
    k.take_reads();
    (r, k, owned)
}

#[tokio::test]
async fn a_service_it_does_not_own_is_never_read_or_touched() {
    let (mut r, k, owned) = settled().await;
    // Even a desired state that names it, and a deletion of everything, leave it alone.
    r.want(desired(&[(99, 1)]));
    let out = r.pass(Scope::Full { repair: true }, &owned).await;
    assert!(out.is_clean() && out.full);
    assert_eq!(
        out.applied.len(),
        3,
        "7, 8 and 9 deleted: {:?}",
        out.applied
    );
    assert_eq!(written(&k), keys(&[7, 8, 9]));
    assert_eq!(
        k.save(),
        "-A -f 99 -s rr\n-a -f 99 -r 10.9.9.9:0 -i -w 5 --tun-type ipip\n"
    );
    assert!(
        !k.take_reads().contains(&Read::Dests(key(99))),
        "the foreign service's destinations are never read"
    );
    assert!(!r.observed().contains_key(&key(99)));
    let out = r.pass(Scope::Dirty(Some(keys(&[99]))), &owned).await;
    assert_eq!((out.services, out.applied.len()), (0, 0));
    assert!(
        k.take_reads().is_empty(),
        "nothing owned is dirty, nothing is read"
    );
}

#[tokio::test]
async fn a_dirty_pass_leaves_every_other_service_as_it_was() {
    let (mut r, k, owned) = settled().await;
    k.hand_edit(Op::EditDest {
        service: key(7),
        dest: Dest::ipip(ip("10.0.0.1"), 55),
    });
    k.hand_edit(Op::DelService(key(9)));
    // 9 is still wanted, and 8 changes; only 8 was built again.
    r.want(desired(&[(7, 7), (8, 80), (9, 9)]));
    let out = r.pass(Scope::Dirty(Some(keys(&[8]))), &owned).await;
    assert!(out.is_clean() && !out.full);
    assert_eq!(out.services, 1);
    assert_eq!(written(&k), keys(&[8]));
    assert_eq!(k.take_reads(), read_write_read(8));
    // The kernel keeps the hand edits, and the reading of 7 and 9 is the old one.
    assert!(k.save().contains("-a -f 7 -r 10.0.0.1:0 -i -w 55"));
    assert!(!k.save().contains("-f 9 "));
    assert_eq!(
        (seen(&r, 7), seen(&r, 8), seen(&r, 9)),
        (Some(7), Some(80), Some(9))
    );
    // The next full pass repairs both.
    let out = r.pass(Scope::Full { repair: true }, &owned).await;
    assert_eq!(written(&k), keys(&[7, 9]));
    assert!(out.is_clean());
    assert_eq!((seen(&r, 7), seen(&r, 9)), (Some(7), Some(9)));
}

#[tokio::test]
async fn a_dirty_pass_over_every_service_reads_only_those_that_differ() {
    let (mut r, k, owned) = settled().await;
    r.want(desired(&[(7, 7), (8, 8), (9, 90)]));
    let out = r.pass(Scope::Dirty(None), &owned).await;
    assert_eq!((out.services, out.full), (1, false));
    assert_eq!(written(&k), keys(&[9]));
    assert_eq!(
        k.take_reads(),
        read_write_read(9),
        "no dump, and 7 and 8 are not read"
    );
}

#[tokio::test]
async fn a_failed_operation_keeps_its_service_dirty_until_it_succeeds() {
    let (mut r, k, owned) = settled().await;
    k.fail_ops_matching("FWM 8", libc::ENOMEM);
    r.want(desired(&[(7, 7), (8, 80), (9, 9)]));
    let out = r.pass(Scope::Dirty(Some(keys(&[8]))), &owned).await;
    assert_eq!(out.failures.len(), 1);
    assert_eq!(r.errors().keys().collect::<Vec<_>>(), [&Some(key(8))]);
    assert_eq!(
        seen(&r, 8),
        Some(8),
        "the reading shows what the kernel holds"
    );
    // A later pass that built nothing still reads 8, because of its error.
    k.clear_failures();
    let out = r.pass(Scope::Dirty(Some(BTreeSet::new())), &owned).await;
    assert!(out.is_clean());
    assert_eq!(out.services, 1);
    assert!(r.errors().is_empty());
    assert_eq!(seen(&r, 8), Some(80));
}

#[tokio::test]
async fn a_failed_read_writes_nothing_and_makes_the_next_pass_full() {
    let (mut r, k, owned) = settled().await;
    k.fail_dumps(libc::EPERM);
    r.want(desired(&[(7, 70), (8, 8), (9, 9)]));
    let out = r.pass(Scope::Dirty(Some(keys(&[7]))), &owned).await;
    assert_eq!(out.failures.len(), 1);
    assert!(written(&k).is_empty());
    assert!(!r.has_whole_reading());
    assert_eq!(r.errors().keys().collect::<Vec<_>>(), [&None]);
    k.clear_failures();
    k.take_reads();
    let out = r.pass(Scope::Dirty(Some(keys(&[7]))), &owned).await;
    assert!(
        out.full && out.is_clean(),
        "a dirty pass after a failed read is full"
    );
    assert_eq!(k.take_reads()[0], Read::Services);
    assert!(r.has_whole_reading() && r.errors().is_empty());
}

#[tokio::test]
async fn orphans_are_deleted_until_a_read_shows_them_gone() {
    let (mut r, k, _) = settled().await;
    // The configuration no longer owns 9: it is an orphan, deleted by a dirty pass too.
    let owned = keys(&[7, 8]);
    r.orphan([key(9)]);
    r.want(desired(&[(7, 7), (8, 8)]));
    let out = r.pass(Scope::Dirty(Some(BTreeSet::new())), &owned).await;
    assert_eq!(out.applied, [Op::DelService(key(9))]);
    assert!(!k.save().contains("-f 9 "));
    // Gone: no longer owned, so a service 9 made by hand later is foreign.
    k.hand_edit(Op::AddService(Service::new(key(9), "rr")));
    let out = r.pass(full(), &owned).await;
    assert!(out.applied.is_empty(), "{:?}", out.applied);
    assert!(k.save().contains("-A -f 9 -s rr"));
}

#[tokio::test]
async fn the_retry_delay_doubles_up_to_its_cap_and_a_clean_pass_resets_it() {
    let (mut r, k, owned) = settled().await;
    let (first, cap) = (Duration::from_secs(1), Duration::from_secs(5));
    let delays: Vec<u64> = (0..4)
        .map(|_| r.retry_delay(first, cap).as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 5]);
    k.fail_dumps(libc::EPERM);
    assert!(!r.pass(full(), &owned).await.is_clean());
    assert_eq!(
        r.retry_delay(first, cap),
        cap,
        "a failed pass keeps the backoff"
    );
    k.clear_failures();
    assert!(r.pass(full(), &owned).await.is_clean());
    assert_eq!(r.retry_delay(first, cap), first);
}

#[tokio::test]
async fn mark_rules_are_written_when_they_differ_and_errors_are_kept() {
    let (mut r, _, marks) = reconciler();
    let out = r.marks_pass(&[rule(7)], false).await;
    assert!(out.wrote && out.error.is_none());
    let out = r.marks_pass(&[rule(7)], true).await;
    assert!(!out.wrote && out.differences.is_empty());
    marks.delete_tables();
    let out = r.marks_pass(&[rule(7)], true).await;
    assert!(
        out.wrote && !out.differences.is_empty(),
        "a deleted table is repaired"
    );
    marks.fail(Some(libc::EPERM));
    let out = r.marks_pass(&[rule(8)], false).await;
    assert!(out.error.is_some() && !out.wrote);
    assert_eq!(marks.rules(), [rule(7)], "a failure changes nothing");
    assert_eq!(*marks.writes.lock().unwrap(), 2);
}

#[tokio::test]
async fn sync_daemons_are_left_alone_until_bigbro_is_asked_to_manage_them() {
    let (mut r, k, _) = reconciler();
    let by_hand = daemons::desired(Some(&SyncDaemon {
        role: SyncRole::Backup,
        interface: "eth9".into(),
        syncid: 1,
    }));
    k.hand_edit(Op::StartDaemon(by_hand[0].clone()));
    assert!(r.daemons_pass(None).await.is_none());
    assert_eq!(
        k.daemons().await.unwrap(),
        by_hand,
        "not managed: untouched"
    );
    let wanted = SyncDaemon {
        role: SyncRole::Master,
        interface: "eth1".into(),
        syncid: 3,
    };
    let out = r.daemons_pass(Some(&wanted)).await.expect("managed");
    assert!(out.failures.is_empty());
    let states: Vec<DaemonState> = k.daemons().await.unwrap().iter().map(|d| d.state).collect();
    assert_eq!(states, [DaemonState::Master]);
    // Once managed, a configuration without one stops it.
    let out = r.daemons_pass(None).await.expect("still managed");
    assert_eq!(out.applied, [Op::StopDaemon(DaemonState::Master)]);
}

fn vips(v: &[&str]) -> BTreeSet<std::net::IpAddr> {
    v.iter().map(|a| ip(a)).collect()
}

/// The addresses on interface `name`.
fn on(route: &FakeRoute, name: &str) -> Vec<(std::net::IpAddr, u8)> {
    route
        .all()
        .into_iter()
        .filter(|a| a.interface == name)
        .map(|a| (a.addr, a.prefix_len))
        .collect()
}

#[tokio::test]
async fn vip_addresses_are_left_alone_until_bigbro_is_asked_to_manage_them() {
    let (mut r, _, _, route) = with_route();
    let before = route.all();
    assert!(r
        .vips_pass("bigbro0", &vips(&[]), false, false)
        .await
        .is_none());
    assert!(route.link("bigbro0").is_none(), "no interface created");
    assert_eq!(route.all(), before);
    assert!(r.vips().is_none());
    // Managed once (a cluster has vips), an interface is made even with nothing running.
    let out = r
        .vips_pass("bigbro0", &vips(&[]), true, false)
        .await
        .unwrap();
    assert!(out.in_sync() && out.applied.is_empty());
    assert!(route.link("bigbro0").unwrap().is_dummy());
    // And once managed, a configuration without such vips still empties it.
    r.vips_pass("bigbro0", &vips(&["192.0.2.10"]), true, false)
        .await
        .unwrap();
    let out = r
        .vips_pass("bigbro0", &vips(&[]), false, false)
        .await
        .unwrap();
    assert_eq!(out.applied.len(), 1);
    assert!(on(&route, "bigbro0").is_empty());
}

#[tokio::test]
async fn only_the_owned_interfaces_addresses_are_touched_and_a_stop_removes() {
    let (mut r, _, _, route) = with_route();
    let eth0 = route.add_link("eth0", None);
    route.hand_add(eth0, ip("10.1.0.5"), 24);
    route.hand_add(eth0, ip("192.0.2.99"), 32);
    let foreign: Vec<LocalAddr> = route.all();
    let out = r
        .vips_pass(
            "bigbro0",
            &vips(&["192.0.2.10", "2001:db8::10"]),
            true,
            false,
        )
        .await
        .unwrap();
    assert!(out.in_sync(), "{out:?}");
    assert_eq!(
        on(&route, "bigbro0"),
        [(ip("192.0.2.10"), 32), (ip("2001:db8::10"), 128)]
    );
    // An address added to bigbro0 by hand is bigbro's: it goes; a hand deletion comes back.
    let index = route.link("bigbro0").unwrap().index;
    route.hand_add(index, ip("198.51.100.1"), 24);
    route.hand_remove(index, ip("2001:db8::10"));
    let out = r
        .vips_pass(
            "bigbro0",
            &vips(&["192.0.2.10", "2001:db8::10"]),
            true,
            true,
        )
        .await
        .unwrap();
    assert_eq!(out.applied.len(), 2, "{:?}", out.applied);
    assert_eq!(
        out.present.clone().unwrap(),
        vips(&["192.0.2.10", "2001:db8::10"])
    );
    // The cluster stops: its VIPs go, nothing else.
    let out = r
        .vips_pass("bigbro0", &vips(&[]), true, false)
        .await
        .unwrap();
    assert_eq!(out.applied.len(), 2);
    assert!(on(&route, "bigbro0").is_empty());
    for a in foreign {
        assert!(route.all().contains(&a), "{a:?} was touched");
    }
}

#[tokio::test]
async fn a_vip_that_is_a_foreign_address_is_a_conflict_left_untouched() {
    let (mut r, _, _, route) = with_route();
    let eth0 = route.add_link("eth0", None);
    route.hand_add(eth0, ip("192.0.2.20"), 24);
    let out = r
        .vips_pass("bigbro0", &vips(&["192.0.2.10", "192.0.2.20"]), true, false)
        .await
        .unwrap();
    assert_eq!(out.applied, [AddrOp::Add(ip("192.0.2.10"))]);
    assert_eq!(out.conflicts.len(), 1);
    assert!(
        out.in_sync(),
        "conflicts aside, the interface holds what it should"
    );
    assert!(out.conflicts[0]
        .to_string()
        .contains("192.0.2.20 is already a local address on eth0"));
    assert_eq!(on(&route, "eth0"), [(ip("192.0.2.20"), 24)]);
    // Stopped: still untouched.
    r.vips_pass("bigbro0", &vips(&[]), true, false)
        .await
        .unwrap();
    assert_eq!(on(&route, "eth0"), [(ip("192.0.2.20"), 24)]);
}

#[tokio::test]
async fn vip_errors_are_reported_kept_for_the_status_and_retried() {
    let (mut r, _, _, route) = with_route();
    route.fail_ops_matching("adding 192.0.2.11/32", libc::EPERM);
    let out = r
        .vips_pass("bigbro0", &vips(&["192.0.2.10", "192.0.2.11"]), true, false)
        .await
        .unwrap();
    assert!(!out.in_sync());
    assert_eq!(
        out.failures[0].to_string(),
        "adding 192.0.2.11/32 to bigbro0: permission denied (you must be root / need CAP_NET_ADMIN)"
    );
    let (first, cap) = (Duration::from_secs(1), Duration::from_secs(8));
    assert_eq!(r.retry_delay(first, cap), first);
    assert_eq!(
        r.retry_delay(first, cap),
        first * 2,
        "still failing: it backs off"
    );
    route.clear_failures();
    let out = r
        .vips_pass("bigbro0", &vips(&["192.0.2.10", "192.0.2.11"]), true, false)
        .await
        .unwrap();
    assert!(out.in_sync() && out.applied == [AddrOp::Add(ip("192.0.2.11"))]);
    assert_eq!(
        r.retry_delay(first, cap),
        first,
        "a clean pass resets the backoff"
    );
    // A name held by another kind of interface: refused, nothing changed.
    let (mut r, _, _, route) = with_route();
    route.add_link("bigbro0", Some("veth"));
    let before = route.all();
    let out = r
        .vips_pass("bigbro0", &vips(&["192.0.2.10"]), true, false)
        .await
        .unwrap();
    assert!(out.failures[0]
        .to_string()
        .contains("not a dummy interface"));
    assert!(out.present.is_none());
    assert_eq!(route.all(), before);
}
