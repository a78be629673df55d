//! bigbro's mark rules on the Debian 6.1 kernel of the test bed (tests/support/testbed/): the batch
//! is accepted and read back there, and the data plane works because of it: requests from
//! a client namespace to VIP:port reach an IPVS fwmark service (made with the real ipvsadm)
//! and its IPIP real server only while bigbro's rule marks them.
//!
//! Topology, built with `ip` inside the guest (the test's own namespace is the director):
//!
//! ```text
//! client ns  10.1.0.2 c0 ── d0 10.1.0.1  director  10.2.0.1 d1 ── r0 10.2.0.2  real-server ns
//!            default via 10.1.0.1        FWM 7 wrr -> 10.2.0.2 (ipip)   tunl0 192.0.2.10/32
//!                                        ip rule fwmark 7 -> local      default via 10.2.0.1
//! ```
//!
//! The director has no route to the VIP: an unmarked packet for 192.0.2.10 is unroutable
//! there. A marked one is delivered locally (policy route), where IPVS takes it.

use crate::testbed;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use bigbro::nft::{render, L4Proto, MarkRule, Nft, PortRange};
use nix::sched::{setns, CloneFlags};
use testbed::kernel_test;

const VIP: &str = "192.0.2.10";
const PORT: u16 = 80;
const MARK: u32 = 7;
const CLIENT_NS: &str = "bbnft-client";
const SERVER_NS: &str = "bbnft-rs";

/// Deletes the named namespaces when the test ends, however it ends.
struct Namespaces;

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [CLIENT_NS, SERVER_NS] {
            let _ = testbed::sh_status(&format!("ip netns del {ns}"));
        }
    }
}

/// Builds the topology above; the caller's namespace is the director.
fn build_data_plane() -> Namespaces {
    let guard = Namespaces;
    testbed::sh(&format!(
        "set -e
         ip netns add {CLIENT_NS}
         ip netns add {SERVER_NS}
         ip link add d0 type veth peer name c0 netns {CLIENT_NS}
         ip link add d1 type veth peer name r0 netns {SERVER_NS}
         ip addr add 10.1.0.1/24 dev d0 && ip link set d0 up
         ip addr add 10.2.0.1/24 dev d1 && ip link set d1 up
         for k in ip_forward conf.all.rp_filter conf.default.rp_filter conf.d0.rp_filter conf.d1.rp_filter; do
             v=0; [ $k = ip_forward ] && v=1
             sysctl -qw net.ipv4.$k=$v
         done
         ip rule add fwmark {MARK} lookup 100
         ip route add local 0.0.0.0/0 dev lo table 100
         ipvsadm -A -f {MARK} -s wrr
         ipvsadm -a -f {MARK} -r 10.2.0.2 -i -w 1

         ip -n {CLIENT_NS} link set lo up
         ip -n {CLIENT_NS} addr add 10.1.0.2/24 dev c0
         ip -n {CLIENT_NS} link set c0 up
         ip -n {CLIENT_NS} route add default via 10.1.0.1

         ip -n {SERVER_NS} link set lo up
         ip -n {SERVER_NS} addr add 10.2.0.2/24 dev r0
         ip -n {SERVER_NS} link set r0 up
         ip -n {SERVER_NS} route add default via 10.2.0.1
         ip -n {SERVER_NS} link set tunl0 up
         ip -n {SERVER_NS} addr add {VIP}/32 dev tunl0
         for k in conf.all.rp_filter conf.default.rp_filter conf.tunl0.rp_filter conf.r0.rp_filter; do
             ip netns exec {SERVER_NS} sysctl -qw net.ipv4.$k=0
         done
         ip netns exec {SERVER_NS} sysctl -qw net.ipv4.conf.all.arp_ignore=1
         ip netns exec {SERVER_NS} sysctl -qw net.ipv4.conf.all.arp_announce=2"
    ));
    guard
}

/// Runs `f` on a thread that has entered the named network namespace.
fn in_named_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
}

/// A TCP server in the real server's namespace that greets every connection.
fn start_real_server() {
    let listener = in_named_ns(SERVER_NS, || TcpListener::bind(("0.0.0.0", PORT)).unwrap())
        .join()
        .unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"hello from the real server\n");
        }
    });
}

