//! Kernel tests of `bigbro::route` on the test bed's real Linux: the owned dummy interface
//! is created and set up, IPv4 and IPv6 VIPs are added (/32, /128 `nodad`), read back and
//! removed through `route::Client`, with the real `ip` as the oracle for what bigbro wrote;
//! foreign addresses (on another dummy interface and on `lo`) are reported as conflicts and
//! left exactly as they were; a name held by a veth is refused with nothing changed; a hand
//! deletion is seen by the next read; every kernel error comes back typed, naming its
//! operation and object. One data-path test proves the point of it all: a TCP client in
//! another namespace reaches a socket bound to the VIP only once bigbro added the address.
//!
//! Each test runs in its own fresh network namespace inside the guest, so tests cannot see
//! each other's interfaces or addresses.

use crate::testbed;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use bigbro::route::{self, AddrOp, Client, Conflict, Error, Interface, Operation};
use testbed::dataplane::{in_netns, DataPlane, VIP};
use testbed::{block_on, kernel_test, sh, sh_status};

const V4: &str = "192.0.2.10";
const V6: &str = "2001:db8::10";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
    addrs.iter().map(|a| ip(a)).collect()
}

/// `ip -o addr show dev NAME` as (address/prefix) words, the kernel's link-local aside.
fn ip_addrs(dev: &str) -> Vec<String> {
    sh(&format!("ip -o addr show dev {dev}"))
        .lines()
        .filter_map(|l| {
            let mut words = l
                .split_whitespace()
                .skip_while(|w| *w != "inet" && *w != "inet6");
            words.next();
            words.next().map(str::to_string)
        })
        .filter(|a| !a.starts_with("fe80:"))
        .collect()
}

/// Every interface and address of the namespace, as `ip` prints them (statistics off):
/// what "nothing changed" compares.
fn snapshot() -> String {
    sh("ip -d link show; ip addr show")
}

/// The addresses bigbro reads back on `interface`, as address/prefix strings.
async fn read_back(client: &Client, interface: &Interface) -> Vec<String> {
    client
        .addresses()
        .await
        .expect("address dump")
        .into_iter()
        .filter(|a| a.index == interface.index && !a.is_kernel_link_local())
        .map(|a| format!("{}/{}", a.addr, a.prefix_len))
        .collect()
}

/// One pass that must not fail anywhere.
async fn sync_ok(client: &Client, desired: &[&str]) -> route::Outcome {
    let out = route::sync(client, "bigbro0", &set(desired))
        .await
        .expect("the pass runs");
    let failed: Vec<String> = out.failed.iter().map(|e| e.to_string()).collect();
    assert!(failed.is_empty(), "failed ops:\n{}", failed.join("\n"));
    out
}