/// Makes `n` requests from the client namespace to VIP:PORT; returns how many got the
/// real server's greeting.
fn requests(n: usize) -> usize {
    in_named_ns(CLIENT_NS, move || {
        let to: SocketAddr = format!("{VIP}:{PORT}").parse().unwrap();
        (0..n)
            .filter(|_| {
                let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else {
                    return false;
                };
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut got = String::new();
                s.read_to_string(&mut got).is_ok() && got == "hello from the real server\n"
            })
            .count()
    })
    .join()
    .unwrap()
}

/// Connections IPVS has made from the client to the real server (`ipvsadm -L -n -c`: the
/// connection table, whose entries outlive these short tests).
fn ipvs_connections() -> usize {
    let table = testbed::sh("ipvsadm -L -n -c");
    table
        .lines()
        .filter(|l| {
            l.contains(" 10.1.0.2:")
                && l.contains(&format!(" {VIP}:{PORT} "))
                && l.contains(" 10.2.0.2:")
        })
        .count()
}

fn vip_rule(port: u16) -> MarkRule {
    MarkRule {
        daddr: VIP.parse().unwrap(),
        proto: L4Proto::Tcp,
        ports: PortRange::single(port),
        iifname: None,
        mark: MARK,
    }
}

kernel_test! {
    /// Requests reach the fwmark service only while bigbro's rule is installed: not
    /// before, not with a rule for another port, yes after apply, not after remove.
    fn requests_reach_the_fwmark_service_only_through_bigbros_rule() {
        let _namespaces = build_data_plane();
        start_real_server();

        assert_eq!(requests(3), 0, "requests got through without any mark rule");
        assert_eq!(ipvs_connections(), 0);

        testbed::block_on(async {
            let nft = Nft::connect().unwrap();
            nft.apply(&[vip_rule(PORT + 1)]).await.unwrap();
        });
        assert_eq!(requests(3), 0, "requests to port {PORT} got through a rule for {}", PORT + 1);
        assert_eq!(ipvs_connections(), 0);

        let rules = [vip_rule(PORT)];
        testbed::block_on(async {
            let nft = Nft::connect().unwrap();
            nft.apply(&rules).await.unwrap();
            assert!(nft.read().await.unwrap().matches(&rules));
        });
        assert_eq!(requests(10), 10, "requests failed with bigbro's rule installed");
        assert_eq!(ipvs_connections(), 10, "the requests did not all go through IPVS");

        testbed::block_on(async {
            Nft::connect().unwrap().remove().await.unwrap();
        });
        assert_eq!(testbed::sh("nft list ruleset"), "");
        assert_eq!(requests(3), 0, "requests got through after bigbro's rules were removed");
        assert_eq!(ipvs_connections(), 10);
    }

    /// The Debian 6.1 kernel (the production kernel line) takes bigbro's batch for every
    /// rule shape, `nft` lists it as `render` prints it, and read-back sees it whole.
    fn the_debian_kernel_takes_every_rule_shape() {
        let rules = vec![
            MarkRule { iifname: Some("eth0".into()), ..vip_rule(80) },
            MarkRule {
                proto: L4Proto::Udp,
                ports: PortRange { first: 8000, last: 8080 },
                ..vip_rule(0)
            },
            MarkRule { proto: L4Proto::Sctp, mark: u32::MAX, ..vip_rule(443) },
            MarkRule { daddr: "2001:db8::1".parse().unwrap(), ..vip_rule(443) },
        ];
        testbed::block_on(async {
            let nft = Nft::connect().unwrap();
            nft.apply(&rules).await.unwrap();
            nft.apply(&rules).await.unwrap();
            let live = nft.read().await.unwrap();
            assert_eq!(live.rules, rules);
            assert!(live.unknown.is_empty(), "{:?}", live.unknown);
        });
        assert_eq!(testbed::sh("nft list ruleset"), render(&rules));
        testbed::block_on(async {
            Nft::connect().unwrap().remove().await.unwrap();
        });
        assert_eq!(testbed::sh("nft list ruleset"), "");
    }
}