kernel_test! {
    /// bigbro0 is created as an up dummy interface; v4 and v6 VIPs land as /32 and /128,
    /// the v6 one usable at once (no `tentative`); bigbro and `ip` read back the same; a
    /// second pass sends nothing.
    fn creates_bigbro0_and_reads_back_v4_and_v6_vips() {
        block_on(async {
            let client = Client::new().unwrap();
            let out = sync_ok(&client, &[V4, V6]).await;
            assert_eq!(out.applied, vec![AddrOp::Add(ip(V4)), AddrOp::Add(ip(V6))]);
            let link = sh("ip -d link show bigbro0");
            assert!(link.contains("dummy"), "{link}");
            assert!(link.contains(",UP"), "{link}");
            assert_eq!(ip_addrs("bigbro0"), vec!["192.0.2.10/32", "2001:db8::10/128"]);
            let v6 = sh("ip -6 addr show dev bigbro0");
            assert!(!v6.contains("tentative"), "{v6}");
            assert_eq!(
                read_back(&client, &out.interface).await,
                vec!["192.0.2.10/32", "2001:db8::10/128"]
            );
            let again = sync_ok(&client, &[V4, V6]).await;
            assert!(again.applied.is_empty(), "{:?}", again.applied);
            assert_eq!(again.interface, out.interface);
        });
    }

    /// A VIP that is already a local address on `other0` or on `lo` is reported as a
    /// conflict and never added or removed; `other0` and `lo` end exactly as they began.
    fn foreign_addresses_are_untouched_and_reported() {
        sh("ip link add other0 type dummy && ip link set other0 up && \
            ip addr add 192.0.2.20/32 dev other0 && \
            ip addr add 2001:db8::21/128 dev other0 nodad && \
            ip addr add 192.0.2.21/32 dev lo");
        let (other_before, lo_before) = (ip_addrs("other0"), ip_addrs("lo"));
        block_on(async {
            let client = Client::new().unwrap();
            let out = sync_ok(&client, &[V4, "192.0.2.20", "192.0.2.21", "2001:db8::21"]).await;
            assert_eq!(out.applied, vec![AddrOp::Add(ip(V4))]);
            assert_eq!(
                out.conflicts,
                vec![
                    Conflict::Foreign { vip: ip("192.0.2.20"), interfaces: vec!["other0".into()] },
                    Conflict::Foreign { vip: ip("192.0.2.21"), interfaces: vec!["lo".into()] },
                    Conflict::Foreign { vip: ip("2001:db8::21"), interfaces: vec!["other0".into()] },
                ]
            );
            assert_eq!(ip_addrs("bigbro0"), vec!["192.0.2.10/32"]);
            // Nothing wanted any more: bigbro's address goes, the foreign ones stay.
            let out = sync_ok(&client, &[]).await;
            assert_eq!(out.applied, vec![AddrOp::Remove { addr: ip(V4), prefix_len: 32 }]);
        });
        assert_eq!(ip_addrs("other0"), other_before);
        assert_eq!(ip_addrs("lo"), lo_before);
        assert!(ip_addrs("bigbro0").is_empty());
    }

    /// bigbro0 held by a veth: refused with a clear, typed error, and not one link or
    /// address of the namespace changes. `lo` (no link kind at all) is refused the same way.
    fn a_name_taken_by_a_veth_is_refused_with_nothing_changed() {
        sh("ip link add bigbro0 type veth peer name peer0 && ip addr add 198.51.100.9/24 dev bigbro0");
        let before = snapshot();
        block_on(async {
            let client = Client::new().unwrap();
            let err = route::sync(&client, "bigbro0", &set(&[V4])).await.unwrap_err();
            assert!(
                matches!(&err, Error::NotDummy { kind: Some(k), .. } if k == "veth"),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                "reading interface bigbro0: bigbro0 exists and is a veth interface, not a dummy \
                 interface; bigbro puts VIPs only on an interface of its own (name another one, \
                 or remove this one); nothing was changed"
            );
            let err = client.ensure_interface("lo").await.unwrap_err();
            assert!(matches!(err, Error::NotDummy { kind: None, .. }), "{err:?}");
        });
        assert_eq!(snapshot(), before);
    }

    /// An existing bigbro0 (down, holding a stray address) is adopted: set up, its VIP kept,
    /// the stray address removed. A hand deletion is seen by the next read and repaired by
    /// the next pass; removing every VIP leaves the interface empty.
    fn adoption_hand_deletion_and_removal() {
        sh("ip link add bigbro0 type dummy && ip addr add 192.0.2.10/32 dev bigbro0 && \
            ip addr add 198.51.100.7/24 dev bigbro0");
        let index: u32 = sh("ip -o link show bigbro0")
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        block_on(async {
            let client = Client::new().unwrap();
            let out = sync_ok(&client, &[V4, V6]).await;
            assert_eq!(out.interface.index, index, "adopted, not re-created");
            assert_eq!(
                out.applied,
                vec![
                    AddrOp::Remove { addr: ip("198.51.100.7"), prefix_len: 24 },
                    AddrOp::Add(ip(V6)),
                ]
            );
            assert!(sh("ip link show bigbro0").contains(",UP"));

            sh("ip addr del 192.0.2.10/32 dev bigbro0");
            assert_eq!(read_back(&client, &out.interface).await, vec!["2001:db8::10/128"]);
            let out = sync_ok(&client, &[V4, V6]).await;
            assert_eq!(out.applied, vec![AddrOp::Add(ip(V4))]);

            let results = client
                .apply(&out.interface, &[
                    AddrOp::Remove { addr: ip(V4), prefix_len: 32 },
                    AddrOp::Remove { addr: ip(V6), prefix_len: 128 },
                ])
                .await;
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            assert!(read_back(&client, &out.interface).await.is_empty());
        });
        assert!(ip_addrs("bigbro0").is_empty());
    }

    /// Kernel refusals come back typed, each naming its operation and object.
    fn kernel_errors_name_the_operation_and_the_object() {
        block_on(async {
            let client = Client::new().unwrap();
            let bigbro0 = client.ensure_interface("bigbro0").await.unwrap();
            let results = client
                .apply(&bigbro0, &[
                    AddrOp::Add(ip(V4)),
                    AddrOp::Add(ip(V4)),
                    AddrOp::Remove { addr: ip("192.0.2.99"), prefix_len: 32 },
                ])
                .await;
            assert!(results[0].is_ok(), "{:?}", results[0]);
            let exists = results[1].as_ref().unwrap_err();
            assert!(matches!(exists, Error::Exists { .. }), "{exists:?}");
            assert_eq!(
                exists.to_string(),
                "adding 192.0.2.10/32 to bigbro0: the address is already there"
            );
            let missing = results[2].as_ref().unwrap_err();
            assert!(matches!(missing, Error::NoAddress { .. }), "{missing:?}");
            assert_eq!(
                missing.to_string(),
                "removing 192.0.2.99/32 from bigbro0: no such address on the interface"
            );

            sh("sysctl -qw net.ipv6.conf.bigbro0.disable_ipv6=1");
            let results = client.apply(&bigbro0, &[AddrOp::Add(ip(V6))]).await;
            let disabled = results[0].as_ref().unwrap_err();
            assert!(matches!(disabled, Error::Ipv6Disabled { .. }), "{disabled:?}");
            assert_eq!(
                disabled.operation(),
                &Operation::Apply { op: AddrOp::Add(ip(V6)), interface: "bigbro0".into() }
            );

            let err = client.ensure_interface("not a name").await.unwrap_err();
            assert!(matches!(err, Error::BadName { .. }), "{err:?}");
        });
        let (status, _, _) = sh_status("ip link show 'not a name'");
        assert_ne!(status, 0);
    }

    /// The data path: a client in another namespace connects to VIP:8080, where a socket in
    /// the director's namespace listens (bound before the address exists). Before bigbro
    /// adds the VIP the director has no local address for it and answers unreachable; once
    /// bigbro's layer added it, the connection is accepted.
    fn a_tcp_connect_reaches_the_vip_only_once_bigbro_added_it() {
        let plane = DataPlane::new(1);
        assert_eq!(VIP.to_string(), V4);
        std::fs::write("/proc/sys/net/ipv4/ip_nonlocal_bind", "1").unwrap();
        let target = SocketAddr::new(ip(V4), 8080);
        let listener = TcpListener::bind(target).unwrap();
        let connect = || {
            in_netns(plane.client().netns(), || {
                TcpStream::connect_timeout(&target, Duration::from_secs(5)).map(drop)
            })
        };
        let before = connect();
        assert!(before.is_err(), "connected before bigbro added the VIP");

        block_on(async {
            let client = Client::new().unwrap();
            sync_ok(&client, &[V4]).await;
        });
        connect().expect("connect to the VIP once bigbro added it");
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "198.51.100.2");
    }
}
